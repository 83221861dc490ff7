"""Render every error as ``{"detail": "<sentence>"}`` with its status (the one handler family)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.methods import allowed_methods, method_list
from app.errors import AppError

log = logging.getLogger("jmbooru")


def _json(status: int, detail: str, headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _header_methods(headers: dict[str, str] | None) -> list[str]:
    """The framework's own Allow header, when no route claims the path (a static file, say)."""
    allow = (headers or {}).get("Allow", "") or "GET, HEAD"
    return [m.strip() for m in allow.split(",") if m.strip()]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("request failed path=%s status=%s detail=%s", request.url.path, exc.status_code, exc.detail)
        return _json(exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        headers = getattr(exc, "headers", None)
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            return _json(422, "The request body is not valid JSON (it must be UTF-8 JSON); fix the body and retry.")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no endpoint at {request.url.path}. See /docs for the API."
        elif exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path; list them all.
            allowed = allowed_methods(request) or _header_methods(headers)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            detail = f"{request.method} is not allowed here; use {method_list(allowed)}."
        return _json(exc.status_code, detail, headers)

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
