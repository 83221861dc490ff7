"""Runs an album job: a thin adapter from the job's ``AlbumSpec`` to ``app.sources.album``."""

from __future__ import annotations

from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.runner import LibraryBook, RunContext, RunOutput
from app.jobs.specs import AlbumSpec
from app.sources.album import download_album
from app.sources.album_archive import album_archive, library_books
from app.sources.jm_pages import PageFetching


class AlbumRunner:
    def __init__(self, settings: Settings, pool: BlockingPool, pages: PageFetching) -> None:
        self.settings = settings
        self.pool = pool
        self.pages = pages

    async def run(self, ctx: RunContext) -> RunOutput:
        spec = ctx.spec
        assert isinstance(spec, AlbumSpec)
        album = await download_album(self.settings, spec.album_id, ctx.work_dir, pool=self.pool, pages=self.pages,
                                     chapters=spec.chapters, progress=ctx.progress)
        archive = album_archive(album, spec.format, spec.layout, spec.chapters)
        if spec.dest == "library":
            books = [LibraryBook(path, content) for path, content in library_books(album)]
            noun = "chapter" if len(books) == 1 else "chapters"
            return RunOutput(entries=[], format="cbz", title=archive.title, file_stem=archive.file_stem,
                             download_name="", library=books,
                             message=f"{archive.title}: {len(books)} {noun} filed in the library.")
        return RunOutput(entries=archive.content.entries, book=archive.content.book, format=spec.format,
                         title=archive.title, file_stem=archive.file_stem, download_name=archive.download_name)
