"""The command line builds only the parser of the command it runs, and the booru clients share one
TLS context (issue 26: start-up cost of ``jmbooru gelbooru``)."""

from __future__ import annotations

import argparse
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import _BUILT_IN, _COMMAND_MODULES, build_parser
from app.sources.booru import tls
from app.sources.booru.registry import build_site

ROOT = Path(__file__).resolve().parents[1]


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_command_table_names_every_command() -> None:
    """A command the table lacks would still run (through the whole parser), but slowly; one the
    table sends to the wrong module would not run at all."""
    assert set(commands(build_parser())) == set(_COMMAND_MODULES) | set(_BUILT_IN)


@pytest.mark.parametrize("command", [*_COMMAND_MODULES, *_BUILT_IN])
def test_a_command_alone_gets_the_same_parser(command: str) -> None:
    alone = commands(build_parser([command, "--help"]))
    assert command in alone
    assert alone[command].format_help() == commands(build_parser())[command].format_help()


def test_help_and_typos_still_list_every_command() -> None:
    for argv in (["--help"], ["--version"], ["gelboru"], []):
        assert set(commands(build_parser(argv))) == set(_COMMAND_MODULES) | set(_BUILT_IN)


def test_the_gelbooru_parser_loads_no_archive_format() -> None:
    code = ("import sys; from app.cli import build_parser; build_parser(['gelbooru', 'x']); "
            "print(sorted(m for m in ('app.archives', 'app.cli.jm', 'app.cli.watch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_booru_clients_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counted(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = real(*args, **kwargs)  # type: ignore[arg-type]
        built.append(context)
        return context

    monkeypatch.setattr(ssl, "create_default_context", counted)
    monkeypatch.setattr(tls, "_context", None)
    sites = [build_site(name) for name in ("gelbooru", "danbooru", "yandere")]
    try:
        assert len(built) == 1  # three clients, one CA bundle loaded
        assert tls.client_context() is built[0]
    finally:
        import asyncio

        asyncio.run(_close(sites))


async def _close(sites: list[object]) -> None:
    for site in sites:
        await site.aclose()  # type: ignore[attr-defined]


def test_the_tls_context_honours_ssl_cert_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As httpx's own verify=True does: SSL_CERT_FILE names the CA bundle."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(FileNotFoundError):
        tls._build()
    monkeypatch.delenv("SSL_CERT_FILE")
    assert tls._build().verify_mode == ssl.CERT_REQUIRED


def test_the_context_built_in_the_background_is_the_one_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "_context", None)
    tls.prepare_in_background()
    first = tls.client_context()  # waits for the thread's context rather than building a second
    assert tls.client_context() is first
