"""A setting jmbooru cannot use stops every command with one sentence (the variable and what it
accepts), exit code 2, no traceback; a JM failure through a proxy names the proxy; one start-up
line says the mode, the data folder, the API key and the proxy, with no secret in it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from tests.conftest import app_client, dead_port, free_port, make_settings
from tests.fakes.jm import JmDouble

ROOT = Path(__file__).resolve().parent.parent

SCHEME = ("JMBOORU_JM_SCHEME", "ftp", "JMBOORU_JM_SCHEME is 'ftp', which jmbooru cannot use: it must be http or https.")
PROXY = ("JMBOORU_PROXY", "htp:/bad", "JMBOORU_PROXY is 'htp:/bad', which jmbooru cannot use: it must be a proxy URL")
COMMANDS = [
    ["serve", "--port", "1"],
    ["worker"],
    ["config"],
    ["jm", "100001", "-o", "OUT"],
    ["gelbooru", "cat", "-o", "OUT"],
    ["booru", "danbooru", "cat", "-o", "OUT"],
    ["check", "OUT"],
]


def no_settings_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("JMBOORU_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("JMBOORU_ENV_FILE", str(tmp_path / "none.env"))
    monkeypatch.chdir(tmp_path)  # no ./.env


@pytest.mark.parametrize("setting", [SCHEME, PROXY], ids=["scheme", "proxy"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0] if c[0] != "booru" else "booru")
def test_every_command_says_which_setting_in_one_line(
    setting: tuple[str, str, str], command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    no_settings_files(monkeypatch, tmp_path)
    name, value, sentence = setting
    monkeypatch.setenv(name, value)
    assert main([str(tmp_path) if part == "OUT" else part for part in command]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert sentence in err


@pytest.mark.parametrize("where", ["dotenv", "user config file"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0] if c[0] != "booru" else "booru")
def test_a_settings_file_that_is_not_utf8_is_named_in_one_line(
    where: str, command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pydantic-settings stops at such a file with a bare UnicodeDecodeError; the command says which file."""
    no_settings_files(monkeypatch, tmp_path)
    target = tmp_path / (".env" if where == "dotenv" else "none.env")
    data = b"JMBOORU_JM_SCHEME=http\nJMBOORU_NOTE=caf\xe9\n"  # Latin-1, not UTF-8
    target.write_bytes(data)
    assert main([str(tmp_path / "out") if part == "OUT" else part for part in command]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{target.name} cannot be read (byte {data.index(0xE9) + 1} is not UTF-8)" in err, err


def test_a_proxy_password_is_not_repeated_in_the_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_settings_files(monkeypatch, tmp_path)
    monkeypatch.setenv("JMBOORU_PROXY", "http://me:s3cret-pw@proxy.example:notaport")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "s3cret-pw" not in err and "http://me:***@proxy.example:notaport" in err


def test_a_real_serve_process_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
    env.update(PYTHONPATH=str(ROOT), JMBOORU_ENV_FILE=str(tmp_path / "none.env"), JMBOORU_JM_SCHEME="ftp")
    out = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == f"jmbooru: {SCHEME[2]}"


def test_version_is_the_one_health_reports(capsys: pytest.CaptureFixture[str]) -> None:
    from app import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"jmbooru {__version__}"


async def test_health_and_version_agree(tmp_path: Path, jm_double: JmDouble) -> None:
    import asyncio

    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "app.cli", "--version"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    async with app_client(make_settings(tmp_path, jm_double)) as client:
        health = (await client.get("/v1/health")).json()
    assert out.stdout.strip() == f"jmbooru {health['version']}"


async def test_a_jm_failure_through_a_proxy_names_the_proxy(tmp_path: Path, jm_double: JmDouble) -> None:
    with dead_port() as nobody:  # nobody listens there, and nobody can start to
        dead_proxy = f"http://me:s3cret-pw@127.0.0.1:{nobody}"
        async with app_client(make_settings(tmp_path, jm_double, proxy=dead_proxy)) as client:
            resp = await client.get("/v1/info/100001")
    assert resp.status_code in (502, 503, 504)
    detail = resp.json()["detail"]
    assert f"through the proxy http://me:***@127.0.0.1:{dead_proxy.rsplit(':', 1)[1]} (JMBOORU_PROXY)" in detail
    assert "s3cret-pw" not in detail
    # Without a proxy the same kind of failure does not blame one.
    jm_double.fail("/album", status=502)
    async with app_client(make_settings(tmp_path, jm_double)) as client:
        plain = (await client.get("/v1/info/100001")).json()["detail"]
    assert "proxy" not in plain


@pytest.mark.parametrize(("extra", "expected"), [
    ({}, "mode=embedded"),
    ({"api_key": "k3y-value", "proxy": "socks5://me:s3cret-pw@127.0.0.1:1080"}, "api_key=on"),
])
async def test_one_startup_line_says_mode_folder_key_and_proxy(
    tmp_path: Path, jm_double: JmDouble, caplog: pytest.LogCaptureFixture, extra: dict[str, str], expected: str,
) -> None:
    settings = make_settings(tmp_path / "data", jm_double, **extra)
    with caplog.at_level(logging.INFO, logger="jmbooru"):
        async with app_client(settings):
            pass
    lines = [r.getMessage() for r in caplog.records if "starting: mode=" in r.getMessage()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert expected in line and f"data={settings.data_path}" in line
    if extra:
        assert "proxy=socks5://" in line and ":***@127.0.0.1:1080" in line  # the log also masks the user
        assert "s3cret-pw" not in line and "k3y-value" not in line
    else:
        assert "api_key=off" in line and "proxy=none" in line
