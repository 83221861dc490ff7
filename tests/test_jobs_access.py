"""API key and Origin checks on the job endpoints and WebSockets."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import LiveServer, make_settings
from tests.fakes.jm import JmDouble
from tests.wsclient import follow


@pytest.fixture
def locked(tmp_path: Path, jm_double: JmDouble):
    settings = make_settings(tmp_path, jm_double, api_key="s3cret", cors_origins=["https://app.example"])
    with LiveServer(settings) as live:
        yield live


async def test_api_key_is_required_to_start_and_fetch_jobs(locked: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=locked.url) as http:
        refused = await http.post("/v1/download/album/100001")
        assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]
        wrong = await http.post("/v1/download/album/100001", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        started = await http.post("/v1/download/album/100001", headers={"X-API-Key": "s3cret"})
        assert started.status_code == 202
        job_id = started.json()["job_id"]
        assert (await http.get(f"/v1/jobs/{job_id}")).status_code == 401
        assert (await http.delete(f"/v1/jobs/{job_id}")).status_code == 401
        frames = await follow(f"{locked.ws_url}/ws/jobs/{job_id}?api_key=s3cret")
        assert frames[-1]["event"] == "download_ready"
        assert (await http.get(f"/v1/download/{frames[-1]['file_name']}")).status_code == 401
        ok = await http.get(f"/v1/download/{frames[-1]['file_name']}", headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        # Read endpoints stay open.
        assert (await http.get("/v1/health")).status_code == 200


async def test_websocket_without_key_or_from_a_foreign_origin_is_refused(locked: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as no_key:
        await follow(f"{locked.ws_url}/ws/notifications/someone", timeout=5)
    assert no_key.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as foreign:
        await follow(f"{locked.ws_url}/ws/notifications/someone?api_key=s3cret", timeout=5,
                     origin="https://evil.example")  # type: ignore[arg-type]
    assert foreign.value.response.status_code == 403
    frames = await follow(f"{locked.ws_url}/ws/jobs/unknown?api_key=s3cret", timeout=5,
                          origin="https://app.example")  # type: ignore[arg-type]
    assert frames[0]["event"] == "error"
    assert frames[-1] == {"event": "closed", "code": 4404}


async def test_unknown_websocket_path_closes_as_not_found(live) -> None:
    frames = await follow(f"{live.ws_url}/ws/notification/typo", timeout=5)
    assert frames == [{"event": "closed", "code": 4404}]
    frames = await follow(f"{live.ws_url}/nothing/here", timeout=5)
    assert frames == [{"event": "closed", "code": 4404}]
