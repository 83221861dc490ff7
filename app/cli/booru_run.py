"""Running ``jmbooru booru``, ``jmbooru gelbooru`` and ``jmbooru check`` (their flags are in
``app.cli.booru``, which imports this only when one of them runs).

The flag names of the original Gelbooru-API-Downloader (``--tags``, ``--max_images_number``,
``--download_dir``, ``--max_workers``, ``--unit``, ``--timeout``, ``--add_comma``,
``--remove_underscore``, ``--use_escape``, ``--check_images_mode``) are accepted too.
Nothing here loads the web stack or jmcomic: these commands start fast.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.cli import loop as cli_loop
from app.cli.flags import search_tags, site_overrides
from app.errors import AppError
from app.sources.booru.base import BooruSite, CredentialsError, Post
from app.sources.booru.files import ImagePools
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.dataset import DatasetProgress, DatasetResult, download_dataset
from app.sources.selection import scan_limit
from app.text import full_stop

if TYPE_CHECKING:
    from app.blocking import BlockingPool
    from app.cli.head_start import HeadStart
    from app.config import Settings
    from app.outputs.exports.options import TrainerOptions
    from app.sources.dataset_check import CheckResult

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
# Sentences from app/sources name settings; on the command line the flags do the same job.
_FLAGS_FOR_SETTINGS = (("_API_KEY", "--api-key"), ("_USER_ID", "--user-id"), ("_LOGIN", "--login"),
                       ("_URL", "--url"), ("_TIMEOUT_SECONDS", "--timeout"), ("_API_RATE", "--rate"))



def _fail(command: str, sentence: str, code: int) -> int:
    print(f"jmbooru {command}: {sentence}", file=sys.stderr)
    return code


def with_flag_hints(sentence: str) -> str:
    flags = [flag for suffix, flag in _FLAGS_FOR_SETTINGS if re.search(rf"JMBOORU_[A-Z0-9]+{suffix}\b", sentence)]
    return f"{sentence} (On the command line: {', '.join(flags)}.)" if flags else sentence


def _validation_sentence(exc: ValidationError) -> str:
    if exc.title == "Settings":  # a JMBOORU_ variable: name it and what it accepts
        from app.config import settings_sentence

        return settings_sentence(exc)
    return full_stop("; ".join(str(e.get("msg", "invalid value")).removeprefix("Value error, ") for e in exc.errors()))


def _exit_code(exc: AppError) -> int:
    return EXIT_BAD_INPUT if exc.status_code < 500 or isinstance(exc, CredentialsError) else EXIT_FAILED


def _settings() -> Settings:
    from app.config import Settings

    return Settings()


def _site(args: argparse.Namespace, settings: Settings) -> BooruSite:
    from app.sources.booru.registry import build_site

    return build_site(args.site, settings, **site_overrides(args))


def _run(command: str, work: Callable[[], Any], runner: asyncio.Runner | None = None) -> int:
    """Run the coroutine (on ``runner``'s loop, when given) and turn every expected failure into a
    sentence and an exit code."""
    cli_loop.start_up_over()
    try:
        return int(cli_loop.run(work(), runner))
    except AppError as exc:
        return _fail(command, with_flag_hints(exc.detail), _exit_code(exc))
    except ValidationError as exc:
        return _fail(command, _validation_sentence(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return _fail(command, "interrupted; partial files were removed.", EXIT_INTERRUPTED)


def run_booru(args: argparse.Namespace, head: HeadStart | None = None) -> int:
    """``jmbooru booru`` and ``jmbooru gelbooru``; ``head``: the first page already asked for
    (``app.cli.head_start``), used when the settings give the same site, closed in any case."""
    try:
        return _run_booru(args, head)
    finally:
        if head is not None:
            head.close()


def _run_booru(args: argparse.Namespace, head: HeadStart | None) -> int:
    command = args.command
    if getattr(args, "pool", None):
        return run_pool(args)
    args.out = args.out or "images"
    tags, problem = search_tags(args)
    if problem is not None:
        return _fail(command, problem, EXIT_BAD_INPUT)
    if args.unit is not None and not args.quiet:
        print("note: --unit is ignored; jmbooru fetches exactly --max images.", file=sys.stderr)
    from app.cli.booru_exports import finish_download, print_finish, trainer_options

    try:
        trainer = trainer_options(args)  # a bad value stops here, before anything is downloaded
    except ValidationError as exc:
        return _fail(command, _validation_sentence(exc), EXIT_BAD_INPUT)
    finishing = bool(trainer.exports) or trainer.dedupe is not None

    async def work() -> int:
        separator = args.separator if args.separator is not None else (", " if args.add_comma is not False else " ")
        caption = CaptionOptions(
            remove_underscore=args.remove_underscore is not False,
            escape_parentheses=args.escape is not False,
            separator=separator,
            category_order=args.category_order,
            drop_categories=args.drop_categories or [],
        )
        filters = PostFilters(
            rating=args.rating, min_width=args.min_width, min_height=args.min_height,
            min_score=args.min_score, blacklist=args.blacklist or [],
        )
        settings = _settings()
        posts = None
        if head is not None and (taken := await head.take(settings, tags, scan_limit(args.max_images))):
            site, posts = taken
        else:
            site = _site(args, settings)
        checked = finished = None
        try:
            with ImagePools.create() as pools:  # this command's, shut down when it ends
                site.check_credentials()
                result = await _download(args, site, tags, caption, filters,
                                         args.workers or settings.download_workers, trainer, pools, posts=posts)
                if finishing:
                    finished = await finish_download(args.out, trainer, caption, result, site.info.site, pools)
                if args.check:
                    from app.sources.dataset_check import check_dataset

                    checked = await check_dataset(args.out, args.check, site, pools=pools)
        finally:
            await site.aclose()
        _print_download(result, args.out)
        if finished is not None:
            print_finish(finished)
        if checked is not None:
            _print_check(checked)
        return EXIT_FAILED if result.failed or (checked is not None and checked.unresolved) else EXIT_OK

    return _run(command, work, head.runner if head is not None else None)


async def _download(args: argparse.Namespace, site: BooruSite, tags: str, caption: CaptionOptions,
                    filters: PostFilters, workers: int, trainer: TrainerOptions, pools: ImagePools, *,
                    max_images: int | None = None, posts: AsyncGenerator[Post, None] | None = None) -> DatasetResult:
    from app.cli.booru_exports import inspector

    bar: Any = None
    if not args.quiet and sys.stderr.isatty():  # no bar, no tqdm to load
        from tqdm import tqdm

        bar = tqdm(total=None, unit="img", desc=site.info.site, file=sys.stderr, dynamic_ncols=True)

    def on_progress(p: DatasetProgress) -> None:
        if bar is None:
            return
        if bar.total != p.total:
            bar.total = p.total
        bar.set_postfix_str(f"{p.bytes / 1e6:.1f} MB" + (f", {p.failed} failed" if p.failed else ""), refresh=False)
        bar.update(p.done - bar.n)

    def on_wait(notice: str | None) -> None:
        if notice and not args.quiet:
            if bar is None:
                print(notice, file=sys.stderr)
            else:
                bar.write(notice, file=sys.stderr)

    try:
        return await download_dataset(
            site, tags, args.out, max_images=max_images or args.max_images, caption=caption, filters=filters,
            workers=workers, overwrite_captions=args.overwrite_captions, on_progress=on_progress, on_wait=on_wait,
            trigger=trainer.export_options.trigger,
            want_categories=bool({"metadata_jsonl", "json_captions"} & set(trainer.exports)),
            inspect=inspector(args.out, trainer, caption, site.info.site),
            skip_variants=trainer.skip_variants,
            pools=pools,
            posts=posts,
        )
    finally:
        if bar is not None:
            bar.close()


def _print_download(result: DatasetResult, out: str) -> None:
    for outcome in [f for f in result.files if f.status in ("failed", "unavailable")][:20]:
        print(f"{outcome.status} {outcome.md5 or '(no md5)'} (post {outcome.post_id}): {outcome.error}", file=sys.stderr)
    print(f"{result.summary()} -> {out}")


def _print_check(result: CheckResult) -> None:
    for problem in result.problems:
        print(f"{problem.action} {problem.file}: {problem.problem} ({problem.detail})", file=sys.stderr)
    print(result.summary())


def run_check(args: argparse.Namespace) -> int:
    trainer = None
    if args.exports:
        from app.cli.booru_exports import trainer_options

        args.keep_tokens = args.keep_tokens if args.keep_tokens is not None else 0  # no trigger is added here
        try:
            trainer = trainer_options(argparse.Namespace(**{**vars(args), "dedupe": False, "dedupe_dhash": None,
                                                           "dedupe_phash": None, "dedupe_keep": None,
                                                           "skip_variants": "none"}))
        except ValidationError as exc:
            return _fail("check", _validation_sentence(exc), EXIT_BAD_INPUT)

    async def work() -> int:
        from app.sources.dataset_check import check_dataset

        site = _site(args, _settings())
        missing = 0
        try:
            with ImagePools.create() as pools:  # this command's, shut down when it ends
                result = await check_dataset(args.folder, args.mode, site, pools=pools)
                if trainer is not None:
                    from app.cli.booru_exports import print_finish, rewrite_exports

                    finished, _ = await rewrite_exports(args.folder, trainer, site, pools)
                    missing = len(finished.missing_posts)
        finally:
            await site.aclose()
        _print_check(result)
        if trainer is not None:
            print_finish(finished)
        return EXIT_FAILED if result.unresolved or missing else EXIT_OK

    return _run("check", work)


def run_pool(args: argparse.Namespace) -> int:
    """``jmbooru booru SITE --pool ID``: the pool as one book in DIR (or a dataset of its posts)."""
    command = args.command
    out = Path(args.out or ".")
    if args.tags or args.tags_opt:
        return _fail(command, "give either TAGS or --pool, not both.", EXIT_BAD_INPUT)

    async def work() -> int:
        from app.sources.booru.pools import pool_site

        settings = _settings()
        site = _site(args, settings)
        try:
            pool_site(site)  # a site without pools is refused first, whatever its credentials
            site.check_credentials()
            with ImagePools.create() as pools:  # this command's, shut down when it ends
                if args.format == "dataset":
                    return await _pool_dataset(args, site, settings, out, pools)
                return await _pool_book(args, site, settings, out, pools.files)
        finally:
            await site.aclose()

    return _run(command, work)


async def _pool_dataset(args: argparse.Namespace, site: BooruSite, settings: Settings, out: Path,
                        pools: ImagePools) -> int:
    from app.outputs.exports.options import TrainerOptions
    from app.sources.booru.pools import pool_site

    pool = await pool_site(site).pool(args.pool)
    tag = "ordpool" if site.info.family == "danbooru" else "pool"
    caption = CaptionOptions(remove_underscore=args.remove_underscore is not False,
                             escape_parentheses=args.escape is not False,
                             separator=args.separator if args.separator is not None else ", ")
    args.out = str(out)
    result = await _download(args, site, f"{tag}:{args.pool}", caption, PostFilters(),
                             args.workers or settings.download_workers, TrainerOptions(), pools,
                             max_images=pool.post_count)
    _print_download(result, str(out))
    return EXIT_FAILED if result.failed else EXIT_OK


def _scratch(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".jmbooru-pool-", dir=out))


async def _pool_book(args: argparse.Namespace, site: BooruSite, settings: Settings, out: Path,
                     files: BlockingPool) -> int:
    from app.archives import ArchiveContent, archive_format, build_archive
    from app.outputs.library import library_name
    from app.sources.pool_download import download_pool, pool_book

    scratch = await files.run_to_end(_scratch, out)
    try:
        downloaded = await download_pool(site, args.pool, scratch, files=files,
                                         workers=args.workers or settings.download_workers)
        book = await pool_book(site, downloaded)
        fmt = archive_format(args.format)
        dest = out / (library_name(downloaded.pool.name, args.pool) + fmt.extension)
        await build_archive(files, fmt, ArchiveContent(downloaded.pages, book), dest, scratch)
    finally:
        await files.run_to_end(shutil.rmtree, scratch, True)
    if not args.quiet:
        pages = len(downloaded.pages)
        print(f"{dest} ({pages} {'page' if pages == 1 else 'pages'})")
        for skipped in downloaded.skipped:
            print(f"  skipped post {skipped.post_id}: {skipped.reason}", file=sys.stderr)
    return EXIT_OK
