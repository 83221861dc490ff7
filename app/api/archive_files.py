"""Answers for the archive file endpoints, wherever the archive store keeps them: a file on this host
(sendfile, ranges by Starlette), a stream of ranged reads from a bucket, or a 307 to a signed URL."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from app.archive_store import ArchiveStore, SignedLink
from app.archives import format_for_file
from app.errors import NotFound
from app.jobs.models import Job

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
EXPIRED = "The archive has expired or was deleted."


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """One ``bytes=`` range as (start, end exclusive); None: no usable range (send it all);
    False: unsatisfiable (416). Several ranges are answered with the whole file, as RFC 9110 allows."""
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # bytes=-n: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size
    start = int(first)
    if start >= size:
        return False
    end = size if not last else min(size, int(last) + 1)
    if end <= start:
        return None  # last < first: not a valid range, so it is ignored
    return start, end


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
                           *, redirect: bool, presign_ttl: float) -> Response:
    fmt = format_for_file(job.file_name)
    media_type = fmt.media_type if fmt is not None else "application/octet-stream"
    path = archives.local_path(job.file_name)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=headers)
    if archives.mode == "local":
        raise NotFound(EXPIRED)
    if redirect:
        link = await signed_link(archives, job, presign_ttl)
        return RedirectResponse(link.url, status_code=307, headers={"Cache-Control": "no-store"})
    size = await archives.size(job.file_name)
    if size is None:
        raise NotFound(EXPIRED)
    wanted = parse_range(request.headers.get("range", ""), size)
    if wanted is False:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
    start, end = wanted if isinstance(wanted, tuple) else (0, size)
    out = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(end - start)}
    if isinstance(wanted, tuple):
        out["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    chunks = archives.read(job.file_name, start, end)
    # The first chunk is asked for now, so an unreachable bucket is a 503 rather than a cut-off 200.
    first = await anext(aiter(chunks), b"")

    async def body() -> AsyncIterator[bytes | memoryview]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), status_code=206 if isinstance(wanted, tuple) else 200,
                             media_type=media_type, headers=out)
