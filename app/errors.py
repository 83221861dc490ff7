"""One error family: an ``AppError`` carries a status code and a sentence a user can act on.

No web framework here: sources, runners and the CLI raise these without loading FastAPI.
The HTTP handlers that render them live in ``app.api.errors``.
"""

from __future__ import annotations

import errno


class AppError(Exception):
    status_code = 500
    default_detail = "Something went wrong inside jmbooru."

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.headers = headers
        super().__init__(self.detail)


class BadRequest(AppError):
    status_code = 400
    default_detail = "The request is not valid."


class Unauthorized(AppError):
    status_code = 401
    default_detail = "This server needs an API key: send it in the X-API-Key header."


class Forbidden(AppError):
    status_code = 403
    default_detail = "This origin is not allowed."


class NotFound(AppError):
    status_code = 404
    default_detail = "Not found."


class Conflict(AppError):
    status_code = 409
    default_detail = "The request conflicts with the current state."


class Unprocessable(AppError):
    status_code = 422
    default_detail = "The request is well-formed but cannot be processed."


class TooManyRequests(AppError):
    status_code = 429
    default_detail = "Too many requests; try again shortly."


class UpstreamError(AppError):
    """The upstream site answered with something unusable (403, HTML instead of JSON, 5xx)."""

    status_code = 502
    default_detail = "The upstream site returned an unusable answer. Try again later."


class UpstreamUnavailable(AppError):
    """The upstream site could not be reached at all."""

    status_code = 503
    default_detail = "The upstream site is unreachable right now. Try again later or configure other domains."


class UpstreamTimeout(AppError):
    status_code = 504
    default_detail = "The upstream site did not answer in time. Try again later."


class UpstreamRateLimited(AppError):
    """The upstream site asked us to slow down (HTTP 429); ``retry_after`` is its wait, if it gave one."""

    status_code = 503
    default_detail = "The upstream site is rate-limiting this server; try again in a minute."

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None) -> None:
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
        super().__init__(detail, headers=headers)
        self.retry_after = retry_after


class StoreUnavailable(AppError):
    """Our own job store or queue cannot be reached or written (Redis down, disk full)."""

    status_code = 503
    default_detail = "The job store is unavailable right now; try again in a moment."


class DiskFull(AppError):
    """The data folder has no space left: the server's problem, not the client's or the upstream's."""

    status_code = 507
    default_detail = (
        "The server's disk is full (no space left in its data folder); the operator needs to free "
        "space or point JMBOORU_DATA_DIR elsewhere. Try again later."
    )


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` or anything that caused it is 'no space left' or 'quota exceeded'."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False
