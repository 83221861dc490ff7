"""``jmbooru booru SITE`` and ``jmbooru gelbooru`` (download a search as an SD dataset) and
``jmbooru check`` (verify a dataset folder): their flags.

The flag names of the original Gelbooru-API-Downloader (``--tags``, ``--max_images_number``,
``--download_dir``, ``--max_workers``, ``--unit``, ``--timeout``, ``--add_comma``,
``--remove_underscore``, ``--use_escape``, ``--check_images_mode``) are accepted too.
Building the parser imports no HTTP client, no pydantic and no booru family, so ``--help`` answers
at once; ``app.cli.booru_run`` does the work.
"""

from __future__ import annotations

import argparse
import logging
import sys

from app.cli.booru_exports import add_check_export_flags, add_trainer_flags
from app.cli.flags import add_dataset_flags, add_site_flags, mode, note_flags_checked_later, positive_int


def setup_logging(verbose: bool) -> None:
    # Without this, Python's last-resort handler would print every retry warning over the progress bar.
    logging.getLogger("jmbooru").setLevel(logging.INFO if verbose else logging.ERROR)
    if verbose and not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s %(message)s")


def run_booru(args: argparse.Namespace) -> int:
    from app.cli.head_start import begin
    from app.sources.booru.tls import prepare_in_background

    setup_logging(args.verbose)
    prepare_in_background()  # the TLS context loads its CA bundle while the modules below load
    try:
        head = begin(args)  # the first page asked for while the download's modules load, when it can be
    except KeyboardInterrupt:
        from app.cli import EXIT_INTERRUPTED

        print(f"jmbooru {args.command}: interrupted; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    from app.cli.booru_run import run_booru as run

    return run(args, head)


def run_check(args: argparse.Namespace) -> int:
    from app.sources.booru.tls import prepare_in_background

    setup_logging(args.verbose)
    prepare_in_background()
    from app.cli.booru_run import run_check as run

    return run(args)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from app.sources.booru.sites import SITES

    b = commands.add_parser(
        "booru",
        help="download a booru search as an SD dataset: " + ", ".join(SITES),
        description="Download the newest posts of SITE matching TAGS into a folder as a Stable Diffusion "
        "dataset (<md5>.<ext> plus <md5>.txt). A second run into the same folder skips images already there "
        "(checked by md5) and writes only missing captions.",
    )
    b.add_argument("site", metavar="SITE", help="one of: " + ", ".join(SITES))
    add_dataset_flags(b)
    add_trainer_flags(b)
    pool = b.add_argument_group("pools (danbooru, yandere, konachan)")
    pool.add_argument("--pool", type=positive_int, metavar="ID",
                      help="download pool ID as one book instead of a tag search: DIR/<pool name>.cbz")
    pool.add_argument("--format", choices=("cbz", "zip", "pdf", "dataset"), default="cbz",
                      help="with --pool: cbz (default), zip, pdf, or dataset (images plus captions in DIR)")
    b.set_defaults(out=None)  # a pool book goes to the current folder, a dataset to ./images
    add_site_flags(b, "the site (defaults from its JMBOORU_<SITE>_* settings)", login=True)
    note_flags_checked_later(b)
    b.set_defaults(func=run_booru, exit_at_once=True)

    g = commands.add_parser(
        "gelbooru",
        help="download a Gelbooru search as an SD dataset (<md5>.<ext> images plus <md5>.txt captions)",
        description="Download the newest posts matching TAGS into a folder as a Stable Diffusion dataset. "
        "A second run into the same folder skips images already there (checked by md5) and writes only "
        "missing captions. The same as 'jmbooru booru gelbooru'.",
    )
    add_dataset_flags(g)
    add_trainer_flags(g)
    add_site_flags(g, "Gelbooru (defaults from JMBOORU_GELBOORU_* settings)")
    note_flags_checked_later(g)
    g.set_defaults(func=run_booru, site="gelbooru", exit_at_once=True)

    c = commands.add_parser(
        "check",
        help="check a dataset folder: images decode and match the md5 in their names",
        description="Check every image in DIR. report: list problems; fix: fetch broken images again from "
        "the site (Gelbooru needs credentials) or re-save truncated ones; delete: remove broken images and "
        "their captions. With --exports: (re)write those exports from the captions as they are now.",
    )
    c.add_argument("folder", metavar="DIR")
    c.add_argument("--mode", type=mode, default="report", help="report (default), fix or delete (or 0, 1, 2)")
    c.add_argument("--site", default="gelbooru", help="where fix fetches broken images again, and where --exports "
                   "looks up posts missing from metadata.jsonl (default gelbooru)")
    add_check_export_flags(c)
    add_site_flags(c, "the site (defaults from its JMBOORU_<SITE>_* settings)", login=True)
    c.set_defaults(func=run_check, exit_at_once=True)


