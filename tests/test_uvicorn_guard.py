"""The connection limits wrap uvicorn's protocol classes only when the app starts serving, and only on
a uvicorn version they were tested with (pyproject.toml pins the same range)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import uvicorn

from app import serving

REPO = Path(__file__).resolve().parent.parent
GUARDED = ("from uvicorn.protocols.http.h11_impl import H11Protocol\n"
           "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n"
           "print(bool(getattr(H11Protocol, '_jmbooru_guarded', False)), "
           "bool(getattr(HttpToolsProtocol, '_jmbooru_guarded', False)))\n")


def run(script: str) -> str:
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=True, env={"PATH": "/usr/bin:/bin", "JMBOORU_ENV_FILE": "/nonexistent"})
    return out.stdout.strip().splitlines()[-1]


def test_the_installed_uvicorn_is_a_tested_one() -> None:
    assert serving.uvicorn_tested(uvicorn.__version__), uvicorn.__version__


def test_importing_the_app_patches_nothing() -> None:
    assert run("import app.main\n" + GUARDED) == "False False"


def test_starting_the_app_puts_the_guard_on() -> None:
    script = ("import asyncio\nfrom app.main import app\n"
              "async def main():\n    async with app.router.lifespan_context(app):\n        pass\n"
              "asyncio.run(main())\n") + GUARDED
    assert run(script) == "True True"


def test_an_untested_uvicorn_is_left_alone_with_one_warning() -> None:
    script = ("import logging, uvicorn\nlogging.basicConfig(level=logging.WARNING)\n"
              "uvicorn.__version__ = '0.99.0'\nfrom app import serving\n"
              "print('guarded:', serving.guard_uvicorn())\n") + GUARDED
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=True, env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["guarded:", "False", "False", "False"]
    assert out.stderr.count("is not a version jmbooru's connection limits were tested with") == 1
