"""Albums into a folder, one archive each, named ``<title> [JM<id>].<ext>``: what ``jmbooru jm`` and
the Python API (``jmbooru.download_album``) do without a server. An album whose archive is already in
the folder is skipped; one failure does not stop the others.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.text import count

if TYPE_CHECKING:
    from app.config import Settings
    from app.jobs.kinds.album import AlbumSpec
    from app.sources.album import Progress

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


def existing_archive(out: Path, spec: AlbumSpec) -> Path | None:
    """An archive of the same album, format, layout and chapters already in ``out``, whatever its title."""
    from app.sources.album_archive import download_name_suffix

    suffix = download_name_suffix(spec.album_id, spec.format, spec.layout, spec.chapters)
    return next((p for p in sorted(out.iterdir()) if p.is_file() and p.name.endswith(" " + suffix)), None)


async def download_to_folder(settings: Settings, specs: list[AlbumSpec], out: Path, *,
                             progress: Callable[[AlbumSpec], Progress] | None = None,
                             report: Callable[[str, bool], None] | None = None) -> Outcome:
    """Download every album in ``specs`` into ``out``. ``progress`` makes a progress sink per album
    (updated from jmcomic's threads; closed with ``close()`` if it has one); ``report`` receives one
    line per album (skipped, failed, written) and whether it is a failure."""
    from app.archives import archive_format, build_archive
    from app.blocking import BlockingPool
    from app.errors import AppError
    from app.sources import jm as jm_source
    from app.sources.album import download_album
    from app.sources.album_archive import album_archive
    from app.sources.jm_pages import PageFetching

    say = report or (lambda line, failed: None)
    jm_source.apply_module_settings(settings)
    pool = BlockingPool(settings.jm_threads, "jm")
    files = BlockingPool(1, "archive")
    pages = PageFetching(settings.album_pixel_budget_mb * 1024 * 1024)
    outcome = Outcome()
    try:
        for spec in specs:
            existing = existing_archive(out, spec)
            if existing is not None:
                outcome.skipped.append(existing)
                say(f"skipped JM{spec.album_id}: {existing.name} is already there", False)
                continue
            sink = progress(spec) if progress is not None else None
            try:
                with tempfile.TemporaryDirectory(prefix=".jmbooru-", dir=out) as work:
                    album = await download_album(settings, spec.album_id, Path(work), pool=pool, pages=pages,
                                                 chapters=spec.chapters, progress=sink)
                    archive = album_archive(album, spec.format, spec.layout, spec.chapters)
                    dest = out / archive.download_name
                    await build_archive(files, archive_format(spec.format), archive.content, dest, Path(work))
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
            outcome.downloaded.append(dest)
            say(f"{archive.title}: {count(album.page_count, 'page')} -> {dest}", False)
    finally:
        pool.shutdown(wait=False)
        files.shutdown(wait=False)
        pages.close()
    return outcome
