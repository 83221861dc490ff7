"""The Docker image holds every package pyproject.toml ships (``import jmbooru`` failed in it once:
the Dockerfile copied only ``app``). Docker cannot run here, so the Dockerfile is read: its COPY
lines must bring in each package, and .dockerignore must not hide one from the build."""

from __future__ import annotations

import fnmatch
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shipped_packages() -> set[str]:
    """Top-level packages setuptools finds with the project's ``include`` patterns."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return {p.name for p in ROOT.iterdir()
            if (p / "__init__.py").is_file() and any(fnmatch.fnmatch(p.name, pattern) for pattern in include)}


def copied_sources() -> set[str]:
    sources: set[str] = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not line.strip().upper().startswith("COPY "):
            continue
        words = shlex.split(line.strip(), comments=True)
        if words:
            args = [w for w in words[1:] if not w.startswith("--")]
            sources.update(s.rstrip("/").removeprefix("./") for s in args[:-1])
    return sources


def ignored() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def test_every_shipped_package_is_copied_into_the_image() -> None:
    packages = shipped_packages()
    assert {"app", "jmbooru"} <= packages
    missing = packages - copied_sources()
    assert not missing, f"the Dockerfile does not COPY {sorted(missing)}"


def test_no_shipped_package_is_hidden_by_dockerignore() -> None:
    patterns = ignored()
    for package in shipped_packages():
        for path in (package, f"{package}/__init__.py"):
            assert not any(fnmatch.fnmatch(path, pattern) for pattern in patterns), (path, patterns)


def test_the_dependency_layer_stubs_every_package() -> None:
    # pip resolves the project before the code is copied; a package it cannot find makes it fail.
    text = (ROOT / "Dockerfile").read_text()
    for package in shipped_packages():
        assert f"{package}/__init__.py" in text, package
