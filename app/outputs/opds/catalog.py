"""The catalog's documents: the root navigation feed and the entries of albums, chapters and archives."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from app.outputs.opds.atom import (
    ACQUISITION,
    NAVIGATION,
    REL_ACQUISITION,
    REL_IMAGE,
    REL_STREAM,
    REL_THUMBNAIL,
    Entry,
    Feed,
    Link,
    timestamp,
)
from app.sources.jm import AlbumInfo

# jpeg here, png for pages with transparency: readers pick a decoder from the bytes, not the link.
PAGE_TYPE = "image/jpeg"
STREAM_QUERY = "?maxWidth={maxWidth}"
ARCHIVE_TYPES = {"zip": "application/zip", "pdf": "application/pdf"}


@dataclass(frozen=True)
class Catalog:
    name: str
    path: str
    description: str


def catalogs(with_favorites: bool) -> list[Catalog]:
    found = [
        Catalog("JM ranking: today", "/opds/jm/rank/day", "The most viewed JM albums of the day."),
        Catalog("JM ranking: this week", "/opds/jm/rank/week", "The most viewed JM albums of the week."),
        Catalog("JM ranking: this month", "/opds/jm/rank/month", "The most viewed JM albums of the month."),
        Catalog("JM ranking: all time", "/opds/jm/rank/all", "The most viewed JM albums ever."),
    ]
    if with_favorites:
        found.append(Catalog("JM favourites", "/opds/jm/favorites", "Your JM account's favourites, newest first."))
    found.append(Catalog("Archives on this server", "/opds/archives", "Albums this server has downloaded."))
    return found


def root_feed(with_favorites: bool) -> Feed:
    now = timestamp()
    entries = [
        Entry(id=f"urn:jmbooru:catalog:{c.path.removeprefix('/opds/').replace('/', ':')}", title=c.name,
              updated=now, content=c.description, links=[Link("subsection", c.path, ACQUISITION, c.name)])
        for c in catalogs(with_favorites)
    ]
    return Feed(id="urn:jmbooru:opds", title="jmbooru", self_href="/opds", kind=NAVIGATION, entries=entries)


def cover_links(album_id: str) -> list[Link]:
    cover = f"/v1/get/cover/{quote(album_id)}"
    return [Link(REL_IMAGE, cover, "image/jpeg"), Link(REL_THUMBNAIL, cover, "image/jpeg")]


def album_summary(album: AlbumInfo) -> str:
    if album.description.strip():
        return album.description.strip()
    parts = []
    if album.authors:
        parts.append("By " + ", ".join(album.authors))
    if album.tags:
        parts.append("Tags: " + ", ".join(album.tags))
    parts.append(f"{album.page_count} pages")
    return ". ".join(parts) + "."


def album_entry(album: AlbumInfo, cbz_type: str) -> Entry:
    base = f"/opds/jm/album/{album.album_id}"
    links = cover_links(album.album_id) + [
        Link(REL_ACQUISITION, f"{base}.cbz", cbz_type, "CBZ"),
        Link(REL_STREAM, f"{base}/pages/{{pageNumber}}{STREAM_QUERY}", PAGE_TYPE, "Read online",
             count=album.page_count),
        Link("subsection", base, ACQUISITION, "Chapters"),
    ]
    return Entry(id=f"urn:jmbooru:jm:album:{album.album_id}", title=album.title, updated=timestamp(),
                 links=links, authors=album.authors, categories=album.tags, summary=album_summary(album))


def chapter_entry(album: AlbumInfo, photo_id: str, title: str, position: int, page_count: int,
                  cbz_type: str) -> Entry:
    base = f"/opds/jm/album/{album.album_id}/chapter/{photo_id}"
    label = f"{album.title} - {position}. {title}" if title and title != album.title else f"{album.title} - {position}"
    links = cover_links(album.album_id) + [
        Link(REL_ACQUISITION, f"{base}.cbz", cbz_type, "CBZ"),
        Link(REL_STREAM, f"{base}/pages/{{pageNumber}}{STREAM_QUERY}", PAGE_TYPE, "Read online", count=page_count),
    ]
    return Entry(id=f"urn:jmbooru:jm:photo:{photo_id}", title=label, updated=timestamp(), links=links,
                 authors=album.authors, categories=album.tags,
                 summary=f"Chapter {position} of {album.title}: {page_count} pages.")


@dataclass(frozen=True)
class ReadyArchive:
    job_id: str
    album_id: str
    title: str
    format: str
    finished_at: float | None


def archive_entry(archive: ReadyArchive, cbz_type: str) -> Entry:
    media_type = cbz_type if archive.format == "cbz" else ARCHIVE_TYPES.get(archive.format, "application/zip")
    links = cover_links(archive.album_id) + [
        Link(REL_ACQUISITION, f"/opds/archives/{archive.job_id}", media_type, archive.format.upper()),
    ]
    return Entry(id=f"urn:jmbooru:job:{archive.job_id}", title=archive.title or f"JM album {archive.album_id}",
                 updated=timestamp(archive.finished_at), links=links,
                 summary=f"JM album {archive.album_id}, downloaded as {archive.format.upper()}.")
