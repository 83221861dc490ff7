"""The server owner's JM favourites: list them, and download them (one album job per favourite)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.deps import ApiKey, JobsDep
from app.api.downloads import CLIENT_ID_DOC, CLIENT_ID_EXAMPLES, ZIP_FOR_CHAPTER_FOLDERS
from app.api.schemas import UPSTREAM, errors
from app.archives.names import FormatName
from app.errors import Unprocessable
from app.jobs.favorites import start_favourites
from app.jobs.models import CLIENT_ID_PATTERN
from app.jobs.specs import spec_problem
from app.json_types import JsonInt, PositiveJsonInt
from app.sources.album_archive import Layout
from app.sources.jm_account import FavoritesPage, JmAccount

router = APIRouter(tags=["favorites"])

FOLDER_PATTERN = r"^[0-9]{1,12}$"


async def get_account(request: Request) -> JmAccount:
    account: JmAccount = request.app.state.jm_account
    return account


AccountDep = Annotated[JmAccount, Depends(get_account)]


class FavoriteAlbumOut(BaseModel):
    album_id: str
    title: str
    author: str


class FavoriteFolderOut(BaseModel):
    folder_id: str
    name: str


class FavoritesOut(BaseModel):
    folder_id: str = Field(description="0: every favourite")
    page: int
    page_count: int
    total: int = Field(description="favourites in the folder")
    albums: list[FavoriteAlbumOut]
    folders: list[FavoriteFolderOut] = Field(description="the account's folders (folder 0, every favourite, "
                                                         "is not listed)")

    @classmethod
    def of(cls, page: FavoritesPage) -> FavoritesOut:
        return cls(folder_id=page.folder_id, page=page.page, page_count=page.page_count, total=page.total,
                   albums=[FavoriteAlbumOut(album_id=a.album_id, title=a.title, author=a.author) for a in page.albums],
                   folders=[FavoriteFolderOut(folder_id=f.folder_id, name=f.name) for f in page.folders])


@router.get("/v1/favorites", response_model=FavoritesOut, dependencies=[ApiKey],
            responses=errors(401, 409, 422, *UPSTREAM))
async def favorites(account: AccountDep, page: Annotated[int, Query(ge=1)] = 1,
                    folder: Annotated[str, Query(pattern=FOLDER_PATTERN)] = "0") -> FavoritesOut:
    """One page (20 albums) of the configured JM account's favourites, newest first, and its folders."""
    return FavoritesOut.of(await account.favorites(page, folder))


class FavoritesDownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=ZIP_FOR_CHAPTER_FOLDERS)

    folder: str = Field("0", pattern=FOLDER_PATTERN, description="a folder id from GET /v1/favorites; 0: every favourite")
    page: PositiveJsonInt | None = Field(None, description="only this page of the folder (20 albums); default: every page")
    limit: JsonInt = Field(50, ge=1, le=500, description="at most this many albums, newest favourites first")
    format: FormatName = "zip"
    layout: Layout = "flat"
    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN, description=CLIENT_ID_DOC,
                                  examples=CLIENT_ID_EXAMPLES)


class AcceptedAlbumJob(BaseModel):
    album_id: str
    title: str
    job_id: str
    state: str
    joined: bool = Field(description="true when the album was already downloading (or ready): this is that job")
    status_url: str
    events_url: str


class FavoritesAccepted(BaseModel):
    status: Literal["processing"] = "processing"
    message: str
    folder: str
    total: int = Field(description="favourites in the folder")
    count: int = Field(description="album jobs started or joined")
    client_id: str | None
    jobs: list[AcceptedAlbumJob]


@router.post("/v1/download/favorites", status_code=202, response_model=FavoritesAccepted, dependencies=[ApiKey],
             responses=errors(401, 404, 409, 422, *UPSTREAM))
async def download_favorites(account: AccountDep, jobs: JobsDep,
                             body: FavoritesDownloadRequest | None = None) -> FavoritesAccepted:
    """Download the account's favourites: one album job per favourite (each with its own archive and
    final frame, joined with any download of the same album), newest favourites first."""
    body = body or FavoritesDownloadRequest()
    try:
        result = await start_favourites(jobs, account, folder=body.folder, page=body.page, limit=body.limit,
                                        fmt=body.format, layout=body.layout, client_id=body.client_id)
    except ValidationError as exc:
        raise Unprocessable("Invalid request: " + spec_problem(exc)) from None
    accepted = [AcceptedAlbumJob(album_id=s.album.album_id, title=s.album.title, job_id=s.job.job_id,
                                 state=str(s.job.state), joined=not s.created, status_url=f"/v1/jobs/{s.job.job_id}",
                                 events_url=f"/ws/jobs/{s.job.job_id}") for s in result.started]
    return FavoritesAccepted(
        message=f"{len(accepted)} favourite albums are queued for download (one job each).", folder=body.folder,
        total=result.total, count=len(accepted), client_id=body.client_id, jobs=accepted)
