"""Downloading the account's favourites: read them (paged) and start one album job per favourite.

The API and, later, any other caller (a bot, the CLI) use this; the HTTP layer only shapes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.archives.names import FormatName
from app.errors import NotFound
from app.jobs.kinds.album import AlbumSpec
from app.jobs.models import Job
from app.jobs.service import JobService
from app.sources.album_archive import Layout
from app.sources.jm_account import FavoriteAlbum, JmAccount


@dataclass
class StartedFavourite:
    album: FavoriteAlbum
    job: Job
    created: bool


@dataclass
class StartedFavourites:
    total: int  # favourites in the folder
    started: list[StartedFavourite]


async def favourite_albums(account: JmAccount, folder: str, page: int | None, limit: int) -> tuple[int, list[FavoriteAlbum]]:
    """(favourites in the folder, the chosen ones): one page, or the newest ``limit`` across pages."""
    first = await account.favorites(page or 1, folder)
    if first.total == 0 or (page and not first.albums):
        folders = ", ".join(f"{f.folder_id} ({f.name})" for f in first.folders) or "none"
        where = f"page {page} of folder {folder}" if page else f"folder {folder}"
        raise NotFound(f"There are no favourites in {where} (your folders: {folders}; 0 is every favourite).")
    albums = list(first.albums)
    current = first.page
    while page is None and len(albums) < limit and current < first.page_count:
        current += 1
        albums += (await account.favorites(current, folder)).albums
    return first.total, albums[:limit]


async def start_favourites(jobs: JobService, account: JmAccount, *, folder: str, page: int | None, limit: int,
                           fmt: FormatName, layout: Layout, client_id: str | None) -> StartedFavourites:
    """One album job per favourite (joined with any download of the same album), newest first."""
    AlbumSpec(album_id="1", format=fmt, layout=layout)  # the options, checked before any JM call
    total, albums = await favourite_albums(account, folder, page, limit)
    started = []
    for album in albums:
        job, created = await jobs.submit(AlbumSpec(album_id=album.album_id, format=fmt, layout=layout), client_id)
        started.append(StartedFavourite(album, job, created))
    return StartedFavourites(total, started)
