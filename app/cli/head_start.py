"""A dataset download's first page of posts, asked for while the rest of the command loads.

Before ``jmbooru gelbooru TAGS`` can ask anything, it loads pydantic, the settings and the download
code: about 0.15 s, and then the first page of posts is one more round trip away. The site itself
needs none of that when the settings name nothing but the site's own address, credentials, rate and
timeout (``JMBOORU_GELBOORU_API_KEY`` and the like, in the environment, ``./.env`` or the user config
file) or nothing at all: those are read here as they stand, the flags put over them, and the site is
built at once. It asks for the first page, and the rest of the command loads in a thread while the
answer travels.

Once the settings are loaded the command builds the site's configuration again, the normal way. The
same configuration and the download goes on with that site and the posts already on their way;
another (a value pydantic reads differently) and the head start is dropped unused. Any other setting
(a proxy, a user agent, image hosts) and there is no head start: the settings are read first, so
that the first request already goes where they say. A command that gives a caption, filter or
trainer flag (pydantic checks those once it is loaded) gets none either, so that a bad value still
asks nothing of the site; true/false switches cannot be bad and do not count. Anything else that
keeps the head start from starting (an unknown site, missing credentials, a malformed ``--url``) is
left for the command to report in its own words.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import os
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dotenv import dotenv_values

from app.cli import loop as cli_loop
from app.cli.flags import search_tags, sets_flags_checked_later, site_overrides
from app.config_files import PREFIX, env_files

if TYPE_CHECKING:
    from app.config import Settings
    from app.sources.booru.base import BooruSite, Post
    from app.sources.booru.config import SiteConfig
    from app.sources.booru.sites import SiteEntry

# What a dataset download loads after the site is built: imported in a thread while the first page
# is on its way (pydantic, the settings, captions, the download and the export options).
DOWNLOAD_MODULES = ("app.cli.booru_run", "app.config", "app.outputs.exports.options")


# A booru site's own settings the head start reads without pydantic (JMBOORU_<SITE>_<KEY>): text, or a
# number; the names site_config takes them under.
_SITE_KEYS: dict[str, tuple[type, str]] = {
    "url": (str, "url"), "api_key": (str, "api_key"), "user_id": (str, "user_id"), "login": (str, "login"),
    "api_rate": (float, "rate"), "timeout_seconds": (float, "timeout"),
}


def site_settings(site: str, sites: Iterable[str]) -> dict[str, Any] | None:
    """``site``'s own settings, as ``site_config`` overrides, read where pydantic-settings reads them
    (the environment first, then ``./.env``, then the user config file; names in any case); None when
    anything else is set there (a proxy, a user agent, this site's image hosts, a value that is no
    number): then the settings are read first, so that the first request already goes where they say.
    Other sites' own settings change nothing here."""
    prefix = PREFIX.lower()
    try:
        sources = [dict(os.environ)] + [dotenv_values(path) for path in reversed(env_files()) if path.is_file()]
    except (OSError, ValueError):  # an unreadable file: the settings will say so
        return None
    found: dict[str, str] = {}
    for source in sources:  # the first source that sets a value wins
        for name, value in source.items():
            key = name.lower()
            if not key.startswith(prefix) or key == f"{prefix}env_file":
                continue
            owner, field = next(((s, key.removeprefix(f"{prefix}{s}_")) for s in sites
                                 if key.startswith(f"{prefix}{s}_")), ("", ""))
            if field not in _SITE_KEYS or value is None:
                return None
            if owner == site:
                found.setdefault(field, value)
    overrides: dict[str, Any] = {}
    for field, value in found.items():
        kind, option = _SITE_KEYS[field]
        try:
            overrides[option] = kind(value)
        except ValueError:  # the settings will say what is wrong with it
            return None
        if kind is float and not (math.isfinite(overrides[option]) and overrides[option] > 0):
            return None  # the settings take a positive number: they will say so
    return overrides


async def _first(posts: AsyncGenerator[Post, None]) -> Post | None:
    try:
        return await anext(posts)
    except StopAsyncIteration:
        return None


