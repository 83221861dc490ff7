"""The album kind: a JM album (all or some chapters) as zip, cbz or pdf, or chapter books filed into
the reader library. Its spec, and its runner (a thin adapter to ``app.sources.album``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from app.archives.names import FormatName
from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.runner import LibraryBook, RunContext, RunOutput
from app.jobs.specs import LIBRARY_FORMAT_PROBLEM, MAX_CHAPTERS, Dest, JobSpec
from app.sources.album import download_album
from app.sources.album_archive import Layout, album_archive, library_books, options_problem
from app.sources.jm_pages import PageFetching


class AlbumSpec(JobSpec):
    kind: ClassVar[str] = "album"

    album_id: str = Field(pattern=r"^[1-9][0-9]{0,11}$")
    format: FormatName = "zip"
    layout: Layout = "flat"
    chapters: tuple[str, ...] | None = Field(None, max_length=MAX_CHAPTERS)
    dest: Dest = "archive"

    @field_validator("chapters", mode="before")
    @classmethod
    def _chapter_ids(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        ids = []
        for item in value:
            text = str(item).strip().upper().removeprefix("JM")
            if not (text.isascii() and text.isdigit()) or int(text) <= 0:  # "١٢" is no chapter id
                raise ValueError(f"chapter id {str(item)[:30]!r} is not a positive number (see chapters[].id in /v1/info)")
            ids.append(str(int(text)))
        if not ids:
            raise ValueError("chapters lists no chapter id: leave it out to download every chapter")
        return tuple(sorted(set(ids), key=int))  # the archive follows the album's order anyway

    @model_validator(mode="before")
    @classmethod
    def _library_is_cbz(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("dest") == "library":
            fmt, layout = data.get("format"), data.get("layout")
            if fmt not in (None, "cbz") or layout not in (None, "flat"):
                raise ValueError(LIBRARY_FORMAT_PROBLEM.format(fmt=fmt or layout))
            data = {**data, "format": "cbz"}
        return data

    @model_validator(mode="after")
    def _format_and_layout(self) -> AlbumSpec:
        problem = options_problem(self.format, self.layout)
        if problem:
            raise ValueError(problem)
        return self

    def dedupe_key(self) -> str:
        key = f"album:{self.album_id}"  # the default archive keeps the key it always had
        if self.format != "zip":
            key += f":{self.format}"
        if self.layout != "flat":
            key += f":{self.layout}"
        if self.chapters:
            key += ":c" + ",".join(self.chapters)
        if self.dest == "library":
            key += ":library"
        return key

    def title(self) -> str:
        return f"JM{self.album_id}"

    def public_fields(self) -> dict[str, Any]:
        return {"album_id": self.album_id}

    def log_site(self) -> str:
        return "jm"


class AlbumRunner:
    def __init__(self, settings: Settings, pool: BlockingPool, pages: PageFetching,
                 album_details: Callable[[str], Any] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.pages = pages
        # jmcomic's album detail from this process's recent look-ups (the POST's check), or None.
        self.album_details = album_details

    async def run(self, ctx: RunContext[AlbumSpec]) -> RunOutput:
        spec = ctx.spec
        known = self.album_details(spec.album_id) if self.album_details is not None else None
        album = await download_album(self.settings, spec.album_id, ctx.work_dir, pool=self.pool, pages=self.pages,
                                     chapters=spec.chapters, progress=ctx.progress, album_detail=known)
        archive = album_archive(album, spec.format, spec.layout, spec.chapters)
        if spec.dest == "library":
            books = [LibraryBook(path, content) for path, content in library_books(album)]
            noun = "chapter" if len(books) == 1 else "chapters"
            return RunOutput(entries=[], format="cbz", title=archive.title, file_stem=archive.file_stem,
                             download_name="", library=books,
                             message=f"{archive.title}: {len(books)} {noun} filed in the library.")
        return RunOutput(entries=archive.content.entries, book=archive.content.book, format=spec.format,
                         title=archive.title, file_stem=archive.file_stem, download_name=archive.download_name)
