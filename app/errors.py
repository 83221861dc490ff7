"""One error family: an ``AppError`` carries a status code and a sentence a user can act on."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("jmbooru")


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


def _json(status: int, detail: str, headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("request failed path=%s status=%s detail=%s", request.url.path, exc.status_code, exc.detail)
        return _json(exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no endpoint at {request.url.path}. See /docs for the API."
        return _json(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return _json(422, "Invalid request: " + "; ".join(parts) + ".")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error path=%s", request.url.path)
        return _json(500, "Something went wrong inside jmbooru; the server log has the details.")
