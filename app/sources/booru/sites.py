"""The booru sites jmbooru knows, as data: a name, a family and the real site's defaults each.

Cheap to import on purpose (no HTTP client, no families): the command line lists the sites when it
builds its parser, and its help must not wait for the whole booru stack to load.
``app.sources.booru.registry`` turns an entry into a site object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.sources.booru.base import CredentialsKind, Family

# Tag type numbers shared by Gelbooru, Gelbooru 0.2 and Danbooru; Moebooru sites differ above 4.
STANDARD_TAG_TYPES: Mapping[int, str] = {
    0: "general", 1: "artist", 3: "copyright", 4: "character", 5: "metadata", 6: "deprecated",
}


@dataclass(frozen=True, slots=True)
class SiteEntry:
    site: str  # the name in URLs and settings: lower-case letters, digits and underscores
    name: str
    family: Family
    url: str
    credentials: CredentialsKind = "none"
    image_hosts: tuple[str, ...] = ()  # the real site's CDN hosts, used while the setting is unset
    rate: float = 2.0
    page_size: int = 100
    max_offset: int | None = None
    tag_limit: int = 0
    tag_types: Mapping[int, str] = field(default_factory=lambda: STANDARD_TAG_TYPES)


SITES: dict[str, SiteEntry] = {
    entry.site: entry
    for entry in (
        SiteEntry("gelbooru", "Gelbooru", "gelbooru", "https://gelbooru.com", "required",
                  ("img*.gelbooru.com", "video-cdn*.gelbooru.com"), max_offset=20_000),
        SiteEntry("safebooru", "Safebooru", "gelbooru_v02", "https://safebooru.org", "none",
                  ("safebooru.org", "*.safebooru.org")),
        SiteEntry("danbooru", "Danbooru", "danbooru", "https://danbooru.donmai.us", "optional",
                  ("cdn.donmai.us", "raikou*.donmai.us"), page_size=200, tag_limit=2),
        SiteEntry("yandere", "yande.re", "moebooru", "https://yande.re", "none",
                  ("files.yande.re", "assets.yande.re"), rate=1.0,
                  tag_types={0: "general", 1: "artist", 3: "copyright", 4: "character", 5: "artist", 6: "metadata"}),
        SiteEntry("konachan", "Konachan", "moebooru", "https://konachan.com", "none",
                  ("konachan.com", "konachan.net"), rate=1.0,
                  tag_types={0: "general", 1: "artist", 3: "copyright", 4: "character", 5: "metadata", 6: "artist"}),
    )
}
