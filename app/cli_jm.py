"""``jmbooru jm``: download JM albums to zip, cbz or pdf files from the command line, without the server.

Each album is downloaded into a hidden work folder inside the output folder and packed into
``<title> [JM<id>].<ext>`` there; an album whose archive is already in the folder is skipped.
Ctrl-C stops at once, removes the partial files and exits with 130.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jmcomic and Pillow are imported only when the command runs
    from app.config import Settings
    from app.jobs.specs import AlbumSpec

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_ALBUM_ID = re.compile(r"^(?:jm)?0*([1-9][0-9]{0,11})$", re.IGNORECASE)


@dataclass
class Outcome:
    downloaded: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    client_errors: int = 0  # failures that were the request's fault (no such album or chapter)

    def summary(self, out: Path) -> str:
        return (f"downloaded {len(self.downloaded)}, skipped {len(self.skipped)}, failed {len(self.failed)} "
                f"-> {out}")


class _Bar:
    """jmcomic's progress as a tqdm bar of pages; updates come from jmcomic's threads."""

    def __init__(self, album_id: str, enabled: bool) -> None:
        from tqdm import tqdm

        self._lock = threading.Lock()
        self.total = 0
        self.bar = tqdm(total=None, unit="page", desc=f"JM{album_id}", file=sys.stderr, dynamic_ncols=True,
                        disable=not enabled, leave=False)

    def update(self, *, done: int = 0, total: int | None = None, nbytes: int = 0, title: str | None = None,
               message: str | None = None) -> None:
        with self._lock:
            if message:
                self.bar.set_postfix_str("" if message == "Downloading." else message, refresh=False)
            if total is not None and total != self.bar.total:
                self.bar.total = total
                self.bar.refresh()
            if title:
                self.bar.set_description_str(title[:40], refresh=False)
            if done:
                self.bar.update(done)

    def close(self) -> None:
        self.bar.close()


def existing_archive(out: Path, spec: AlbumSpec) -> Path | None:
    """An archive of the same album, format, layout and chapters already in ``out``, whatever its title."""
    from app.sources.album_archive import download_name_suffix

    suffix = download_name_suffix(spec.album_id, spec.format, spec.layout, spec.chapters)
    return next((p for p in sorted(out.iterdir()) if p.is_file() and p.name.endswith(" " + suffix)), None)


async def download_to_folder(settings: Settings, specs: list[AlbumSpec], out: Path, *, progress: bool,
                             quiet: bool) -> Outcome:
    """Download every album in ``specs`` into ``out``; one failure does not stop the others."""
    from app.archives import archive_format, build_archive
    from app.blocking import BlockingPool
    from app.errors import AppError
    from app.sources import jm as jm_source
    from app.sources.album import download_album
    from app.sources.album_archive import album_archive
    from app.sources.jm_pages import PageFetching

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
                if not quiet:
                    print(f"skipped JM{spec.album_id}: {existing.name} is already there", file=sys.stderr)
                continue
            bar = _Bar(spec.album_id, progress)
            try:
                with tempfile.TemporaryDirectory(prefix=".jmbooru-", dir=out) as work:
                    album = await download_album(settings, spec.album_id, Path(work), pool=pool, pages=pages,
                                                 chapters=spec.chapters, progress=bar)
                    archive = album_archive(album, spec.format, spec.layout, spec.chapters)
                    dest = out / archive.download_name
                    await build_archive(files, archive_format(spec.format), archive.content, dest, Path(work))
            except AppError as exc:
                outcome.failed.append(spec.album_id)
                outcome.client_errors += exc.status_code < 500
                print(f"failed JM{spec.album_id}: {exc.detail}", file=sys.stderr)
                continue
            finally:
                bar.close()
            outcome.downloaded.append(dest)
            if not quiet:
                print(f"{archive.title}: {album.page_count} pages -> {dest}", file=sys.stderr)
    finally:
        pool.shutdown(wait=False)
        files.shutdown(wait=False)
        pages.close()
    return outcome


def _specs(args: argparse.Namespace) -> list[AlbumSpec] | str:
    """The album specs the arguments ask for, or the sentence saying what is wrong with them."""
    from pydantic import ValidationError

    from app.jobs.specs import AlbumSpec, spec_problem

    specs = []
    for raw in args.album_ids:
        match = _ALBUM_ID.match(raw.strip())
        if match is None:
            return f"{raw[:40]!r} is not an album id: use the number, like 350234 (or JM350234)."
        try:
            specs.append(AlbumSpec(album_id=match.group(1), format=args.format, layout=args.layout,
                                   chapters=args.chapters))
        except ValidationError as exc:
            return spec_problem(exc).removeprefix("chapters: ")
    if args.chapters and len(specs) > 1:
        return "--chapters picks chapters of one album: give a single ALBUM_ID with it."
    return specs


def run_jm(args: argparse.Namespace) -> int:
    from app.config import Settings

    specs = _specs(args)
    if isinstance(specs, str):
        print(f"jmbooru jm: {specs}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"jmbooru jm: cannot create the folder {out}: {exc.strerror}.", file=sys.stderr)
        return EXIT_BAD_INPUT
    progress = not args.quiet and sys.stderr.isatty()
    try:
        from app import cli_loop

        outcome = cli_loop.run(download_to_folder(Settings(), specs, out, progress=progress, quiet=args.quiet))
    except KeyboardInterrupt:
        print("jmbooru jm: interrupted; partial files were removed.", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(outcome.summary(out))
    if not outcome.failed:
        return EXIT_OK
    # Only bad ids or chapters: the user can fix the command; any upstream failure: try again later.
    return EXIT_BAD_INPUT if outcome.client_errors == len(outcome.failed) else EXIT_FAILED


def register(commands: Any) -> None:
    jm = commands.add_parser(
        "jm", help="download JM albums as zip, cbz or pdf files (no server needed)",
        description="Download JM albums into a folder, one archive per album, named '<title> [JM<id>].<ext>'. "
        "An album whose archive is already in the folder is skipped.")
    jm.add_argument("album_ids", nargs="+", metavar="ALBUM_ID", help="album ids, like 350234")
    jm.add_argument("-o", "--out", default=".", metavar="DIR", help="folder for the archives (default: current folder)")
    jm.add_argument("--format", choices=("zip", "cbz", "pdf"), default="zip",
                    help="zip: pages plus cover.jpg (default); cbz: comic book with ComicInfo.xml; pdf: one page per image")
    jm.add_argument("--layout", choices=("flat", "chapters"), default="flat",
                    help="flat: pages numbered across chapters (default); chapters: a folder per chapter (zip only)")
    jm.add_argument("--chapters", metavar="IDS", help="only these chapters, e.g. 350235,350236 (ids from /v1/info)")
    jm.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-album lines, only the summary")
    jm.set_defaults(func=run_jm)
