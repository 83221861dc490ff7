"""The OPDS catalog's HTTP edge (api.md Part 7): feeds, OpenSearch, page streaming and CBZ downloads.

Reader apps speak HTTP Basic only, so besides X-API-Key and ?api_key= the key is accepted as a Basic
password (any user name), and a 401 asks for Basic credentials.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from app.api.archive_files import archive_response
from app.api.deps import JmDep, JobsDep, SettingsDep, key_matches
from app.api.jm import AlbumIdPath, RankPeriod, parse_album_id
from app.api.jobs import content_disposition
from app.api.schemas import ALBUM_ID_PATTERN, UPSTREAM, errors
from app.archives import format_for_file
from app.blocking import BlockingPool
from app.config import Settings
from app.errors import AppError, NotFound, Unauthorized, Unprocessable
from app.jobs.models import Job, JobState
from app.outputs.opds import feeds
from app.outputs.opds.acquire import StillBuilding, cbz_archive
from app.outputs.opds.atom import ACQUISITION, NAVIGATION, OPENSEARCH, opensearch_description
from app.outputs.opds.pages import PageCache, RenderedPage, keep_freed_pictures
from app.outputs.opds.stream import FreshPage, PageStream
from app.sources.jm_account import JmAccount
from app.sources.jm_stream import JmPages

UNAUTHORIZED = ("This catalog needs the server's API key: give it as the password of HTTP Basic "
                "authentication (any user name), in the X-API-Key header, or as ?api_key=.")


def _given_keys(request: Request) -> list[str]:
    keys = [request.headers.get("x-api-key") or "", request.query_params.get("api_key") or ""]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            _user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
            keys.append(password)
        except (binascii.Error, UnicodeDecodeError):
            pass
    return [key for key in keys if key]


async def require_opds_key(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if not settings.api_key:
        return
    if not any(key_matches(settings, key) for key in _given_keys(request)):
        raise Unauthorized(UNAUTHORIZED, headers={"WWW-Authenticate": 'Basic realm="jmbooru"'})


class ArchiveNotReady(AppError):
    status_code = 503
    default_detail = "The archive is being prepared; ask again in a few seconds."


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # The Engine's pool for Pillow work on pages (the app's lifespan, which built it, runs first).
    pool: BlockingPool = app.state.opds_pool
    keep_freed_pictures()
    cache = PageCache(settings.data_path / "opds-pages", pool)
    app.state.opds_pages = cache
    app.state.opds_stream = None  # built on first use: JmSource exists once the app's lifespan ran
    try:
        yield
    finally:
        stream: PageStream | None = app.state.opds_stream
        if stream is not None:
            await stream.aclose()
            stream.pages.close()


def _stream(request: Request) -> PageStream:
    stream: PageStream | None = request.app.state.opds_stream
    if stream is None:
        stream = PageStream(JmPages(request.app.state.jm), request.app.state.opds_pages)
        request.app.state.opds_stream = stream
    return stream


router = APIRouter(tags=["opds"], dependencies=[Depends(require_opds_key)], lifespan=_lifespan,
                   responses=errors(401, 422))

Responses = dict[int | str, dict[str, Any]]
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_XML = {"schema": {"type": "string"}}
NAVIGATION_FEED: Responses = {200: {"content": {NAVIGATION: _XML}, "description": "An OPDS navigation feed."}}
ACQUISITION_FEED: Responses = {200: {"content": {ACQUISITION: _XML}, "description": "An OPDS acquisition feed."}}
CBZ_FILE: Responses = {200: {"content": {t: _BINARY for t in ("application/vnd.comicbook+zip", "application/x-cbz")},
                  "description": "The album's CBZ."}}
ARCHIVE_FILE: Responses = {200: {"content": {t: _BINARY for t in ("application/vnd.comicbook+zip", "application/x-cbz",
                                                       "application/zip", "application/pdf")},
                      "description": "The archive."}}
PAGE_IMAGE: Responses = {200: {"content": {"image/jpeg": _BINARY, "image/png": _BINARY}, "description": "The page."}}

WHOLE_NUMBER = r"^(0*[1-9][0-9]*)?$"  # empty: the default
PageQuery = Annotated[str | None, Query(max_length=6, description="1, 2, ... (20 entries a page)",
                                        json_schema_extra={"pattern": WHOLE_NUMBER})]
WidthQuery = Annotated[str | None, Query(alias="maxWidth", max_length=5, description="pixels; a wider page is "
                                         "scaled down to this width", json_schema_extra={"pattern": WHOLE_NUMBER})]
PageNumberPath = Annotated[str, Path(max_length=7, description="0, 1, ... (OPDS-PSE counts pages from 0)",
                                     json_schema_extra={"pattern": "^[0-9]+$"})]
ChapterIdPath = Annotated[str, Path(description="a chapter id (chapters[].id of /v1/info)",
                                    json_schema_extra={"pattern": ALBUM_ID_PATTERN})]
SearchQuery = Annotated[str, Query(max_length=200, description="words, tags, or a JM album id",
                                   # a character that is not white space (Python's, which has \x1c-\x1f and \x85 too)
                                   json_schema_extra={"pattern": r"[^\s\x1c-\x1f\x85]"})]


def _atom(body: str, kind: str) -> Response:
    return Response(body.encode("utf-8"), media_type=f"{kind}", headers={"Cache-Control": "private, max-age=60"})


def _page_number(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not re.fullmatch(r"0*[1-9][0-9]*", raw):
        raise Unprocessable(f"page must be a whole number from 1 (got {raw[:20]!r}).")
    return int(raw)


def _max_width(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    if not re.fullmatch(r"0*[1-9][0-9]*", raw.strip()):
        raise Unprocessable(f"maxWidth must be a whole number of pixels, 1 or more (got {raw[:20]!r}).")
    return int(raw)


def _pse_number(raw: str) -> int:
    if not re.fullmatch(r"[0-9]+", raw):
        raise NotFound(f"There is no page {raw[:20]!r}: pages are numbered 0, 1, 2, ... (OPDS-PSE counts from 0).")
    return int(raw)


@router.get("/opds", response_class=Response, responses=NAVIGATION_FEED)
async def root(settings: SettingsDep) -> Response:
    """The catalog's root: JM rankings, the account's favourites and this server's archives."""
    return _atom(feeds.root(bool(settings.jm_username)), NAVIGATION)


