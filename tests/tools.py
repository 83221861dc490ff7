"""The outside programs some tests drive (Chromium, redis-server, luajit, jing, npm): where they are, and what a
missing one means.

On a developer's machine a missing tool skips its tests with a reason that says how to get it; in
CI (``CI=true``) it fails them, so CI never passes by skipping. ``.ci/run`` installs what is
missing by asking this same file (``python3 tests/tools.py missing`` prints the Debian packages), so
the tests and CI agree on where a tool may be. Standard library only: it runs before the venv exists.
"""

from __future__ import annotations

import os
import shutil
import sys

# Names Chromium goes by (Debian, Ubuntu's snap wrapper, Google's builds); JMBOORU_TEST_CHROMIUM wins.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# tool -> the Debian package that provides it
PACKAGES = {"chromium": "chromium", "redis-server": "redis-server", "luajit": "luajit", "jing": "jing", "npm": "npm",
            "node": "nodejs"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def find_chromium() -> str | None:
    explicit = os.environ.get("JMBOORU_TEST_CHROMIUM", "").strip()
    if explicit:
        return shutil.which(explicit)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_redis_server() -> str | None:
    return shutil.which("redis-server")


FINDERS = {"chromium": find_chromium, "redis-server": find_redis_server,
           # The OPDS reader tests: a KOReader stand-in under luajit, a RELAX NG grammar under jing,
           # Readium's converter from npm.
           "luajit": lambda: shutil.which("luajit"), "jing": lambda: shutil.which("jing"),
           "npm": lambda: shutil.which("npm"), "node": lambda: shutil.which("node")}


def require(tool: str) -> str:
    """The tool's path; a skip with a reason when it is missing, a failure in CI."""
    import pytest

    found = FINDERS[tool]()
    if found:
        return found
    how = f"install it (Debian: apt-get install {PACKAGES[tool]})"
    if tool == "chromium":
        how += f", or point JMBOORU_TEST_CHROMIUM at one (looked for: {', '.join(CHROMIUM_NAMES)})"
    if in_ci():
        pytest.fail(f"{tool} is not installed, and CI=true makes that a failure: {how}.", pytrace=False)
    pytest.skip(f"{tool} is not installed on this machine: {how} to run this test.")


def missing_packages() -> list[str]:
    return [PACKAGES[tool] for tool, find in FINDERS.items() if not find()]


if __name__ == "__main__":
    if sys.argv[1:] == ["missing"]:
        print(" ".join(missing_packages()))
    else:
        print("usage: python3 tests/tools.py missing", file=sys.stderr)
        sys.exit(2)
