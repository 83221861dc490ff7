"""Answers for the archive file endpoints, wherever the archive store keeps them: a file on this host
(``RangeFileResponse``), a stream of ranged reads from a bucket with the same range rules, or a 307
to a signed URL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from app.api.ranges import _BYTE_RANGES, MALFORMED, RangeFileResponse
from app.archive_store import ArchiveStore, SignedLink
from app.archives import format_for_file
from app.errors import NotFound
from app.jobs.models import Job

EXPIRED = "The archive has expired or was deleted."


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one ``bytes=`` range as (start, end exclusive), by the rules ``RangeFileResponse`` applies
    to local files: None: send the whole archive (several ranges, which RFC 9110 lets a server
    ignore); a malformed header is a 400 and a range past the end a 416, each with a sentence."""
    if _BYTE_RANGES.fullmatch(header) is None:
        raise RangeRefused(JSONResponse({"detail": MALFORMED}, status_code=400))
    spec = header.split("=", 1)[1].strip()
    if "," in spec:
        return None
    first, last = (part.strip() for part in spec.split("-", 1))
    if not first:  # bytes=-n: the last n bytes
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), size if not last else min(size, int(last) + 1)
        if last and int(last) < start:
            raise RangeRefused(JSONResponse({"detail": MALFORMED + " The start must come before the end."},
                                            status_code=400))
    if start >= size or end <= start:
        raise RangeRefused(JSONResponse(
            {"detail": f"The requested range starts past the end of the file, which has {size} bytes."},
            status_code=416, headers={"Content-Range": f"bytes */{size}"}))
    return start, end


class RangeRefused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def signed_link(archives: ArchiveStore, job: Job, ttl_seconds: float) -> SignedLink:
    """A presigned GET, never valid past the archive's own expiry."""
    left = (job.expires_at - time.time()) if job.expires_at is not None else ttl_seconds
    if left < 1:
        raise NotFound(EXPIRED)
    link = await archives.sign(job.file_name, min(ttl_seconds, left))
    if link is None:
        raise NotFound("Signed links need JMBOORU_STORAGE=s3; this server keeps archives in its data folder.")
    return link


async def archive_response(archives: ArchiveStore, job: Job, request: Request, headers: dict[str, str],
                           *, redirect: bool, presign_ttl: float, media_type: str | None = None) -> Response:
    fmt = format_for_file(job.file_name)
    media_type = media_type or (fmt.media_type if fmt is not None else "application/octet-stream")
    path = archives.local_path(job.file_name)
    if path is not None:
        return RangeFileResponse(path, media_type=media_type, headers=headers)
    if archives.mode == "local":
        raise NotFound(EXPIRED)
    if redirect:
        link = await signed_link(archives, job, presign_ttl)
        return RedirectResponse(link.url, status_code=307, headers={"Cache-Control": "no-store"})
    size = await archives.size(job.file_name)
    if size is None:
        raise NotFound(EXPIRED)
    header = request.headers.get("range")
    try:
        wanted = parse_range(header, size) if header is not None else None
    except RangeRefused as refused:
        return refused.response
    start, end = wanted if wanted is not None else (0, size)
    out = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(end - start)}
    if wanted is not None:
        out["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    chunks = archives.read(job.file_name, start, end)
    # The first chunk is asked for now, so an unreachable bucket is a 503 rather than a cut-off 200.
    first = await anext(aiter(chunks), b"")

    async def body() -> AsyncIterator[bytes | memoryview]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), status_code=206 if wanted is not None else 200,
                             media_type=media_type, headers=out)
