"""What every family's site object shares: its identity, host rules, HTTP client, tag cache and images."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from app.blocking import BlockingPool
from app.sources.booru.base import ImageDownload, SiteInfo
from app.sources.booru.config import SiteConfig
from app.sources.booru.hosts import HostPolicy, usable_url
from app.sources.booru.http import SiteHttp
from app.sources.booru.values import as_str


class HttpSite:
    page_limit = 100

    def __init__(self, config: SiteConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 api_auth: httpx.Auth | None = None, user_agent_note: str = "") -> None:
        self.config = config
        self.info: SiteInfo = config.info
        self.title = config.info.name
        self.prefix = config.info.settings_prefix
        options = config.http
        if user_agent_note:
            options = replace(options, user_agent=f"{options.user_agent} ({user_agent_note})")
        self.hosts = HostPolicy(config.info.url, config.image_hosts)
        self.http = SiteHttp(self.title, self.prefix, self.hosts, options, api_auth=api_auth, transport=transport)
        self.root = self.http.root
        self._categories: dict[str, str | None] = {}  # tag -> category; None: unknown to the site

    async def aclose(self) -> None:
        await self.http.aclose()

    def url_field(self, raw: Mapping[str, Any], key: str) -> str:
        """A URL field of a post, made absolute against the site (it may be relative or ``//host``);
        "" when the site sent something that is no usable URL, so the post counts as having no file."""
        value = as_str(raw.get(key)).strip()
        url = usable_url(value, self.hosts.root) if value else None
        return str(url) if url is not None else ""

    def remember(self, categories: Mapping[str, str | None]) -> None:
        if len(self._categories) > 200_000:  # a long-running server meets many tags; start over
            self._categories.clear()
        self._categories.update(categories)

    def known_categories(self, wanted: list[str]) -> dict[str, str]:
        return {n: c for n in wanted if (c := self._categories.get(n)) is not None}

    def unknown(self, names: list[str]) -> list[str]:
        return [n for n in dict.fromkeys(names) if n and n not in self._categories]

    def image_allowed(self, url: str) -> bool:
        return self.hosts.resolve(url) is not None

    async def download_image(self, url: str, dest: Path, files: BlockingPool) -> ImageDownload:
        return await self.http.download_image(url, dest, files)
