"""``jmbooru gelbooru`` (download a search as an SD dataset) and ``jmbooru check`` (verify a folder).

The flag names of the original Gelbooru-API-Downloader (``--tags``, ``--max_images_number``,
``--download_dir``, ``--max_workers``, ``--unit``, ``--timeout``, ``--add_comma``,
``--remove_underscore``, ``--use_escape``, ``--check_images_mode``) are accepted too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.errors import AppError
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.dataset import DatasetProgress, DatasetResult, download_dataset
from app.sources.dataset_check import CheckResult, check_dataset
from app.sources.gelbooru import GelbooruClient, GelbooruCredentialsError

if TYPE_CHECKING:
    from app.config import Settings

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_MODES = {"0": "report", "1": "fix", "2": "delete", "report": "report", "fix": "fix", "delete": "delete"}


class _OptionalBool(argparse.Action):
    """``--flag``, ``--flag true`` or ``--flag=false``. The original flags took no value, so a word that
    is not a boolean (``--remove_underscore "cat_ears"``) is kept aside as the positional TAGS."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("nargs", "?")
        kwargs.setdefault("metavar", "true|false")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        word = str(values).strip().lower() if values is not None else "true"
        if word in _TRUE or word in _FALSE:
            setattr(namespace, self.dest, word in _TRUE)
            return
        setattr(namespace, self.dest, True)
        namespace.stray = [*(getattr(namespace, "stray", None) or []), values]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _mode(text: str) -> str:
    if text.lower() not in _MODES:
        raise argparse.ArgumentTypeError("use report, fix or delete (or the original 0, 1, 2)")
    return _MODES[text.lower()]


