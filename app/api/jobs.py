"""Job state, cancellation and archive files."""

from __future__ import annotations

import os
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from app.api.archive_files import archive_response, signed_link
from app.api.deps import ApiKey, JobsDep
from app.api.schemas import (
    ARCHIVE_TYPES,
    FILE_NAME_PATTERN,
    JOB_ID_PATTERN,
    JobList,
    JobOut,
    MissingArchive,
    errors,
)
from app.errors import Conflict, NotFound
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
from app.jobs.models import CLIENT_ID_PATTERN, Job, JobState

router = APIRouter(tags=["jobs"], dependencies=[ApiKey], responses=errors(401))

JobIdPath = Annotated[str, Path(description="the job_id a download answered with",
                                json_schema_extra={"pattern": JOB_ID_PATTERN})]
REDIRECT: dict[int | str, dict[str, Any]] = {
    307: {"description": "JMBOORU_S3_REDIRECT=1: Location is a presigned URL of the archive in the bucket."},
}
ARCHIVE: dict[int | str, dict[str, Any]] = {
    200: {"content": ARCHIVE_TYPES, "description": "The whole archive."},
    206: {"content": ARCHIVE_TYPES, "description": "The requested byte range."},
    **errors(400, 416),  # a malformed Range header, or one past the end of the file
}


class SignedLinkOut(BaseModel):
    url: str = Field(description="a presigned GET URL (AWS SigV4) on the bucket's public endpoint")
    expires_at: str = Field(description="ISO time the URL stops working")


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


@router.get("/v1/jobs/{job_id}/file", response_class=FileResponse,
            responses={**ARCHIVE, **REDIRECT, **errors(404, 409, 503)})
async def job_file(job_id: JobIdPath, jobs: JobsDep, request: Request) -> Response:
    """Download a ready job's archive (byte ranges honoured)."""
    job = await jobs.get(job_id)
    if job.state != JobState.READY:
        raise NotFound(f"This job has no archive to download (its state is {job.state}).")
    if not job.file_name and job.library_paths:
        raise Conflict("This job filed its books into the reader library (see library_paths); it has no archive "
                       "to download.")
    return await _archive_response(jobs, job, request)


@router.get("/v1/jobs/{job_id}/link", response_model=SignedLinkOut, responses=errors(404, 503))
async def job_link(job_id: JobIdPath, jobs: JobsDep) -> dict[str, Any]:
    """A short-lived signed URL of a ready job's archive in the S3 bucket (for bots that post links)."""
    job = await jobs.get(job_id)
    if jobs.archives.mode != "s3":
        raise NotFound("Signed links need JMBOORU_STORAGE=s3; this server keeps archives in its data folder.")
    if job.state != JobState.READY:
        raise NotFound(f"This job has no archive to link to (its state is {job.state}).")
    link = await signed_link(jobs.archives, job, jobs.settings.s3_presign_ttl_seconds)
    expires = datetime.fromtimestamp(link.expires_at, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"url": link.url, "expires_at": expires}


@router.get("/v1/download/{file_name}", response_class=FileResponse, responses={
    **ARCHIVE, **REDIRECT, **errors(503),
    404: {"model": MissingArchive, "description": "No archive has that name (never existed, expired, deleted)."},
})
async def download_file(
    jobs: JobsDep,
    request: Request,
    file_name: str = Path(description="the file_name that download_ready announced",
                          json_schema_extra={"pattern": FILE_NAME_PATTERN}),
) -> Response:
    """Download an archive by the file_name that download_ready announced (byte ranges honoured)."""
    detail = "No archive has that name: it never existed, expired, or was deleted."
    missing = JSONResponse({"status": "error", "msg": detail, "detail": detail}, status_code=404)
    job = await jobs.find_by_file_name(file_name)  # None also for a name no archive can have
    if job is None or job.state != JobState.READY:
        return missing
    try:
        return await _archive_response(jobs, job, request)
    except NotFound:
        return missing


async def _archive_response(jobs: JobsDep, job: Job, request: Request) -> Response:
    # Archive store: a file here, a stream from the bucket, or a redirect to a signed URL.
    settings = jobs.settings
    headers = {
        "Content-Disposition": content_disposition(job.download_name or job.file_name, job.file_name),
        "Cache-Control": "private, max-age=0, no-transform",
    }
    return await archive_response(jobs.archives, job, request, headers, redirect=settings.s3_redirect,
                                  presign_ttl=settings.s3_presign_ttl_seconds)


def content_disposition(name: str, fallback: str) -> str:
    """Both forms: ``filename`` (ASCII, for curl -OJ and old clients) and ``filename*`` (UTF-8)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = "".join(c if c.isprintable() and c not in '"\\;' else "_" for c in ascii_name).strip()
    if not os.path.splitext(ascii_name)[0].strip(" ._[]"):
        ascii_name = fallback
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
