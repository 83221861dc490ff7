"""CBZ acquisition: join or start the album job (format cbz), and wait a while for its archive."""

from __future__ import annotations

import asyncio
import time

from app.errors import UpstreamError
from app.jobs.kinds.album import AlbumSpec
from app.jobs.models import Job, JobState
from app.jobs.service import JobService

POLL_SECONDS = 0.2
RETRY_AFTER_SECONDS = 5  # what a reader is told to wait when the archive is not ready yet


class StillBuilding(Exception):
    """The archive was not ready within the wait; ask again (it joins the same job)."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.job_id)
        self.job = job

    @property
    def retry_after(self) -> int:
        return RETRY_AFTER_SECONDS


async def cbz_archive(jobs: JobService, album_id: str, chapter: str | None, wait_seconds: float) -> Job:
    """The ready job of this album's (or chapter's) CBZ, started or joined exactly as
    ``POST /v1/download/album/{aid}`` with ``format: "cbz"`` would."""
    spec = AlbumSpec(album_id=album_id, format="cbz", chapters=(chapter,) if chapter else None)
    job, _created = await jobs.submit(spec, None)
    deadline = time.monotonic() + wait_seconds
    while True:
        if job.state == JobState.READY:
            return job
        if job.state.final:
            # The album and chapter were checked before submitting: what is left is upstream.
            raise UpstreamError(job.error or f"The download of album {album_id} did not finish ({job.state}).")
        if time.monotonic() >= deadline:
            raise StillBuilding(job)
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        job = await jobs.get(job.job_id)
