"""The web page at ``/``, its static files under ``/web/``, and /docs and /redoc served offline.

Everything the page and the two documentation pages load comes from ``app/web/`` in the package
(Swagger UI and ReDoc are vendored in ``app/web/vendor/``): FastAPI's defaults load them from a
CDN, which leaves /docs blank on a machine without internet.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from app.api import previews
from app.api.ranges import RangeFileResponse

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_PREFIX = "/web"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
_FAVICON = f"{STATIC_PREFIX}/favicon.svg"

# What the pages may load: only the server itself. On /docs and /redoc this also stops the one
# request ReDoc hard-codes (its logo, from a CDN); ReDoc hides the logo when it fails to load.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'self'")
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'")

router = APIRouter(include_in_schema=False)


class _RevalidatedStaticFiles(StaticFiles):
    """Static files that browsers revalidate (a cheap 304) instead of guessing a lifetime.

    Without Cache-Control a browser caches by heuristics, and after an upgrade it could run an old
    module against a new server.
    """

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.setdefault("Cache-Control", "no-cache")
        if type(response) is FileResponse:
            # The same object, with range errors as JSON: RangeFileResponse only adds that check.
            response.__class__ = RangeFileResponse
        return response


@router.api_route("/", methods=["GET", "HEAD"])
async def index() -> FileResponse:
    """The web page."""
    return RangeFileResponse(WEB_DIR / "index.html", media_type="text/html",
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_POLICY})


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI, with its script and stylesheet from the package."""
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        swagger_js_url=f"{STATIC_PREFIX}/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PREFIX}/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url=_FAVICON,
        # No badge that asks swagger.io's online validator about our document.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page (FastAPI adds it only with its default /docs)."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc, with its script from the package and no web fonts from Google."""
    page = get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{STATIC_PREFIX}/vendor/redoc/redoc.standalone.js",
        redoc_favicon_url=_FAVICON,
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


def install(app: FastAPI) -> None:
    """Serve the page, its files and the offline documentation (create the app with docs_url=None)."""
    app.include_router(router)
    app.include_router(previews.router)
    app.mount(STATIC_PREFIX, _RevalidatedStaticFiles(directory=WEB_DIR), name="web")
