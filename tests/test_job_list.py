"""The shared job list (GET /v1/jobs): filters, paging and queue positions, on both job stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.jobs.kinds.album import AlbumSpec
from app.jobs.listing import Cursor, JobQuery, page_and_cursor
from app.jobs.models import Job, JobState, new_job_id
from app.jobs.redis.store import RedisJobStore, connect
from app.jobs.store import JobStore, SqliteJobStore
from tests.cluster import RedisServer
from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.jm import FakeAlbum, JmDouble


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        made: JobStore = SqliteJobStore(tmp_path / "jobs.db")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        redis = connect(server.url)
        await redis.flushdb()
        made = RedisJobStore(redis)
    await made.open()
    yield made
    await made.close()


async def add_job(store: JobStore, album_id: str, created_at: float, client_id: str | None,
                  state: JobState = JobState.QUEUED) -> Job:
    job = Job.for_spec(AlbumSpec(album_id=album_id), new_job_id(), created_at=created_at)
    job, created = await store.create_or_join(job, client_id)
    assert created
    if state != JobState.QUEUED:
        def move(j: Job) -> None:
            j.state = state
        await store.update(job.job_id, move)
    return job


async def walk(store: JobStore, query: JobQuery) -> list[list[str]]:
    """Every page, following the cursors, as lists of album ids."""
    pages: list[list[str]] = []
    while True:
        jobs, cursor = page_and_cursor(await store.page(query), query.limit)
        pages.append([j.params["album_id"] for j in jobs])
        if cursor is None:
            return pages
        query = JobQuery(client_id=query.client_id, states=query.states, limit=query.limit,
                         before=Cursor.decode(cursor))


async def test_store_pages_newest_first_with_filters(store: JobStore) -> None:
    # Ten jobs; two share a creation time, so the cursor must also break ties by id.
    for n in range(10):
        created = 1_000.0 + (n if n != 5 else 4)
        await add_job(store, str(100 + n), created, "phone" if n % 2 else "desktop",
                      JobState.READY if n % 3 == 0 else JobState.QUEUED)
    everything = await walk(store, JobQuery(limit=3))
    assert [len(p) for p in everything] == [3, 3, 3, 1]
    flat = [aid for page in everything for aid in page]
    assert sorted(flat) == [str(100 + n) for n in range(10)]  # each job once, none skipped
    assert flat[:4] == ["109", "108", "107", "106"] and set(flat[4:6]) == {"105", "104"}
    assert flat[6:] == ["103", "102", "101", "100"]

    phone = [aid for page in await walk(store, JobQuery(client_id="phone", limit=2)) for aid in page]
    assert phone == ["109", "107", "105", "103", "101"]
    ready = [aid for page in await walk(store, JobQuery(states=frozenset({JobState.READY}), limit=50))
             for aid in page]
    assert ready == ["109", "106", "103", "100"]
    both = await walk(store, JobQuery(client_id="desktop", states=frozenset({JobState.QUEUED}), limit=50))
    assert both == [["108", "104", "102"]]
    assert await walk(store, JobQuery(client_id="nobody")) == [[]]


async def test_store_knows_the_queue_order(store: JobStore) -> None:
    first = await add_job(store, "201", 2_000.0, None)
    done = await add_job(store, "202", 2_001.0, None, JobState.RUNNING)
    last = await add_job(store, "203", 2_002.0, None)
    assert await store.queued_order() == [first.job_id, last.job_id]
    assert done.job_id not in await store.queued_order()
    await store.delete(first.job_id)
    assert await store.queued_order() == [last.job_id]


@pytest.fixture
async def slow_http(tmp_path: Path, jm_double: JmDouble) -> AsyncIterator[httpx.AsyncClient]:
    """One download at a time, and each takes a while: the rest wait in the queue."""
    for n in range(4):
        jm_double.add_album(FakeAlbum.single(str(190900 + n), f"Queued Album {n}", 20))
        jm_double.set_latency(0.3, f"/media/photos/{190900 + n}/")
    settings = make_settings(tmp_path / "data", jm_double, max_concurrent_jobs=1)
    async with app_client(settings) as http:
        yield http


async def test_queued_jobs_carry_their_position(slow_http: httpx.AsyncClient) -> None:
    ids = []
    for n in range(4):
        resp = await slow_http.post(f"/v1/download/album/{190900 + n}", json={"client_id": "desk"})
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["job_id"])

    async def first_running() -> bool:
        return (await slow_http.get(f"/v1/jobs/{ids[0]}")).json()["state"] == "running"

    await wait_for(first_running, timeout=20)
    third = (await slow_http.get(f"/v1/jobs/{ids[3]}")).json()
    assert third["state"] == "queued" and third["position"] == 3
    assert third["message"] == "Waiting: 2 downloads ahead."
    second = (await slow_http.get(f"/v1/jobs/{ids[1]}")).json()
    assert second["position"] == 1 and second["message"] == "Waiting: next to start."
    assert (await slow_http.get(f"/v1/jobs/{ids[0]}")).json()["position"] is None

    listed = (await slow_http.get("/v1/jobs", params={"state": "queued"})).json()
    assert [(j["job_id"], j["position"]) for j in listed["jobs"]] == [(ids[3], 3), (ids[2], 2), (ids[1], 1)]

    # Cancelling the one in front moves everyone behind it up.
    assert (await slow_http.delete(f"/v1/jobs/{ids[1]}")).json()["state"] == "cancelled"
    third = (await slow_http.get(f"/v1/jobs/{ids[3]}")).json()
    assert third["position"] == 2 and third["message"] == "Waiting: 1 download ahead."
    for job_id in ids:
        await slow_http.delete(f"/v1/jobs/{job_id}")


async def test_job_list_endpoint_filters_and_pages(slow_http: httpx.AsyncClient) -> None:
    for n, client in enumerate(["phone", "desk", "phone"]):
        resp = await slow_http.post(f"/v1/download/album/{190900 + n}", json={"client_id": client})
        assert resp.status_code == 202
    page = (await slow_http.get("/v1/jobs", params={"limit": 2})).json()
    assert [j["params"]["album_id"] for j in page["jobs"]] == ["190902", "190901"] and page["next"]
    rest = (await slow_http.get("/v1/jobs", params={"limit": 2, "before": page["next"]})).json()
    assert [j["params"]["album_id"] for j in rest["jobs"]] == ["190900"] and rest["next"] is None
    phone = (await slow_http.get("/v1/jobs", params={"client_id": "phone"})).json()
    assert [j["params"]["album_id"] for j in phone["jobs"]] == ["190902", "190900"]
    one = phone["jobs"][0]
    assert one == {**(await slow_http.get(f"/v1/jobs/{one['job_id']}")).json(), "position": one["position"]}
    cancelled = (await slow_http.get("/v1/jobs", params={"state": "cancelled,failed"})).json()
    assert cancelled == {"jobs": [], "next": None}
    for job in page["jobs"] + rest["jobs"]:
        await slow_http.delete(f"/v1/jobs/{job['job_id']}")


@pytest.mark.parametrize(("params", "words"), [
    ({"state": "done"}, ["state 'done'", "queued", "expired"]),
    ({"limit": "0"}, ["limit", "200"]),
    ({"limit": "201"}, ["limit", "200"]),
    ({"limit": "many"}, ["limit"]),
    ({"before": "not-a-cursor!"}, ["before", "next"]),
    ({"client_id": "has spaces"}, ["client_id"]),
])
async def test_job_list_refuses_bad_values_with_a_sentence(client: httpx.AsyncClient, params: dict[str, str],
                                                           words: list[str]) -> None:
    resp = await client.get("/v1/jobs", params=params)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and all(w in detail for w in words), detail


async def test_job_list_needs_the_api_key(tmp_path: Path, jm_double: JmDouble) -> None:
    async with app_client(make_settings(tmp_path / "data", jm_double, api_key="s3cret")) as http:
        assert (await http.get("/v1/jobs")).status_code == 401
        resp = await http.get("/v1/jobs", headers={"X-API-Key": "s3cret"})
        assert resp.status_code == 200 and resp.json() == {"jobs": [], "next": None}



async def test_scale_out_positions_count_every_queued_job(tmp_path: Path, jm_double: JmDouble,
                                                          redis_server: RedisServer) -> None:
    # An API process with no worker running: every job waits in the shared Redis queue.
    redis = connect(redis_server.url)
    await redis.flushdb()
    await redis.aclose()
    settings = make_settings(tmp_path / "data", jm_double, redis_url=redis_server.url)
    async with app_client(settings) as http:
        ids = []
        for aid in ("100001", "200001", "100003"):
            resp = await http.post(f"/v1/download/album/{aid}", json={"client_id": "phone"})
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["job_id"])
        listed = (await http.get("/v1/jobs", params={"client_id": "phone"})).json()
        assert [(j["job_id"], j["position"]) for j in listed["jobs"]] == [(ids[2], 3), (ids[1], 2), (ids[0], 1)]
        assert listed["jobs"][0]["message"] == "Waiting: 2 downloads ahead."
        await http.delete(f"/v1/jobs/{ids[0]}")
        assert (await http.get(f"/v1/jobs/{ids[2]}")).json()["position"] == 2
