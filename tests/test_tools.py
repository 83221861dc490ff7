"""The tools some tests need: found under their several names, skipped with a reason on a
developer's machine that lacks them, a failure in CI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests import tools

ROOT = Path(__file__).resolve().parent.parent


def fake_program(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_chromium_is_found_under_another_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JMBOORU_TEST_CHROMIUM", raising=False)
    assert tools.find_chromium() is None
    browser = fake_program(tmp_path, "chromium-browser")
    assert tools.find_chromium() == str(browser)


def test_a_missing_tool_is_a_skip_with_a_reason_off_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed.*apt-get install redis-server"):
        tools.require("redis-server")


def test_a_missing_tool_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("JMBOORU_TEST_CHROMIUM", raising=False)
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed, and CI=true makes that a failure"):
        tools.require("chromium")


def test_ci_run_asks_for_the_packages_that_are_missing(tmp_path: Path) -> None:
    # What .ci/run installs: the same discovery, from a plain python3 (no venv yet).
    fake_program(tmp_path, "google-chrome")
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("JMBOORU_TEST_CHROMIUM", None)
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "tools.py"), "missing"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["redis-server", "luajit", "jing", "npm", "nodejs"]  # chromium was found under another name
    assert "tests/tools.py missing" in (ROOT / ".ci" / "run").read_text()
