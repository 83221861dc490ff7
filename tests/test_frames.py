"""Every WebSocket frame is a ``JobFrame`` (issue 20, "wire shapes enforced"): real album, library,
booru and pool jobs run against the doubles, every frame both sockets send is checked against the
model with unknown keys refused, so a key added to a frame without the model fails here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ConfigDict, ValidationError
from websockets.asyncio.client import connect

from app.jobs.frames import FINAL_EVENTS, JobFrame, error_frame, vanished_frame
from tests.conftest import LiveServer, make_settings
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru import GelbooruDouble, make_posts
from tests.fakes.jm import JmDouble
from tests.test_pools import short_pool_double
from tests.wsclient import follow

CLIENT = "frames-client"


class StrictFrame(JobFrame):
    """The model as a test reads it: no key it does not declare, no value of another type."""

    model_config = ConfigDict(extra="forbid", strict=True)


def check(frame: dict[str, Any]) -> None:
    """A frame is the model's, key for key: nothing undeclared, nothing coerced, and no null for a key
    it does not carry (the one null a frame has: expires_at of a job that made no archive)."""
    parsed = StrictFrame.model_validate(frame)
    assert parsed.model_dump(exclude_unset=True) == frame
    assert [k for k, v in frame.items() if v is None] in ([], ["expires_at"]), frame


@pytest.fixture
def gelbooru() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(6, ext="mixed")) as double:
        yield double


@pytest.fixture
def danbooru() -> Iterator[DanbooruDouble]:
    with short_pool_double() as double:
        yield double


@pytest.fixture
def server(tmp_path: Path, jm_double: JmDouble, gelbooru: GelbooruDouble,
           danbooru: DanbooruDouble) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path / "data", jm_double, library_dir=tmp_path / "library",
                             gelbooru_url=gelbooru.base_url, gelbooru_api_key=gelbooru.api_key,
                             gelbooru_user_id=gelbooru.user_id, gelbooru_api_rate=1000,
                             danbooru_url=danbooru.base_url, danbooru_api_rate=1000)
    with LiveServer(settings) as live:
        yield live


async def notifications(url: str, finals: int, ready: asyncio.Event) -> list[dict[str, Any]]:
    """A client's notifications socket, read until it has sent ``finals`` final frames."""
    frames: list[dict[str, Any]] = []
    async with connect(url, compression=None) as ws:
        ready.set()
        while sum(f["event"] in FINAL_EVENTS for f in frames) < finals:
            frames.append(json.loads(await ws.recv()))
    return frames


async def test_every_frame_of_real_jobs_is_a_job_frame(server: LiveServer) -> None:
    base = f"{server.ws_url}/ws/notifications/{CLIENT}"
    opened = [asyncio.Event(), asyncio.Event()]
    # Six finals each: five jobs, and the album's final again when the client asks for it a second time.
    listeners = [asyncio.ensure_future(notifications(base, 6, opened[0])),
                 asyncio.ensure_future(notifications(f"{base}?progress=1", 6, opened[1]))]
    async with asyncio.timeout(90):
        await asyncio.gather(*(e.wait() for e in opened))
        followed: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=server.url) as http:
            for path, body in [("/v1/download/album/100001", {}),
                               ("/v1/download/album/200001", {"dest": "library"}),
                               ("/v1/download/booru/gelbooru", {"tags": "1girl", "max_images": 4}),
                               ("/v1/download/booru/gelbooru", {"tags": "no_such_tag_anywhere"}),
                               ("/v1/download/booru/danbooru/pool/7", {}),
                               ("/v1/download/album/100001", {})]:  # ready already: joined
                resp = await http.post(path, json={**body, "client_id": CLIENT})
                assert resp.status_code == 202, resp.text
                followed += await follow(f"{server.ws_url}/ws/jobs/{resp.json()['job_id']}")
        unknown = await follow(f"{server.ws_url}/ws/jobs/{'x' * 22}")
        finals_only, with_progress = await asyncio.gather(*listeners)

    assert unknown[-1] == {"event": "closed", "code": 4404}
    frames = followed + unknown[:-1] + finals_only + with_progress
    for frame in frames:
        check(frame)

    events = {f["event"] for f in frames}
    assert events == {"snapshot", "started", "progress", "download_ready", "failed", "error"}, events
    assert {f["kind"] for f in frames if "kind" in f} == {"album", "booru", "pool"}
    assert any(f.get("joined") for f in finals_only)
    # The model declares no key the server never sends: every one of its fields went out.
    assert set().union(*frames) == set(JobFrame.model_fields)


def test_the_frames_no_run_above_reaches_are_job_frames_too() -> None:
    check(vanished_frame("a" * 22, 7))
    check(error_frame("a" * 22, "There is no job with that id."))


def test_the_strict_model_refuses_a_key_it_does_not_declare() -> None:
    frame = error_frame("a" * 22, "gone")
    with pytest.raises(ValidationError, match="extra_forbidden"):
        check({**frame, "new_key": 1})
    with pytest.raises(ValidationError):
        check({**frame, "seq": "3"})  # a number as text is not a number
