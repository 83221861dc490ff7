"""The shapes of every answer, so that the OpenAPI document tells the truth (WebSocket frames:
``app.jobs.frames.JobFrame``, which builds them too).

Models are lenient where real clients are (``extra="allow"``: jmbooru adds fields, never removes
them) and exact where clients read a field (names, types, enums).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.archives import FORMATS
from app.jobs.frames import JobStateName

JOB_ID_PATTERN = r"^[A-Za-z0-9]{22}$"
FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
ALBUM_ID_PATTERN = r"^(?:[Jj][Mm])?[1-9][0-9]{0,11}$"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """Every error: one sentence saying what went wrong and what to do."""

    detail: str = Field(examples=["Invalid album ID 'abc': use the positive number, like 350234."])


class MissingArchive(ErrorBody):
    """``GET /v1/download/{file_name}`` for an unknown or expired archive (the seed's shape, plus detail)."""

    status: Literal["error"] = "error"
    msg: str


ERROR_DESCRIPTIONS = {
    400: "The request is not valid (the sentence says what to fix).",
    401: "This server needs an API key (X-API-Key header, or ?api_key=).",
    404: "Not found.",
    409: "Conflicts with the current state or this server's configuration.",
    422: "A parameter or body field is invalid (the sentence names it).",
    416: "The requested byte range starts past the end of the file (Content-Range says its size).",
    431: "The request headers are too large.",
    502: "The upstream site answered with something unusable, or refused the server's credentials.",
    503: "The upstream site, or this server's job store or queue, is unavailable right now.",
    504: "The upstream site did not answer in time.",
    507: "The server's disk is full.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the error statuses an endpoint can answer, each with the real body."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


UPSTREAM = (502, 503, 504)


# --- system -------------------------------------------------------------------------------------


class Health(_Open):
    status: Literal["ok"]
    app: Literal["jmcomic_server_api"] = Field(description="what the seed's clients check")
    version: str
    mode: Literal["embedded", "redis"]
    storage: Literal["local", "s3"] = Field(description="where finished archives live (JMBOORU_STORAGE)")
    server_time: int = Field(description="ms since the epoch")
    pid: int
    api_key_required: bool = Field(False, description="starting, reading and cancelling jobs need X-API-Key")
    library: bool = Field(False, description="downloads may be filed into a reader library (\"dest\": \"library\")")


class Clock(Health):
    latency: str = Field(description="server clock minus the client's, in whole ms, as a string", examples=["644"])


# --- JM -----------------------------------------------------------------------------------------


class RankItem(_Open):
    aid: str
    title: str


class SearchItem(_Open):
    album_id: str
    title: str


class Chapter(_Open):
    id: str
    title: str
    sort: int


class AlbumInfo(_Open):
    status: Literal["success"]
    album_id: str
    title: str
    tag: list[str]
    view_count: int | str = Field(description="a number, or digits in a string (as JM sends it)")
    like_count: int | str
    page_count: int
    method: Literal["api", "html"]
    authors: list[str]
    works: list[str]
    actors: list[str]
    comment_count: int
    pub_date: str
    description: str
    chapters: list[Chapter]


class Comment(_Open):
    comment_id: str | None
    album_id: str | None
    user_id: str | None
    parent_comment_id: str | None
    content: str = Field(description="plain text; line breaks as \\n")
    username: str | None
    nickname: str | None
    is_spoiler: bool
    created_at: str | None
    likes: int | None
    replies: list[Comment]


class CommentsPage(_Open):
    aid: str
    page: int
    page_size: int
    total: int | None
    page_count: int | None
    comment_count: int = Field(description="comments on this page, replies included")
    comments: list[Comment]


# --- jobs ---------------------------------------------------------------------------------------


class Accepted(_Open):
    """202: the job exists (new, or joined); follow it or poll ``status_url``."""

    status: Literal["processing"]
    message: str
    job_id: str
    status_url: str
    events_url: str
    state: JobStateName
    joined: bool
    client_id: str | None


class JobOut(_Open):
    job_id: str
    kind: str
    state: JobStateName
    title: str
    done: int
    total: int
    bytes: int
    file_name: str = Field(description="the key for GET /v1/download/{file_name} (only when ready)")
    download_url: str
    error: str
    message: str
    params: dict[str, Any]
    attempts: int
    worker: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    expires_at: str | None
    status_url: str
    events_url: str
    position: int | None = Field(None, description="queued only: 1 is the next job to start")


class JobList(BaseModel):
    jobs: list[JobOut]
    next: str | None = Field(description="pass as ?before= for the next page; null on the last page")


# Every archive format's media type (zip, cbz, pdf): what a download can be.
ARCHIVE_TYPES = {fmt.media_type: {"schema": {"type": "string", "format": "binary"}} for fmt in FORMATS.values()}
