"""Job state, cancellation and archive files."""

from __future__ import annotations

import os
import unicodedata
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from app.api.deps import ApiKey, JobsDep
from app.api.schemas import (
    ARCHIVE_TYPES,
    CLIENT_ID_PATTERN,
    FILE_NAME_PATTERN,
    JOB_ID_PATTERN,
    JobList,
    JobOut,
    MissingArchive,
    errors,
)
from app.archives import format_for_file
from app.errors import NotFound
from app.jobs.listing import (
    CURSOR_SCHEMA_PATTERN,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    STATES_PATTERN,
    Cursor,
    JobQuery,
    parse_limit,
    parse_states,
)
from app.jobs.models import Job, JobState

router = APIRouter(tags=["jobs"], dependencies=[ApiKey], responses=errors(401))

JobIdPath = Annotated[str, Path(description="the job_id a download answered with",
                                json_schema_extra={"pattern": JOB_ID_PATTERN})]
ARCHIVE: dict[int | str, dict[str, Any]] = {
    200: {"content": ARCHIVE_TYPES, "description": "The whole archive."},
    206: {"content": ARCHIVE_TYPES, "description": "The requested byte range."},
}

@router.get("/v1/jobs", response_model=JobList, responses=errors(422, 503))
async def list_jobs(
    jobs: JobsDep,
    client_id: Annotated[str | None, Query(pattern=CLIENT_ID_PATTERN,
                                           description="only the jobs this client started or joined")] = None,
    # Patterns documented, checked by hand: a wrong value gets a sentence naming what is allowed.
    state: Annotated[str | None, Query(description="comma-separated states, e.g. queued,running",
                                       examples=["queued,running"],
                                       json_schema_extra={"pattern": STATES_PATTERN})] = None,
    limit: Annotated[int, Query(description=f"1 to {MAX_LIMIT}",
                                json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT})] = DEFAULT_LIMIT,
    before: Annotated[str | None, Query(description="the 'next' of the previous page",
                                        json_schema_extra={"pattern": CURSOR_SCHEMA_PATTERN})] = None,
) -> dict[str, Any]:
    """List the server's jobs, newest first (every client's, or one client's), a page at a time."""
    query = JobQuery(client_id=client_id, states=parse_states(state), limit=parse_limit(limit),
                     before=Cursor.decode(before) if before is not None else None)
    shown, cursor = await jobs.page(query)
    return {"jobs": shown, "next": cursor}


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=errors(404, 503))
async def get_job(job_id: JobIdPath, jobs: JobsDep) -> dict[str, Any]:
    """Show a job's state and counters (a queued job: its place in the queue)."""
    return (await jobs.describe([await jobs.get(job_id)]))[0]


@router.delete("/v1/jobs/{job_id}", response_model=JobOut, responses=errors(404, 503))
async def delete_job(job_id: JobIdPath, jobs: JobsDep) -> dict[str, Any]:
    """Cancel a queued or running job, or delete a finished job's archive."""
    return (await jobs.cancel(job_id)).public()


@router.get("/v1/jobs/{job_id}/file", response_class=FileResponse, responses={**ARCHIVE, **errors(404, 503)})
async def job_file(job_id: JobIdPath, jobs: JobsDep, request: Request) -> Response:
    """Download a ready job's archive (byte ranges honoured)."""
    job = await jobs.get(job_id)
    if job.state != JobState.READY:
        raise NotFound(f"This job has no archive to download (its state is {job.state}).")
    return _archive_response(jobs, job)


@router.get("/v1/download/{file_name}", response_class=FileResponse, responses={
    **ARCHIVE, **errors(503),
    404: {"model": MissingArchive, "description": "No archive has that name (never existed, expired, deleted)."},
})
async def download_file(
    jobs: JobsDep,
    file_name: str = Path(description="the file_name that download_ready announced",
                          json_schema_extra={"pattern": FILE_NAME_PATTERN}),
) -> Response:
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
