"""A dataset download's first page of posts, asked for while the rest of the command loads.

Before ``jmbooru gelbooru TAGS`` can ask anything, it loads pydantic, the settings and the download
code: about 0.15 s, and then the first page of posts is one more round trip away. When nothing but
the command line configures the site (no ``JMBOORU_*`` variable, no ``./.env``, no user config
file), the site those settings would give is already known: the site's defaults and the flags. It is
built from them at once, asks for the first page, and the rest of the command loads in a thread
while the answer travels.

Once the settings are loaded the command builds the site's configuration again, the normal way. The
same configuration (always, when nothing configures the site) and the download goes on with that
site and the posts already on their way; another and the head start is dropped unused. A command
that gives a caption, filter or trainer flag (pydantic checks those once it is loaded) gets no head
start, so that a bad value still asks nothing of the site; true/false switches cannot be bad and do
not count. Anything else that keeps the head start from starting (an unknown site, missing
credentials, a malformed ``--url``) is left for the command to report in its own words.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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


def configured_elsewhere() -> bool:
    """Whether anything but the command line sets jmbooru's settings (a variable or a settings file).
    pydantic-settings reads the variables' names in any case, so ``jmbooru_proxy`` counts too."""
    return any(name.upper().startswith(PREFIX) for name in os.environ) or any(p.is_file() for p in env_files())


async def _first(posts: AsyncGenerator[Post, None]) -> Post | None:
    try:
        return await anext(posts)
    except StopAsyncIteration:
        return None


@dataclass
class HeadStart:
    """A site built from its defaults and the flags, listing ``tags`` on ``runner``'s loop."""

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
        """Drop what nobody took and close the loop; the command's last step."""
        try:
            if not self.taken:
                self.runner.run(self.drop())
        finally:
            self.runner.close()


def begin(args: argparse.Namespace, load: Iterable[str] = DOWNLOAD_MODULES) -> HeadStart | None:
    """Ask for the first page of the download ``args`` describe and import ``load`` meanwhile; None
    (nothing asked, nothing loaded) when the site cannot be known yet or the command is no tag search."""
    if getattr(args, "pool", None) or sets_flags_checked_later(args) or configured_elsewhere():
        return None  # a bad caption, filter or trainer flag must ask nothing of the site
    tags, problem = search_tags(args)
    if problem is not None:
        return None
    from app.sources.booru.registry import SITES, family_class, site_config
    from app.sources.booru.sockets import load_network_backend
    from app.sources.selection import scan_limit

    entry = SITES.get(args.site)
    if entry is None:
        return None
    overrides = site_overrides(args)
    try:
        config = site_config(entry, None, **overrides)
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

    # The loop sends the request and waits for its answer while the modules load in a thread.
    await asyncio.to_thread(load)