def _add_site_flags(parser: argparse.ArgumentParser) -> None:
    site = parser.add_argument_group("Gelbooru (defaults from JMBOORU_GELBOORU_* settings)")
    site.add_argument("--api-key", help="your API key, or the whole '&api_key=...&user_id=...' line from the account options page")
    site.add_argument("--user-id", help="your numeric user id (not the user name)")
    site.add_argument("--url", help="site address (default JMBOORU_GELBOORU_URL, https://gelbooru.com)")
    site.add_argument("--timeout", type=float, help="seconds to wait for each answer (default JMBOORU_GELBOORU_TIMEOUT_SECONDS)")
    site.add_argument("--rate", type=float, help="API requests per second (default JMBOORU_GELBOORU_API_RATE, 2)")
    site.add_argument("-v", "--verbose", action="store_true", help="log retries and per-image failures to stderr")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser(
        "gelbooru",
        help="download a Gelbooru search as an SD dataset (<md5>.<ext> images plus <md5>.txt captions)",
        description="Download the newest posts matching TAGS into a folder as a Stable Diffusion dataset. "
        "A second run into the same folder skips images already there (checked by md5) and writes only "
        "missing captions.",
    )
    p.add_argument("tags", nargs="?", metavar="TAGS", help='tags as on the site, e.g. "hifumi_(blue_archive) rating:general"')
    p.add_argument("--tags", dest="tags_opt", metavar="TAGS", help="the same as the positional TAGS")
    p.add_argument("--max", "--max-images", "--max_images_number", dest="max_images", type=_positive_int, default=50,
                   metavar="N", help="how many images (default 50)")
    p.add_argument("--out", "-o", "--download_dir", dest="out", default="images", metavar="DIR",
                   help="folder to download into (default ./images)")
    p.add_argument("--workers", "--max_workers", dest="workers", type=_positive_int, metavar="N",
                   help="concurrent image downloads (default JMBOORU_DOWNLOAD_WORKERS, 8)")
    p.add_argument("--unit", type=int, metavar="N",
                   help="accepted for compatibility and ignored: the original rounded up to a multiple of --unit; "
                   "jmbooru fetches exactly --max")
    p.add_argument("--overwrite-captions", action="store_true", help="rewrite captions that already exist")
    p.add_argument("--check", "--check_images_mode", dest="check", type=_mode, metavar="MODE",
                   help="check the folder afterwards: report, fix or delete (or 0, 1, 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    cap = p.add_argument_group("captions")
    cap.add_argument("--remove-underscore", "--remove_underscore", dest="remove_underscore", action=_OptionalBool,
                     help="'_' becomes a space, except in tags of 3 characters or fewer like ^_^ (default true)")
    cap.add_argument("--keep-underscores", dest="remove_underscore", action="store_const", const=False,
                     help="keep tags in snake_case")
    cap.add_argument("--use-escape", "--use_escape", dest="escape", action=_OptionalBool,
                     help=r"write ( ) as \( \) for prompt syntax (default true)")
    cap.add_argument("--no-escape", dest="escape", action="store_const", const=False, help="leave parentheses alone")
    cap.add_argument("--add_comma", "--add-comma", dest="add_comma", action=_OptionalBool,
                     help="join tags with ', ' (true, the default) or with a space (false)")
    cap.add_argument("--separator", help="join tags with this text instead (default ', ')")
    cap.add_argument("--category-order", metavar="LIST", help="e.g. character,copyright,artist,general,metadata")
    cap.add_argument("--drop-categories", metavar="LIST", help="e.g. metadata,deprecated")

    filt = p.add_argument_group("filters")
    filt.add_argument("--rating", metavar="LIST", help="allowed ratings, e.g. general,sensitive")
    filt.add_argument("--min-width", type=int, metavar="PX")
    filt.add_argument("--min-height", type=int, metavar="PX")
    filt.add_argument("--min-score", type=int, metavar="N")
    filt.add_argument("--blacklist", metavar="TAGS", help='skip posts with any of these tags, e.g. "comic monochrome"')
    _add_site_flags(p)
    p.set_defaults(func=run_gelbooru)

    c = commands.add_parser(
        "check",
        help="check a dataset folder: images decode and match the md5 in their names",
        description="Check every image in DIR. report: list problems; fix: fetch broken images again from "
        "Gelbooru (needs credentials) or re-save truncated ones; delete: remove broken images and their captions.",
    )
    c.add_argument("folder", metavar="DIR")
    c.add_argument("--mode", type=_mode, default="report", help="report (default), fix or delete (or 0, 1, 2)")
    _add_site_flags(c)
    c.set_defaults(func=run_check)


# --- running ---


def _fail(command: str, sentence: str, code: int) -> int:
    print(f"jmbooru {command}: {sentence}", file=sys.stderr)
    return code


def _validation_sentence(exc: ValidationError) -> str:
    return "; ".join(str(e.get("msg", "invalid value")).removeprefix("Value error, ") for e in exc.errors()) + "."


def _exit_code(exc: AppError) -> int:
    return EXIT_BAD_INPUT if exc.status_code < 500 or isinstance(exc, GelbooruCredentialsError) else EXIT_FAILED


def _setup_logging(verbose: bool) -> None:
    # Without this, Python's last-resort handler would print every retry warning over the progress bar.
    logging.getLogger("jmbooru").setLevel(logging.INFO if verbose else logging.ERROR)
    if verbose and not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s %(message)s")


def _settings() -> Settings:
    from app.config import Settings

    return Settings()


def _client(args: argparse.Namespace, settings: Settings) -> GelbooruClient:
    return GelbooruClient.from_settings(
        settings, base_url=args.url, api_key=args.api_key, user_id=args.user_id, timeout=args.timeout, rate=args.rate
    )


def _run(command: str, work: Callable[[], Any]) -> int:
    """Run the coroutine and turn every expected failure into a sentence and an exit code."""
    try:
        return int(asyncio.run(work()))
    except AppError as exc:
        return _fail(command, exc.detail, _exit_code(exc))
    except ValidationError as exc:
        return _fail(command, _validation_sentence(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return _fail(command, "interrupted; partial files were removed.", EXIT_INTERRUPTED)


def run_gelbooru(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose)
    stray = getattr(args, "stray", None) or []
    tags = args.tags or args.tags_opt
    if args.tags and args.tags_opt and " ".join(args.tags.split()) != " ".join(args.tags_opt.split()):
        return _fail("gelbooru", "give the tags once: either as TAGS or with --tags.", EXIT_BAD_INPUT)
    if tags is None and len(stray) == 1:
        tags, stray = stray[0], []
    if stray:
        return _fail("gelbooru", f"unexpected value {stray[0]!r}; true/false flags take true or false.", EXIT_BAD_INPUT)
    if not tags or not tags.strip():
        return _fail("gelbooru", 'give the tags to search for, e.g. jmbooru gelbooru "cat_ears solo" --max 20.', EXIT_BAD_INPUT)
    if args.unit is not None and not args.quiet:
        print("note: --unit is ignored; jmbooru fetches exactly --max images.", file=sys.stderr)

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
        async with _client(args, settings) as client:
            client.check_credentials()
            result = await _download(args, client, tags, caption, filters, args.workers or settings.download_workers)
            checked = await check_dataset(args.out, args.check, client) if args.check else None
        _print_download(result, args.out)
        if checked is not None:
            _print_check(checked)
        return EXIT_FAILED if result.failed or (checked is not None and checked.unresolved) else EXIT_OK

    return _run("gelbooru", work)


async def _download(args: argparse.Namespace, client: GelbooruClient, tags: str, caption: CaptionOptions,
                    filters: PostFilters, workers: int) -> DatasetResult:
    from tqdm import tqdm

    bar = tqdm(total=None, unit="img", desc="gelbooru", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet or not sys.stderr.isatty())

    def on_progress(p: DatasetProgress) -> None:
        if bar.total != p.total:
            bar.total = p.total
        bar.set_postfix_str(f"{p.bytes / 1e6:.1f} MB" + (f", {p.failed} failed" if p.failed else ""), refresh=False)
        bar.update(p.done - bar.n)

    try:
        return await download_dataset(
            client, tags, args.out, max_images=args.max_images, caption=caption, filters=filters,
            workers=workers, overwrite_captions=args.overwrite_captions, on_progress=on_progress,
        )
    finally:
        bar.close()


def _print_download(result: DatasetResult, out: str) -> None:
    for outcome in [f for f in result.files if f.status == "failed"][:20]:
        print(f"failed {outcome.md5 or '(no md5)'} (post {outcome.post_id}): {outcome.error}", file=sys.stderr)
    print(f"{result.summary()} -> {out}")


def _print_check(result: CheckResult) -> None:
    for problem in result.problems:
        print(f"{problem.action} {problem.file}: {problem.problem} ({problem.detail})", file=sys.stderr)
    print(result.summary())


def run_check(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose)

    async def work() -> int:
        async with _client(args, _settings()) as client:
            result = await check_dataset(args.folder, args.mode, client)
        _print_check(result)
        return EXIT_FAILED if result.unresolved else EXIT_OK

    return _run("check", work)
