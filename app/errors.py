"""One error family: an ``AppError`` carries a status code and a sentence a user can act on.

No web framework here: sources, runners and the CLI raise these without loading FastAPI.
The HTTP handlers that render them live in ``app.api.errors``.
"""

from __future__ import annotations


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
