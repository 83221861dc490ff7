"""One contract, both job stores: the embedded SQLite store and the Redis store (on a real
redis-server) behave the same for everything the job service asks of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.jobs.kinds.album import AlbumSpec
from app.jobs.models import Job, JobState, Skip, new_job_id
from app.jobs.store import JobStore, SqliteJobStore
from tests.tools import require


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        made: JobStore = SqliteJobStore(tmp_path / "jobs.db")
        await made.open()
        yield made
        await made.close()
        return
    require("redis-server")
    from app.jobs.redis.store import RedisJobStore, connect
    from tests.cluster import RedisServer

    server = RedisServer(tmp_path)
    redis = connect(server.url)
    made = RedisJobStore(redis)
    await made.open()
    try:
        yield made
    finally:
        await made.close()
        await redis.aclose()
        server.stop()


def album_job(album_id: str = "100001", **fields: object) -> Job:
    return Job.for_spec(AlbumSpec(album_id=album_id), new_job_id(), **fields)  # type: ignore[arg-type]


async def test_a_second_request_joins_the_first_and_adds_its_client(store: JobStore) -> None:
    first, created = await store.create_or_join(album_job(), "phone")
    assert created
    again, created = await store.create_or_join(album_job(), "desk")
    assert not created and again.job_id == first.job_id and set(again.client_ids) == {"phone", "desk"}
    other, created = await store.create_or_join(album_job("100002"), "phone")
    assert created and other.job_id != first.job_id
    assert {j.job_id for j in await store.jobs_for_client("phone")} == {first.job_id, other.job_id}


async def test_update_is_atomic_and_a_skip_changes_nothing(store: JobStore) -> None:
    job, _ = await store.create_or_join(album_job(), None)

    def running(j: Job) -> None:
        j.state = JobState.RUNNING
        j.done = 3

    updated = await store.update(job.job_id, running)
    assert updated is not None and updated.state == JobState.RUNNING and updated.done == 3

    def refuse(j: Job) -> None:
        j.done = 99
        raise Skip

    with pytest.raises(Skip):
        await store.update(job.job_id, refuse)
    stored = await store.get(job.job_id)
    assert stored is not None and stored.done == 3
    assert await store.update("no-such-job", running) is None


async def test_finished_ready_jobs_are_found_by_file_name_and_listed_by_state(store: JobStore) -> None:
    job, _ = await store.create_or_join(album_job(), None)

    def ready(j: Job) -> None:
        j.state = JobState.READY
        j.file_name = "jm-100001-abc.zip"

    await store.update(job.job_id, ready)
    found = await store.get_by_file_name("jm-100001-abc.zip")
    assert found is not None and found.job_id == job.job_id
    assert [j.job_id for j in await store.list_states([JobState.READY])] == [job.job_id]
    assert await store.list_states([JobState.QUEUED]) == []


async def test_put_writes_back_and_delete_forgets(store: JobStore) -> None:
    job, _ = await store.create_or_join(album_job(), "phone")
    await store.delete(job.job_id)
    assert await store.get(job.job_id) is None
    job.state = JobState.FAILED
    await store.put(job)
    back = await store.get(job.job_id)
    assert back is not None and back.state == JobState.FAILED
