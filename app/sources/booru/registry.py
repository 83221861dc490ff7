"""Site objects from the site list (``app/sources/booru/sites.py``) and the settings.

Adding a site of a known family (a Gelbooru 0.2 site such as rule34, another Moebooru) is one
``SiteEntry`` in that list, not code elsewhere: the API, the jobs, the CLI and the benchmarks take
any site in ``SITES``. A site's settings are ``JMBOORU_<SITE>_URL``, ``_API_KEY``, ``_USER_ID``,
``_LOGIN``, ``_API_RATE``, ``_TIMEOUT_SECONDS`` and ``_IMAGE_HOSTS`` where ``Settings`` declares
them; an entry's own defaults apply otherwise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import httpx

from app.errors import NotFound
from app.sources.booru.base import BooruSite, Family, SiteInfo
from app.sources.booru.config import SiteConfig
from app.sources.booru.http import DEFAULT_USER_AGENT, HttpOptions
from app.sources.booru.sites import SITES, STANDARD_TAG_TYPES, SiteEntry

__all__ = ["FAMILIES", "SITES", "STANDARD_TAG_TYPES", "SiteEntry", "build_site", "build_sites", "family_class", "site_config",
           "unknown_site"]

if TYPE_CHECKING:
    from app.config import Settings

SiteFactory = Callable[..., BooruSite]
# Each family's module and class, imported when a site of that family is first built: the command
# line downloading from one site loads one family, not four.
FAMILIES: dict[Family, str] = {
    "gelbooru": "app.sources.booru.gelbooru:GelbooruSite",
    "gelbooru_v02": "app.sources.booru.gelbooru_v02:GelbooruV02Site",
    "danbooru": "app.sources.booru.danbooru:DanbooruSite",
    "moebooru": "app.sources.booru.moebooru:MoebooruSite",
}


def family_class(family: Family) -> SiteFactory:
    module, name = FAMILIES[family].split(":")
    factory: SiteFactory = getattr(importlib.import_module(module), name)
    return factory


def unknown_site(name: str, names: Iterable[str] | None = None) -> NotFound:
    known = ", ".join(SITES if names is None else names)
    return NotFound(f"There is no booru site called '{name[:40]}' here; the sites are: {known}.")


def _setting(settings: Settings | None, site: str, key: str) -> Any:
    return getattr(settings, f"{site}_{key}", None) if settings is not None else None


def site_config(entry: SiteEntry, settings: Settings | None = None, **overrides: Any) -> SiteConfig:
    """The entry's defaults, then ``JMBOORU_<SITE>_*`` settings, then ``overrides`` (None values ignored)."""
    values: dict[str, Any] = {
        "url": entry.url, "api_key": "", "user_id": "", "login": "", "image_hosts": entry.image_hosts,
        "page_size": entry.page_size, "max_offset": entry.max_offset, "tag_limit": entry.tag_limit,
    }
    for key in ("url", "api_key", "user_id", "login", "image_hosts", "tag_limit"):
        value = _setting(settings, entry.site, key)
        if value is not None:
            values[key] = value
    http: dict[str, Any] = {
        "user_agent": settings.user_agent if settings else DEFAULT_USER_AGENT,
        "proxy": settings.proxy if settings else "",
        "rate": _setting(settings, entry.site, "api_rate") or entry.rate,
        "timeout": _setting(settings, entry.site, "timeout_seconds") or (settings.booru_timeout_seconds if settings else 30.0),
    }
    if settings is not None:
        http["max_wait"] = settings.upstream_max_retry_after_seconds
    for key, value in overrides.items():
        if value is None:
            continue
        if key in HttpOptions.__dataclass_fields__:
            http[key] = value
        elif key in values:
            values[key] = value
        else:
            raise TypeError(f"unknown site option {key!r}")
    values["image_hosts"] = tuple(values["image_hosts"])
    key, who = str(values["api_key"]).strip(), str(values["user_id"] or values["login"]).strip()
    info = SiteInfo(site=entry.site, name=entry.name, family=entry.family, url=str(values.pop("url")).rstrip("/"),
                    credentials=entry.credentials, credentials_set=bool(key or who), settings_prefix=f"JMBOORU_{entry.site.upper()}")
    return SiteConfig(info=info, http=HttpOptions(**http), tag_types=entry.tag_types, **values)


def build_site(site: str | SiteEntry, settings: Settings | None = None, *,
               transport: httpx.AsyncBaseTransport | None = None, **overrides: Any) -> BooruSite:
    entry = site if isinstance(site, SiteEntry) else SITES.get(site)
    if entry is None:
        raise unknown_site(str(site))
    return family_class(entry.family)(site_config(entry, settings, **overrides), transport=transport)


def build_sites(settings: Settings) -> dict[str, BooruSite]:
    """Every registered site, built once (the Engine does this at start-up)."""
    return {name: build_site(entry, settings) for name, entry in SITES.items()}

