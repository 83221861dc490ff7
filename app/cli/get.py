"""``jmbooru get URL``: download what a pasted link points at, without the server.

The link is matched like ``POST /v1/download/url`` does (``app.sources.links``); a JM link then
runs ``jmbooru jm`` and a booru link ``jmbooru booru SITE``, so each behaves exactly as those do.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_BAD_INPUT, EXIT_FAILED = 2, 1


def _site_hosts(settings: Any) -> list[Any]:
    from app.sources.booru.registry import SITES, site_config
    from app.sources.links import SiteHosts

    return [SiteHosts(site=e.site, name=e.name, family=e.family, public_url=e.url,
                      configured_url=site_config(e, settings).info.url) for e in SITES.values()]


def _chapter_album(settings: Any, chapter_id: str) -> str:
    """The album a JM chapter belongs to, from jmcomic's chapter detail (blocking: no loop runs here)."""
    from app.sources import jm as jm_source
    from app.sources.jm_errors import translate_error

    jm_source.apply_module_settings(settings)
    try:
        client = jm_source.build_option(settings).new_jm_client()
        photo = client.get_photo_detail(chapter_id, fetch_album=False, fetch_scramble_id=False)
    except Exception as exc:
        raise translate_error(exc, what="JM chapter") from exc
    return str(photo.album_id)


def run_get(args: argparse.Namespace) -> int:
    from app.cli import main
    from app.config import Settings
    from app.errors import AppError
    from app.sources.links import resolve_link

    settings = Settings()
    try:
        link = resolve_link(args.url, _site_hosts(settings))
        if link.kind == "jm_chapter":
            album_id = _chapter_album(settings, link.chapter_id)
            argv = ["jm", album_id, "--chapters", link.chapter_id]
        elif link.kind == "jm_album":
            argv = ["jm", link.album_id]
        elif link.kind == "booru_pool":
            argv = ["booru", link.site, "--pool", link.pool_id]
        else:
            argv = ["booru", link.site, link.tags]
    except AppError as exc:
        print(f"jmbooru get: {exc.detail[0].lower() + exc.detail[1:]}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.status_code < 500 else EXIT_FAILED
    jm = argv[0] == "jm"
    pool = link.kind == "booru_pool"
    if not jm and not pool and args.format:
        print("jmbooru get: --format applies to JM and pool links; a booru search or post downloads images and "
              "captions into a folder.", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.out:
        argv += ["-o", args.out]
    if jm:
        argv += ["--format", args.format or "zip"]
    elif pool:
        argv += ["--format", args.format or "cbz"]
    else:
        argv += ["--max", str(1 if link.kind == "booru_post" else args.max_images)]
    if args.quiet:
        argv.append("-q")
    if not args.quiet:
        print(f"jmbooru get: {args.url} -> jmbooru {' '.join(argv)}", file=sys.stderr)
    return main(argv)


def register(commands: Any) -> None:
    get = commands.add_parser(
        "get", help="download what a pasted JM or booru link points at (no server needed)",
        description="Download a JM album or chapter (…/album/<id>, …/photo/<id> on any JM domain) like "
        "'jmbooru jm', or a booru tag search or post of a known site like 'jmbooru booru'.")
    get.add_argument("url", metavar="URL", help="a JM album or chapter link, or a booru post list, post or pool link")
    get.add_argument("-o", "--out", metavar="DIR",
                     help="folder to download into (default: the current folder for JM, ./images for boorus)")
    get.add_argument("--format", choices=("zip", "cbz", "pdf"), help="JM links: the archive format (default zip); pool links: the book's (default cbz)")
    get.add_argument("--max", dest="max_images", type=int, default=50, metavar="N",
                     help="booru tag searches: how many images (default 50)")
    get.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only the summary")
    get.set_defaults(func=run_get)
