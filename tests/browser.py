"""Playwright with Debian's Chromium for the web page tests: launching, and watching a page.

Playwright cannot download its own browsers here, so it drives the system's Chromium, found by
``tests/tools.py`` (``.ci/run`` installs it). A missing Chromium skips these tests with a reason on
a developer's machine and fails them in CI (``CI=true``).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    WebSocket,
    expect,
    sync_playwright,
)

from tests import tools

# How long an expect() waits for the page to get there. Playwright's 5 s was too short for Redoc
# rendering the whole OpenAPI document on a slow shared machine with the other test worker busy
# (10 s for /docs and /redoc together there); a page that never gets there still fails, later.
expect.set_options(timeout=20_000)

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[tuple[Playwright, Browser]]:
    executable = tools.require("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield playwright, browser
        finally:
            browser.close()


class PageWatch:
    """Records every request and WebSocket a page opens, and its console errors and exceptions."""

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = urlsplit(origin).netloc
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.allowed_failures: list[tuple[int, str]] = []  # (status, path prefix) a test expects
        page.on("request", self._request)
        page.on("websocket", self._websocket)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def allow_failure(self, status: int, path_prefix: str) -> None:
        self.allowed_failures.append((status, path_prefix))

    def _request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data",):
            return
        if parts.scheme == "blob":
            parts = urlsplit(request.url[len("blob:"):])
        if parts.netloc != self.origin or parts.scheme not in ("http", "https"):
            self.outside.append(request.url)

    def _websocket(self, ws: WebSocket) -> None:
        parts = urlsplit(ws.url)
        if parts.netloc != self.origin or parts.scheme not in ("ws", "wss"):
            self.outside.append(ws.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        path = urlsplit(message.location.get("url", "")).path
        for status, prefix in self.allowed_failures:
            if f"status of {status}" in message.text and path.startswith(prefix):
                return
        self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    def check(self) -> None:
        assert self.outside == [], f"requests left the server's origin: {self.outside}"
        assert self.errors == [], f"the page logged errors: {self.errors}"


def saved_zip(page: Page, link: Any) -> zipfile.ZipFile:
    """Click a Save link and open what the browser downloaded."""
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.failure() is None
    with open(download.path(), "rb") as file:
        return zipfile.ZipFile(io.BytesIO(file.read()))
