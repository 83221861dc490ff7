"""Albums into a folder, one archive each, named ``<title> [JM<id>].<ext>``: what ``jmbooru jm`` and
the Python API (``jmbooru.download_album``) do without a server. An album whose archive is already in
the folder is skipped; one failure does not stop the others.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from app.text import count

if TYPE_CHECKING:
    from app.blocking import BlockingPool
    from app.config import Settings
    from app.jobs.kinds.album import AlbumSpec
    from app.sources.album import Progress
    from app.sources.jm_pages import PageFetching

log = logging.getLogger("jmbooru.jm")


@dataclass
class Outcome:
    downloaded: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # album id -> the sentence saying why
    client_errors: int = 0  # failures that were the request's fault (no such album or chapter)

    def summary(self, out: Path) -> str:
        return (f"downloaded {len(self.downloaded)}, skipped {len(self.skipped)}, failed {len(self.failed)} "
                f"-> {out}")


@dataclass(frozen=True)
class FolderPools:
    """What downloading albums without a server runs on: jmcomic's threads, one thread for the
    archives and the folder, and the page fetching. The caller owns it, one per command (``jmbooru
    jm``) or call (``jmbooru.download_album``), and shuts it down when that ends."""

    jm: BlockingPool
    files: BlockingPool
    pages: PageFetching

    @classmethod
    def create(cls, settings: Settings) -> FolderPools:
        from app.blocking import BlockingPool
        from app.sources.jm_pages import PageFetching

        return cls(jm=BlockingPool(settings.jm_threads, "jm"), files=BlockingPool(1, "archive"),
                   pages=PageFetching(settings.album_pixel_budget_mb * 1024 * 1024))

    def shutdown(self) -> None:
        self.jm.shutdown(wait=False)
        self.files.shutdown(wait=False)
        self.pages.close()

    def __enter__(self) -> FolderPools:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.shutdown()


def existing_archive(out: Path, spec: AlbumSpec) -> Path | None:
    """An archive of the same album, format, layout and chapters already in ``out``, whatever its title."""
    from app.sources.album_archive import download_name_suffix

    suffix = download_name_suffix(spec.album_id, spec.format, spec.layout, spec.chapters)
    return next((p for p in sorted(out.iterdir()) if p.is_file() and p.name.endswith(" " + suffix)), None)


async def download_to_folder(settings: Settings, specs: list[AlbumSpec], out: Path, pools: FolderPools, *,
                             progress: Callable[[AlbumSpec], Progress] | None = None,
                             report: Callable[[str, bool], None] | None = None) -> Outcome:
    """Download every album in ``specs`` into ``out`` (made if needed), running on ``pools``.
    ``progress`` makes a progress sink per album (updated from jmcomic's threads; closed with
    ``close()`` if it has one); ``report`` receives one line per album (skipped, failed, written)
    and whether it is a failure."""
    from app.archives import archive_format, build_archive
    from app.errors import AppError
    from app.sources import jm as jm_source
    from app.sources.album import download_album
    from app.sources.album_archive import album_archive

    say = report or (lambda line, failed: None)
    jm_source.apply_module_settings(settings)
    outcome = Outcome()
    await pools.files.run_to_end(out.mkdir, parents=True, exist_ok=True)
    for spec in specs:
        existing = await pools.files.run(existing_archive, out, spec)
        if existing is not None:
            outcome.skipped.append(existing)
            say(f"skipped JM{spec.album_id}: {existing.name} is already there", False)
            continue
        sink = progress(spec) if progress is not None else None
        work = Path(await pools.files.run_to_end(tempfile.mkdtemp, prefix=".jmbooru-", dir=out))
        try:
            album = await download_album(settings, spec.album_id, work, pool=pools.jm, pages=pools.pages,
                                         chapters=spec.chapters, progress=sink)
            archive = album_archive(album, spec.format, spec.layout, spec.chapters)
            dest = out / archive.download_name
            await build_archive(pools.files, archive_format(spec.format), archive.content, dest, work)
        except AppError as exc:
            outcome.failed.append(spec.album_id)
            outcome.errors[spec.album_id] = exc.detail
            outcome.client_errors += exc.status_code < 500
            say(f"failed JM{spec.album_id}: {exc.detail}", True)
            continue
        finally:
            close = getattr(sink, "close", None)
            if close is not None:
                close()
            await pools.files.run_to_end(shutil.rmtree, work, True)
        outcome.downloaded.append(dest)
        say(f"{archive.title}: {count(album.page_count, 'page')} -> {dest}", False)
    return outcome
