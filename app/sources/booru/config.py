"""Everything one booru site object is built from (the registry fills it in from the settings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.sources.booru.base import SiteInfo
from app.sources.booru.http import HttpOptions
from app.sources.booru.sites import STANDARD_TAG_TYPES


@dataclass(frozen=True, slots=True)
class SiteConfig:
    info: SiteInfo
    http: HttpOptions
    image_hosts: tuple[str, ...] = ()
    api_key: str = ""
    user_id: str = ""
    login: str = ""
    tag_types: Mapping[int, str] = field(default_factory=lambda: STANDARD_TAG_TYPES)
    page_size: int = 100  # posts per page when iterating a whole search
    max_offset: int | None = None  # how deep numbered pages reach, in posts
    tag_limit: int = 0  # plain tags one search may hold (Danbooru: 2 without a Gold account); 0 = any
