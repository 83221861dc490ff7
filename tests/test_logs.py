"""No secret in any log line: what httpx, uvicorn and our own code log is redacted at the source."""

from __future__ import annotations

import logging

import httpx
import pytest

from app import logs
from tests.fakes.jm import JmDouble


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def capture() -> Capture:
    handler = Capture()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("httpx", "jmbooru.test")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


async def test_httpx_request_lines_lose_the_api_key(capture: Capture, jm_double: JmDouble) -> None:
    logs.install_redaction(["0123456789abcdef-gelbooru"])
    async with httpx.AsyncClient() as client:
        await client.get(jm_double.url("/index.php"),
                         params={"page": "dapi", "api_key": "0123456789abcdef-gelbooru", "user_id": "42"})
    request_lines = [line for line in capture.lines if "HTTP Request" in line]
    assert request_lines, capture.lines
    assert all("0123456789abcdef-gelbooru" not in line for line in capture.lines)
    assert "api_key=***" in request_lines[0] and "user_id=42" in request_lines[0]


def test_known_secrets_urls_and_tracebacks_are_redacted(capture: Capture) -> None:
    logs.install_redaction(["hunter2-password"])
    log = logging.getLogger("jmbooru.test")
    log.warning("login failed for %s", "user with hunter2-password")
    log.warning("redis at %s", "redis://:s3cretpass@redis:6379/0")
    log.warning("header %r", {"Authorization": "Basic dXNlcjpwYXNz"})
    try:
        raise ValueError("GET https://gelbooru.com/index.php?page=dapi&api_key=abcdef123456 failed")
    except ValueError:
        log.exception("upstream broke")
    text = "\n".join(capture.lines)
    for secret in ("hunter2-password", "s3cretpass", "dXNlcjpwYXNz", "abcdef123456"):
        assert secret not in text, secret
    assert "redis://***:***@redis:6379/0" in text and "api_key=***" in text
