"""Render every error as ``{"detail": "<sentence>"}`` with its status (the one handler family)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.methods import allowed_methods, method_list
from app.errors import AppError
from app.text import full_stop

log = logging.getLogger("jmbooru")


def _json(status: int, detail: str, headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _header_methods(headers: dict[str, str] | None) -> list[str]:
    """The framework's own Allow header, when no route claims the path (a static file, say)."""
    allow = (headers or {}).get("Allow", "") or "GET, HEAD"
    return [m.strip() for m in allow.split(",") if m.strip()]


NOT_A_JSON_OBJECT = ('The request body is not a JSON object: send a JSON object (UTF-8, in braces, such as '
                     '{"client_id": "phone"}).')
# A body that is not JSON at all, or JSON that is not an object (a list, a string, a number).
_NOT_AN_OBJECT = frozenset({"model_attributes_type", "dict_type", "model_type"})


def _body_is_not_an_object(err: dict) -> bool:  # type: ignore[type-arg]
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "json_invalid":
        return True
    return loc == ("body",) and err.get("type") in _NOT_AN_OBJECT


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
            return _json(422, NOT_A_JSON_OBJECT)
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
        if any(_body_is_not_an_object(err) for err in exc.errors()):
            return _json(422, NOT_A_JSON_OBJECT)
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return _json(422, full_stop("Invalid request: " + "; ".join(parts)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error path=%s", request.url.path)
        return _json(500, "Something went wrong inside jmbooru; the server log has the details.")
