"""``jmbooru jm``: download JM albums to zip files from the command line, without the server."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from app.blocking import BlockingPool
from app.config import Settings
from app.errors import AppError
from app.jobs.models import Job, new_job_id
from app.jobs.progress import Counters, ProgressTracker
from app.jobs.runner import RunContext
from app.storage import build_zip


async def download_album_zip(settings: Settings, album_id: str, out_dir: Path, *, quiet: bool = False) -> Path:
    """Download one album and write ``<title> [JM<id>].zip`` into ``out_dir``; returns its path."""
    # Imported here: jmcomic is heavy, and the other commands of ``jmbooru`` never need it.
    from app.jobs.album_runner import AlbumRunner
    from app.sources import jm as jm_source

    jm_source.apply_module_settings(settings)
    pool = BlockingPool(settings.jm_threads, "jm")

    async def show(c: Counters) -> None:
        if not quiet:
            print(f"\r{c.title or album_id}: {c.done}/{c.total} pages", end="", file=sys.stderr, flush=True)

    try:
        tracker = ProgressTracker(show, interval=0.2)
        with tempfile.TemporaryDirectory(prefix=".jmbooru-", dir=out_dir) as work:
            job = Job(job_id=new_job_id(), kind="album", key=f"album:{album_id}", params={"album_id": album_id})
            output = await AlbumRunner(settings, pool).run(RunContext(job=job, work_dir=Path(work), progress=tracker))
            await tracker.close()
            dest = out_dir / output.download_name
            await pool.run(build_zip, output.entries, dest)
        if not quiet:
            print(f"\r{output.title}: {len(output.entries)} pages -> {dest}", file=sys.stderr)
        return dest
    finally:
        pool.shutdown(wait=False)


def _run(args: argparse.Namespace) -> int:
    from app.api.jm import parse_album_id

    settings = Settings()
    failed = 0
    for raw in args.album_ids:
        try:
            album_id = parse_album_id(raw)
            Path(args.out).mkdir(parents=True, exist_ok=True)
            asyncio.run(download_album_zip(settings, album_id, Path(args.out), quiet=args.quiet))
        except AppError as exc:
            failed += 1
            print(f"\n{raw}: {exc.detail}", file=sys.stderr)
    return 1 if failed else 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    jm = commands.add_parser("jm", help="download JM albums as zip files (no server needed)")
    jm.add_argument("album_ids", nargs="+", metavar="ALBUM_ID", help="album ids, like 350234")
    jm.add_argument("--out", default=".", help="folder for the zip files (default: current folder)")
    jm.add_argument("--quiet", action="store_true", help="no progress output")
    jm.set_defaults(func=_run)
