"""Secrets (issue 19, item 5): ``jmbooru config`` masks URL passwords, and a ``--log-level trace``
server never logs the API key, plain, %-encoded, or any long part of it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx
import websockets

from app.config_files import mask_url_credentials
from tests.conftest import BOORU_URLS, free_port, wait_serving

ROOT = Path(__file__).resolve().parent.parent
# Two `-`-separated parts of 12+ characters: each is a secret on its own.
API_KEY = "Zq7xKp2mVw9sLd-Hn4bRt8cYj6fGa-k3"
PARTS = ("Zq7xKp2mVw9sLd", "Hn4bRt8cYj6fGa")
JOB = "/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
    env.update({"PYTHONPATH": str(ROOT), **{f"JMBOORU_{k.upper()}": v for k, v in BOORU_URLS.items()}, **extra})
    return env


def test_url_credentials_are_masked_with_the_host_kept() -> None:
    assert mask_url_credentials("http://user:pa55@proxy.lan:3128") == "http://user:***@proxy.lan:3128"
    assert mask_url_credentials("socks5://u:p@h:1080,https://tok@h2/") == "socks5://u:***@h:1080,https://***@h2/"
    assert mask_url_credentials("redis://:pw@db:6379/0") == "redis://***@db:6379/0"
    assert mask_url_credentials("http://plain.example:8080") == "http://plain.example:8080"


def test_config_command_masks_the_proxy_password(tmp_path: Path) -> None:
    env = clean_env(JMBOORU_PROXY="http://alice:Pr0xyPa55word@proxy.example:3128",
                    JMBOORU_GELBOORU_URL="https://bob:B00ruPa55@gelbooru.example")
    out = subprocess.run([sys.executable, "-m", "app.cli", "config"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Pr0xyPa55word" not in out.stdout and "B00ruPa55" not in out.stdout
    lines = {line.split("=", 1)[0]: line for line in out.stdout.splitlines() if line.startswith("JMBOORU_")}
    assert lines["JMBOORU_PROXY"].startswith("JMBOORU_PROXY=http://alice:***@proxy.example:3128  #")
    assert "https://bob:***@gelbooru.example" in lines["JMBOORU_GELBOORU_URL"]


def test_no_form_of_the_api_key_reaches_a_trace_log(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    env = clean_env(JMBOORU_API_KEY=API_KEY, JMBOORU_DATA_DIR=str(tmp_path / "data"),
                    JMBOORU_JM_API_DOMAINS="127.0.0.1:9", JMBOORU_JM_IMAGE_DOMAINS="127.0.0.1:9")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port),
                                 "--log-level", "trace"], cwd=tmp_path, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    encoded = urllib.parse.quote(API_KEY, safe="").replace("-", "%2D")  # what a strict client sends
    lower_hex = encoded.replace("%2D", "%2d")
    try:
        wait_serving(url, proc, log=log_path, timeout=60)
        with httpx.Client(base_url=url) as http:
            # 404: the key was accepted and the job looked up (401 without it)
            assert http.get(JOB, headers={"X-API-Key": API_KEY}).status_code == 404
            assert http.get(f"{JOB}?api_key={encoded}").status_code == 404
            assert http.get(f"{JOB}?api_key={lower_hex}&x=1").status_code == 404
            assert http.get(f"{JOB}?token={PARTS[1]}").status_code == 401
        ws_url = f"ws://127.0.0.1:{port}/ws/notifications/trace-test?api_key={encoded}"

        async def connect() -> None:
            async with websockets.connect(ws_url, open_timeout=10):
                pass

        asyncio.run(connect())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    text = log_path.read_text(errors="replace")
    assert "ASGI [" in text and "scope=" in text, text[-2000:]  # trace lines were logged
    assert "api_key=***" in text  # ...with the query strings that carried the key, masked
    forms = [API_KEY, encoded, lower_hex, urllib.parse.quote(API_KEY), *PARTS]
    leaks = [(form, line) for line in text.splitlines() for form in forms if form.lower() in line.lower()]
    assert leaks == [], leaks[:5]


def test_the_proxy_password_is_a_known_secret_for_the_logs(tmp_path: Path) -> None:
    from app.logs import settings_secrets
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, proxy="http://alice:Pr0xyPa55word@proxy.example:3128",
                             redis_url="redis://:R3disPa55@db:6379/0")
    assert {"Pr0xyPa55word", "R3disPa55"} <= set(settings_secrets(settings))