OPENSEARCH_DOCUMENT: Responses = {200: {"content": {OPENSEARCH: _XML}, "description": "The OpenSearch description."}}


@router.get("/opds/search.xml", response_class=Response, responses=OPENSEARCH_DOCUMENT)
async def search_description() -> Response:
    """The OpenSearch description readers fill in to search JM."""
    return Response(opensearch_description("/opds/jm/search?q={searchTerms}").encode("utf-8"),
                    media_type=OPENSEARCH)


@router.get("/opds/jm/search", response_class=Response, responses={**ACQUISITION_FEED, **errors(*UPSTREAM)})
async def search(jm: JmDep, settings: SettingsDep, q: SearchQuery, page: PageQuery = None) -> Response:
    """Search JM: an acquisition feed of the albums found (a JM id gives that album)."""
    if not q.strip():
        raise Unprocessable("q is empty: give words, tags or an album id to search for.")
    number = _page_number(page)
    feed = await feeds.search(jm, settings.opds_cbz_type, q.strip(), number)
    return _atom(feed, ACQUISITION)


@router.get("/opds/jm/rank/{period}", response_class=Response, responses={**ACQUISITION_FEED, **errors(404, *UPSTREAM)})
async def rank(period: str, jm: JmDep, settings: SettingsDep, page: PageQuery = None) -> Response:
    """A JM ranking (day, week, month, all) as an acquisition feed."""
    if period not in RankPeriod.__members__:
        raise NotFound(f"There is no {period[:20]!r} ranking: use day, week, month or all.")
    return _atom(await feeds.ranking(jm, settings.opds_cbz_type, period, _page_number(page)), ACQUISITION)


@router.get("/opds/jm/favorites", response_class=Response,
            responses={**ACQUISITION_FEED, **errors(404, 409, *UPSTREAM)})
async def favorites(request: Request, jm: JmDep, settings: SettingsDep, page: PageQuery = None) -> Response:
    """The configured JM account's favourites, newest first."""
    account: JmAccount = request.app.state.jm_account
    if not settings.jm_username:
        raise NotFound("No JM account is configured: set JMBOORU_JM_USERNAME and JMBOORU_JM_PASSWORD.")
    number = _page_number(page)
    return _atom(await feeds.favorites(jm, account, settings.opds_cbz_type, number), ACQUISITION)


@router.get("/opds/archives", response_class=Response, responses={**ACQUISITION_FEED, **errors(503)})
async def archives(jobs: JobsDep, settings: SettingsDep, page: PageQuery = None) -> Response:
    """Album archives this server has ready, newest first."""
    ready = await jobs.jobs_in([JobState.READY])
    return _atom(feeds.archives(ready, settings.opds_cbz_type, _page_number(page)), ACQUISITION)


@router.get("/opds/archives/{job_id}", response_class=FileResponse, responses={**ARCHIVE_FILE, **errors(404, 503)})
async def archive_file(job_id: str, jobs: JobsDep, settings: SettingsDep, request: Request) -> Response:
    """A ready archive, the same bytes as /v1/jobs/{job_id}/file."""
    job = await jobs.find(job_id) if re.fullmatch(r"[A-Za-z0-9]{1,64}", job_id) else None
    if job is None or job.state != JobState.READY or job.kind != "album":
        raise NotFound("There is no ready archive with that id: it expired, was deleted, or never existed.")
    return await _archive(jobs, job, request, settings.opds_cbz_type)