@dataclass
class HeadStart:
    """A site built from its defaults, its own settings and the flags, listing ``tags`` on ``runner``'s loop."""

    runner: asyncio.Runner
    entry: SiteEntry
    overrides: dict[str, Any]
    site: BooruSite
    config: SiteConfig  # what the site was built from
    tags: str
    max_posts: int
    listing: AsyncGenerator[Post, None]
    first: asyncio.Task[Post | None] | None = None
    taken: bool = field(default=False)
    read: bool = field(default=False)  # whether whoever took the posts began reading them

    def start(self) -> None:
        """Ask for the first page (call on the runner's loop)."""
        self.first = asyncio.get_running_loop().create_task(_first(self.listing))

    async def take(self, settings: Settings, tags: str, max_posts: int
                   ) -> tuple[BooruSite, AsyncGenerator[Post, None]] | None:
        """The site and its posts, when ``settings`` give this very site and the search is this one;
        else None (the head start is dropped and the caller builds its own site)."""
        from app.sources.booru.registry import site_config

        config = site_config(self.entry, settings, **self.overrides)
        if self.taken or (config, tags, max_posts) != (self.config, self.tags, self.max_posts):
            await self.drop()
            return None
        self.taken = True
        return self.site, self._posts()

    async def _posts(self) -> AsyncGenerator[Post, None]:
        self.read = True
        try:
            assert self.first is not None
            post = await self.first
            if post is None:
                return
            yield post
            async for post in self.listing:
                yield post
        finally:
            await self._stop_listing()

    async def _stop_listing(self) -> None:
        if self.first is not None and not self.first.done():
            self.first.cancel()
        if self.first is not None:
            await asyncio.gather(self.first, return_exceptions=True)  # its outcome read, never lost
        await self.listing.aclose()

    async def drop(self) -> None:
        """Stop the listing and close the site (when nobody took them)."""
        if self.taken:
            return
        self.taken = True
        try:
            await self._stop_listing()
        finally:
            await self.site.aclose()

    def close(self) -> None:
        """Drop what nobody took, stop a listing taken but never read (the command failed in
        between), and close the loop; the command's last step."""
        try:
            if not self.taken:
                self.runner.run(self.drop())
            elif not self.read:
                self.runner.run(self._stop_listing())
        finally:
            self.runner.close()


def begin(args: argparse.Namespace, load: Iterable[str] = DOWNLOAD_MODULES) -> HeadStart | None:
    """Ask for the first page of the download ``args`` describe and import ``load`` meanwhile; None
    (nothing asked, nothing loaded) when the site cannot be known yet or the command is no tag search."""
    if getattr(args, "pool", None) or sets_flags_checked_later(args):
        return None  # a bad caption, filter or trainer flag must ask nothing of the site
    tags, problem = search_tags(args)
    if problem is not None:
        return None
    from app.sources.booru.registry import SITES, family_class, site_config
    from app.sources.booru.sockets import load_network_backend
    from app.sources.selection import scan_limit

    entry = SITES.get(args.site)
    settings = site_settings(args.site, SITES) if entry is not None else None
    if entry is None or settings is None:
        return None
    overrides = site_overrides(args)
    try:
        config = site_config(entry, None, **{**settings, **{k: v for k, v in overrides.items() if v is not None}})
        site = family_class(entry.family)(config)
    except Exception:  # a malformed --url and the like: the command meets it again and says so
        return None
    runner = cli_loop.new_runner()
    limit = scan_limit(args.max_images)
    head = HeadStart(runner, entry, overrides, site, config, tags, limit, site.iter_posts(tags, max_posts=limit))
    try:
        site.check_credentials()  # missing credentials: no request; the command reports them
        load_network_backend()  # so the first request is not slowed by the imports beside it
        runner.run(_overlap(head, tuple(load)))
    except BaseException as exc:
        head.close()
        if isinstance(exc, Exception):
            return None  # the command meets the same problem again and reports it
        raise
    return head


async def _overlap(head: HeadStart, modules: tuple[str, ...]) -> None:
    head.start()

    def load() -> None:
        for name in modules:
            importlib.import_module(name)

    # The loop sends the request and waits for its answer while the modules load in a thread of
    # their own (never the loop's default executor).
    from app.blocking import BlockingPool

    pool = BlockingPool(1, "cli-imports")
    try:
        await pool.run_to_end(load)
    finally:
        pool.shutdown(wait=False)
