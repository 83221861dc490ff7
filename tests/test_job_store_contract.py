"""One contract, both job stores: the embedded SQLite store and the Redis store (on a real
redis-server) behave the same for everything the job service asks of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.jobs.kinds.album import AlbumSpec
from app.jobs.models import Job, JobState, Skip, new_job_id
from app.jobs.store import JobStore, SqliteJobStore
from tests.conftest import wait_for
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


async def test_is_notified_reads_what_the_final_delivery_recorded(store: JobStore) -> None:
    job, _ = await store.create_or_join(album_job(), "phone")
    assert not await store.is_notified(job.job_id, "phone")
    assert not await store.is_notified("no-such-job", "phone")

    def delivered(j: Job) -> None:
        j.notified.append("phone")

    await store.update(job.job_id, delivered, durable=False)
    assert await store.is_notified(job.job_id, "phone") and not await store.is_notified(job.job_id, "desk")


async def test_a_final_delivered_to_many_sockets_of_one_client_is_recorded_once(
    store: JobStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst: 100 sockets of one client id get the same final at once. The first records it; in
    the embedded store the others find it recorded, with no change of their own (each change copies
    the whole record: 1,000 sockets at once made the last frame twice as late)."""
    import asyncio

    from app.jobs import follow
    from app.jobs.events import LocalEventHub

    job, _ = await store.create_or_join(album_job(), "phone")
    changes: list[str] = []
    update = store.update

    async def counted(job_id: str, mutate: object, **kwargs: object) -> Job | None:
        changes.append(job_id)
        return await update(job_id, mutate, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "update", counted)
    feed = follow.Feed(LocalEventHub(), store)
    await asyncio.gather(*(follow.mark_notified(feed, job.job_id, "phone") for _ in range(100)))
    stored = await store.get(job.job_id)
    assert stored is not None and stored.notified == ["phone"]
    if isinstance(store, SqliteJobStore):  # Redis: the sockets' reads may all answer before the first change lands
        assert len(changes) == 1
    else:
        assert 1 <= len(changes) <= 100


async def test_a_progress_change_waits_for_a_durable_change_of_its_job(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A change written behind (progress) never overtakes one still on its way to disk: applied
    at once, it would be lost when the durable change reaches memory with the record it copied."""
    import asyncio

    store = SqliteJobStore(tmp_path / "jobs.db")
    await store.open()
    try:
        job, _ = await store.create_or_join(album_job(), None)
        on_disk = asyncio.Event()
        persist = store._persist

        async def slow_persist(changed: Job) -> None:
            await on_disk.wait()
            await persist(changed)

        monkeypatch.setattr(store, "_persist", slow_persist)

        def ready(j: Job) -> None:
            j.state = JobState.READY

        def progress(j: Job) -> None:
            j.done = 5

        final = asyncio.create_task(store.update(job.job_id, ready))
        await wait_for(lambda: store._job_locks.busy(job.job_id), interval=0)
        later = asyncio.create_task(store.update(job.job_id, progress, durable=False))
        for _ in range(20):  # loop turns: a change applied at once would be done after the first
            await asyncio.sleep(0)
        assert not later.done()  # waits for the durable change instead of slipping in before it
        on_disk.set()
        await asyncio.gather(final, later)
        stored = await store.get(job.job_id)
        assert stored is not None and stored.state == JobState.READY and stored.done == 5
    finally:
        await store.close()


def full_job() -> Job:
    """A job with something in every container field, nested."""
    return album_job(state=JobState.READY, done=3, total=3, client_ids=["phone"], notified=["phone"],
                     client_joined_at={"phone": 1.5}, skipped=[{"post_id": 7, "reason": "gone"}],
                     library_paths=["a/b.cbz"], final_frame={"event": "download_ready", "tags": ["x", {"y": [1]}]})


def containers(value: object) -> list[int]:
    """The ids of every dict and list in ``value``, nested ones included."""
    if isinstance(value, dict):
        return [id(value), *(i for item in value.values() for i in containers(item))]
    if isinstance(value, list):
        return [id(value), *(i for item in value for i in containers(item))]
    return []


def test_a_copy_of_a_job_equals_it_and_shares_nothing_that_can_change() -> None:
    """The stores hand out copies and change copies (copy on write): a copy that shared a list or a
    dict with the job in memory would let a caller change the stored job behind the store's back."""
    import dataclasses

    job = full_job()
    twin = job.copy()
    assert twin == job and type(twin.state) is JobState
    originals = {i for name in (f.name for f in dataclasses.fields(Job)) for i in containers(getattr(job, name))}
    copied = {i for name in (f.name for f in dataclasses.fields(Job)) for i in containers(getattr(twin, name))}
    assert originals and not originals & copied
    twin.final_frame["tags"][1]["y"].append(2)  # type: ignore[index]
    twin.notified.append("desk")
    assert job.final_frame == {"event": "download_ready", "tags": ["x", {"y": [1]}]} and job.notified == ["phone"]


def test_a_jobs_record_is_what_dataclasses_asdict_gave_and_reads_back_as_the_job() -> None:
    import dataclasses
    import json

    job = full_job()
    record = job.to_record()
    assert record == {**dataclasses.asdict(job), "state": "ready"} and type(record["state"]) is str
    assert not set(containers(record)) & {i for name in record for i in containers(getattr(job, name))}
    assert Job.from_record(json.loads(json.dumps(record))) == job