async def _archive(jobs: JobsDep, job: Job, request: Request, cbz_type: str) -> Response:
    # Archive store: the same answer as /v1/jobs/{id}/file (a file, a stream from the bucket, a redirect).
    fmt = format_for_file(job.file_name)
    media_type = cbz_type if fmt is not None and fmt.name == "cbz" else None
    headers = {"Content-Disposition": content_disposition(job.download_name or job.file_name, job.file_name),
               "Cache-Control": "private, max-age=0, no-transform"}
    return await archive_response(jobs.archives, job, request, headers, redirect=jobs.settings.s3_redirect,
                                  presign_ttl=jobs.settings.s3_presign_ttl_seconds, media_type=media_type)


@router.get("/opds/jm/album/{aid}.cbz", response_class=FileResponse,
            responses={**CBZ_FILE, **errors(400, 404, 503, *UPSTREAM)})
async def album_cbz(aid: AlbumIdPath, jm: JmDep, jobs: JobsDep, settings: SettingsDep, request: Request) -> Response:
    """The whole album as CBZ: joins or starts its download, answers 503 + Retry-After until ready."""
    return await _cbz(jm, jobs, settings, request, aid, None)


@router.get("/opds/jm/album/{aid}/chapter/{pid}.cbz", response_class=FileResponse,
            responses={**CBZ_FILE, **errors(400, 404, 503, *UPSTREAM)})
async def chapter_cbz(aid: AlbumIdPath, pid: ChapterIdPath, jm: JmDep, jobs: JobsDep, settings: SettingsDep,
                      request: Request) -> Response:
    """One chapter as CBZ, the same way."""
    return await _cbz(jm, jobs, settings, request, aid, pid)


async def _cbz(jm: JmDep, jobs: JobsDep, settings: Settings, request: Request, aid: str,
               pid: str | None) -> Response:
    album = await jm.album(parse_album_id(aid))
    if pid is not None:
        pid = _chapter_of(album.chapters, album.album_id, pid)
    try:
        job = await cbz_archive(jobs, album.album_id, pid, settings.opds_wait_seconds)
    except StillBuilding as waiting:
        done = f" ({waiting.job.done} of {waiting.job.total} pages)" if waiting.job.total else ""
        raise ArchiveNotReady(
            f"The CBZ is being prepared{done}; ask again in {waiting.retry_after} seconds (it joins the same download).",
            headers={"Retry-After": str(waiting.retry_after)}) from None
    return await _archive(jobs, job, request, settings.opds_cbz_type)


def _chapter_of(chapters: list[dict[str, object]], album_id: str, raw: str) -> str:
    pid = parse_album_id(raw)
    known = [str(c["id"]) for c in chapters] or [album_id]
    if pid not in known:
        raise NotFound(f"Album {album_id} has no chapter {pid}: its chapters are {', '.join(known)}.")
    return pid


@router.get("/opds/jm/album/{aid}", response_class=Response, responses={**ACQUISITION_FEED, **errors(400, 404, *UPSTREAM)})
async def album_feed(request: Request, aid: AlbumIdPath, jm: JmDep, settings: SettingsDep) -> Response:
    """The album's feed: the album entry, then one entry per chapter (with its page count)."""
    album = await jm.album(parse_album_id(aid))
    pages = _stream(request).pages
    pages.remember(album)  # a reader that opens the feed streams its pages next
    return _atom(await feeds.album(album, pages, settings.opds_cbz_type), ACQUISITION)


PAGE_RESPONSES: Responses = {**PAGE_IMAGE, **errors(400, 404, 422, *UPSTREAM)}


@router.get("/opds/jm/album/{aid}/pages/{n}", response_class=FileResponse, responses=PAGE_RESPONSES)
async def album_page(request: Request, aid: AlbumIdPath, n: PageNumberPath, max_width: WidthQuery = None) -> Response:
    """Page n (from 0, across chapters) of an album, descrambled, JPEG or PNG."""
    width = _max_width(max_width)
    number = _pse_number(n)
    return _image(await _stream(request).album_page(parse_album_id(aid), number, width))


@router.get("/opds/jm/album/{aid}/chapter/{pid}/pages/{n}", response_class=FileResponse,
            responses=PAGE_RESPONSES)
async def chapter_page(request: Request, aid: AlbumIdPath, pid: ChapterIdPath, n: PageNumberPath,
                       max_width: WidthQuery = None) -> Response:
    """Page n (from 0) of one chapter."""
    width = _max_width(max_width)
    number = _pse_number(n)
    photo_id = parse_album_id(pid)
    return _image(await _stream(request).chapter_page(parse_album_id(aid), photo_id, number, width))


def _image(page: RenderedPage) -> Response:
    headers = {"Cache-Control": "private, max-age=86400"}
    if not isinstance(page, FreshPage):
        return FileResponse(page.path, media_type=page.media_type, headers=headers)

    async def sent() -> None:  # the page is written to the cache once this answer went out
        page.sent.set()

    return Response(page.body, media_type=page.media_type, headers=headers, background=BackgroundTask(sent))

