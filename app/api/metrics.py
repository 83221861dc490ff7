"""``GET /metrics``: Prometheus text, behind the API key when one is set."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app import metrics
from app.api.deps import ApiKey, JobsDep
from app.api.schemas import errors
from app.archive_store import ArchiveStoreUnavailable
from app.jobs.models import JobState

router = APIRouter(tags=["system"])


@router.get("/metrics", dependencies=[ApiKey], response_class=Response, responses={
    200: {"content": {metrics.CONTENT_TYPE: {"schema": {"type": "string"}}},
          "description": "Prometheus text format."},
    **errors(401),
})
async def prometheus(jobs: JobsDep) -> Response:
    """Requests, jobs, downloads, upstream calls, sockets and archive bytes, for Prometheus."""
    # The state gauges are read now; a store that is away leaves them as they were.
    try:
        metrics.set_job_counts(await jobs.jobs_in(list(JobState)))
    except Exception:  # noqa: BLE001 - metrics must answer even when the store does not
        pass
    try:  # archive store: a bucket that does not answer leaves the archive gauges as they were
        files, nbytes = await jobs.usage()
        metrics.set_archives(files, nbytes)
    except ArchiveStoreUnavailable:
        pass
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
