"""Client ids are bearer names (issue 19, item 9): with JMBOORU_CORS_ORIGINS set, a browser page from
another origin cannot open a client's sockets; apps that send no Origin, and the server's own page,
still can."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from app.api.deps import origin_allowed
from tests.conftest import LiveServer, make_settings
from tests.fakes.jm import JmDouble
from tests.wsclient import follow

LISTED = ["https://app.example", "http://localhost:5173"]


@pytest.fixture
def listed(tmp_path: Path, jm_double: JmDouble) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path, jm_double, api_key="s3cret", cors_origins=LISTED)) as live:
        yield live


async def _opens(live: LiveServer, path: str, origin: str | None) -> bool:
    """Whether the upgrade is accepted (a job id nobody knows: accepted, an error frame, then 4404;
    a refused one is HTTP 403 before anything is sent, so a notifications socket returns at once too)."""
    extra = {"origin": origin} if origin is not None else {}
    try:
        frames = await follow(f"{live.ws_url}{path}?api_key=s3cret", timeout=10, **extra)
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
        return False
    assert frames[-1] == {"event": "closed", "code": 4404}, frames
    return True


@pytest.mark.parametrize("path", ["/ws/jobs/unknownjobidunknownjob", "/ws/notifications/phone-client"])
async def test_sockets_from_an_unlisted_origin_are_refused(listed: LiveServer, path: str) -> None:
    own = listed.url  # http://127.0.0.1:PORT: the server's own web page
    other_port = own.rsplit(":", 1)[0] + ":1"
    assert not await _opens(listed, path, "https://evil.example")
    assert not await _opens(listed, path, "null")  # a sandboxed frame or a file:// page
    assert not await _opens(listed, path, other_port)
    assert not await _opens(listed, path, "https://app.example.evil.example")


async def test_listed_origins_apps_without_origin_and_the_own_page_are_allowed(listed: LiveServer) -> None:
    path = "/ws/jobs/unknownjobidunknownjob"
    assert await _opens(listed, path, "https://app.example")
    assert await _opens(listed, path, "HTTPS://APP.EXAMPLE")  # origins compare case-insensitively
    assert await _opens(listed, path, None)  # the watch app and scripts send no Origin
    assert await _opens(listed, path, listed.url)


def test_origin_rules() -> None:
    host = "jm.lan:8000"
    assert origin_allowed(None, host, LISTED) and origin_allowed("", host, LISTED)
    assert origin_allowed("https://evil.example", host, ["*"])  # the default list allows every page
    assert origin_allowed("http://localhost:5173", host, LISTED)
    assert origin_allowed("http://jm.lan:8000", host, LISTED) and origin_allowed("https://jm.lan:8000", host, LISTED)
    assert not origin_allowed("http://jm.lan:8001", host, LISTED)
    assert not origin_allowed("http://jm.lan:8000", None, LISTED)
    assert not origin_allowed("chrome-extension://jm.lan:8000", host, LISTED)
    assert not origin_allowed("http://localhost:5174", host, LISTED)
