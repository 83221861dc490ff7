"""``jmbooru jm``: download JM albums to zip, cbz or pdf files from the command line, without the server.

Each album is downloaded into a hidden work folder inside the output folder and packed into
``<title> [JM<id>].<ext>`` there; an album whose archive is already in the folder is skipped.
Ctrl-C stops at once, removes the partial files and exits with 130.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jmcomic and Pillow are imported only when the command runs
    from app.jobs.kinds.album import AlbumSpec

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_ALBUM_ID = re.compile(r"^(?:jm)?0*([1-9][0-9]{0,11})$", re.IGNORECASE)


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


def _specs(args: argparse.Namespace) -> list[AlbumSpec] | str:
    """The album specs the arguments ask for, or the sentence saying what is wrong with them."""
    from pydantic import ValidationError

    from app.jobs.kinds.album import AlbumSpec
    from app.jobs.specs import spec_problem

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
    from app.sources.album_folder import FolderPools, download_to_folder

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
        from app.cli import loop as cli_loop

        settings = Settings()
        with FolderPools.create(settings) as pools:  # this command's, shut down when it ends
            outcome = cli_loop.run(download_to_folder(
                settings, specs, out, pools, progress=lambda spec: _Bar(spec.album_id, progress),
                report=lambda line, failed: print(line, file=sys.stderr) if failed or not args.quiet else None,
            ))
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
    from app.archives import FORMATS  # the format registry (no pydantic, no PDF libraries)

    jm.add_argument("--format", choices=tuple(FORMATS), default="zip",
                    help="; ".join(f"{f.name}: {f.description}" for f in FORMATS.values()) + " (default zip)")
    jm.add_argument("--layout", choices=("flat", "chapters"), default="flat",
                    help="flat: pages numbered across chapters (default); chapters: a folder per chapter (zip only)")
    jm.add_argument("--chapters", metavar="IDS", help="only these chapters, e.g. 350235,350236 (ids from /v1/info)")
    jm.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-album lines, only the summary")
    jm.set_defaults(func=run_jm)
