"""Job state, cancellation and archive files."""

from __future__ import annotations

import os
import unicodedata
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from app.api.deps import ApiKey, JobsDep
from app.archives import FORMATS, format_for_file
from app.errors import NotFound
from app.jobs.models import Job, JobState

router = APIRouter(tags=["jobs"], dependencies=[ApiKey])

# Every archive format's media type, so the OpenAPI document lists what a download can be.
ARCHIVE_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {fmt.media_type: {} for fmt in FORMATS.values()},
          "description": "The archive: " + "; ".join(f"{f.extension} ({f.media_type}): {f.description}"
                                                      for f in FORMATS.values())},
}


@router.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """Show a job's state and counters."""
    return (await jobs.get(job_id)).public()


@router.delete("/v1/jobs/{job_id}")
async def delete_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """Cancel a queued or running job, or delete a finished job's archive."""
    return (await jobs.cancel(job_id)).public()


@router.get("/v1/jobs/{job_id}/file", response_class=FileResponse,
            responses=ARCHIVE_CONTENT)
async def job_file(job_id: str, jobs: JobsDep, request: Request) -> Response:
    """Download a ready job's archive (byte ranges honoured)."""
    job = await jobs.get(job_id)
    if job.state != JobState.READY:
        raise NotFound(f"This job has no archive to download (its state is {job.state}).")
    return _archive_response(jobs, job)


@router.get("/v1/download/{file_name}", response_class=FileResponse,
            responses=ARCHIVE_CONTENT)
async def download_file(file_name: str, jobs: JobsDep) -> Response:
    """Download an archive by the file_name that download_ready announced (byte ranges honoured)."""
    path = jobs.storage.archive_path(file_name)
    job = await jobs.store.get_by_file_name(file_name) if path is not None else None
    if job is None or job.state != JobState.READY or path is None or not path.is_file():
        detail = "No archive has that name: it never existed, expired, or was deleted."
        return JSONResponse({"status": "error", "msg": detail, "detail": detail}, status_code=404)
    return _archive_response(jobs, job)


def _archive_response(jobs: JobsDep, job: Job) -> Response:
    path = jobs.storage.archive_path(job.file_name)
    if path is None or not path.is_file():
        raise NotFound("The archive has expired or was deleted.")
    fmt = format_for_file(job.file_name)
    return FileResponse(
        path,
        media_type=fmt.media_type if fmt is not None else "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(job.download_name or job.file_name, job.file_name),
            "Cache-Control": "private, max-age=0, no-transform",
        },
    )


def content_disposition(name: str, fallback: str) -> str:
    """Both forms: ``filename`` (ASCII, for curl -OJ and old clients) and ``filename*`` (UTF-8)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = "".join(c if c.isprintable() and c not in '"\\;' else "_" for c in ascii_name).strip()
    if not os.path.splitext(ascii_name)[0].strip(" ._[]"):
        ascii_name = fallback
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
