"""The sweep: expired archives, leftovers of dead jobs, and old job records."""

from __future__ import annotations

import os
import time

import httpx

from app.jobs.models import Job, JobState
from app.jobs.service import JobService
from tests.conftest import wait_for


async def ready(jobs: JobService, job_id: str) -> Job:
    async def is_ready() -> Job | None:
        job = await jobs.get(job_id)
        return job if job.state == JobState.READY else None

    job: Job = await wait_for(is_ready, message=f"job {job_id} did not get ready")
    return job


async def test_sweep_removes_leftovers_but_keeps_live_archives(client: httpx.AsyncClient, settings) -> None:
    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    started = (await client.post("/v1/download/album/100001")).json()
    job = await ready(jobs, started["job_id"])
    archives = settings.data_path / "archives"
    work = settings.data_path / "work"
    stray_work = work / "deadjobdeadjob00"
    stray_work.mkdir(parents=True)
    (stray_work / "00001.webp").write_bytes(b"partial")
    stray_part = archives / "jm-1-deadjobdea.zip.part"
    stray_part.write_bytes(b"half a zip")
    orphan = archives / "jm-2-orphanorph.zip"
    orphan.write_bytes(b"no job owns this")
    old = time.time() - 3600
    for path in (stray_work, stray_part, orphan):
        os.utime(path, (old, old))

    assert await jobs.sweep() == 0
    assert not stray_work.exists() and not stray_part.exists() and not orphan.exists()
    assert (archives / job.file_name).exists()
    assert (await client.get(f"/v1/download/{job.file_name}")).status_code == 200


async def test_archive_deleted_by_hand_marks_the_job_expired(client: httpx.AsyncClient, settings) -> None:
    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    job_id = (await client.post("/v1/download/album/100003")).json()["job_id"]
    job = await ready(jobs, job_id)
    (settings.data_path / "archives" / job.file_name).unlink()
    assert await jobs.sweep() == 1
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["state"] == "expired"


async def test_finished_jobs_are_forgotten_after_a_week(client: httpx.AsyncClient) -> None:
    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    old = Job(job_id="oldjoboldjob0001", kind="album", key="album:1", params={"album_id": "1"},
              state=JobState.FAILED, finished_at=time.time() - 8 * 24 * 3600)
    await jobs._store.create_or_join(old, None)
    assert (await client.get("/v1/jobs/oldjoboldjob0001")).status_code == 200
    await jobs.sweep()
    assert (await client.get("/v1/jobs/oldjoboldjob0001")).status_code == 404
