"""Pasted links: which JM album or chapter, or which booru list, post or pool a URL points at.

The URL shapes are the real sites' (the ones gallery-dl's extractors recognise): a table of
patterns per booru family, and JM's ``/album/<id>`` and ``/photo/<id>`` on any domain (JM moves
domains often, so the domain is not checked; a configured booru host is tried first). Nothing is
fetched here: the caller looks the album or chapter up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from app.errors import Unprocessable
from app.sources.booru.base import Family

LinkKind = Literal["jm_album", "jm_chapter", "booru_posts", "booru_post", "booru_pool"]
ShapeKind = Literal["posts", "post", "pool"]
MAX_URL_LENGTH = 2000


@dataclass(frozen=True)
class Shape:
    """One URL shape of a booru family: the path (a regex, fully matched; group ``id`` holds the id
    when it is in the path), query values it must carry, and the query key holding the id otherwise."""

    kind: ShapeKind
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    id_key: str = ""

    def match(self, path: str, params: Mapping[str, str]) -> str | None:
        """The post or pool id (or "" for a post list) when the URL has this shape, else None."""
        found = re.fullmatch(self.path, path)
        if found is None or any(params.get(k, "").lower() != v for k, v in self.query.items()):
            return None
        if self.kind == "posts":
            return ""
        ident = found.groupdict().get("id") or params.get(self.id_key, "")
        return ident if ident.isdigit() and int(ident) > 0 else None


_GELBOORU_SHAPES = (
    Shape("posts", r"/index\.php", {"page": "post", "s": "list"}),
    Shape("post", r"/index\.php", {"page": "post", "s": "view"}, id_key="id"),
    Shape("pool", r"/index\.php", {"page": "pool", "s": "show"}, id_key="id"),
)
SHAPES: dict[Family, tuple[Shape, ...]] = {
    "gelbooru": _GELBOORU_SHAPES,
    "gelbooru_v02": _GELBOORU_SHAPES,
    "danbooru": (
        Shape("posts", r"/posts/?"),
        Shape("post", r"/posts/(?P<id>\d+)/?"),
        Shape("pool", r"/pools/(?P<id>\d+)(?:/.*)?"),
    ),
    "moebooru": (
        Shape("posts", r"/post/?"),
        Shape("post", r"/post/show/(?P<id>\d+)(?:/.*)?"),
        Shape("pool", r"/pool/show/(?P<id>\d+)(?:/.*)?"),
    ),
}
# JM's album pages (/album/<id>/<title slug>) and chapter pages (/photo/<id>, the reader).
_JM_ALBUM = re.compile(r"/album/(?P<id>\d{1,12})(?:/.*)?")
_JM_CHAPTER = re.compile(r"/photo/(?P<id>\d{1,12})(?:/.*)?")


@dataclass(frozen=True)
class SiteHosts:
    """Where a booru site's links may point: its public domain, and the host of its configured URL."""

    site: str
    name: str
    family: Family
    public_url: str
    configured_url: str

    def owns(self, host: str, port: int | None) -> bool:
        """``port`` with the scheme's default written out (see ``_port``)."""
        public = urlsplit(self.public_url)
        if _bare(host) == _bare(public.hostname or ""):
            return True
        configured = urlsplit(self.configured_url)
        return host == (configured.hostname or "") and port == _port(configured.port, configured.scheme)

    @property
    def domain(self) -> str:
        return _bare(urlsplit(self.public_url).hostname or self.public_url)


@dataclass(frozen=True)
class Link:
    """What a pasted URL points at. ``tags`` is the booru query to download (a post: ``id:<n>``)."""

    kind: LinkKind
    album_id: str = ""
    chapter_id: str = ""
    site: str = ""
    tags: str = ""
    post_id: str = ""
    pool_id: str = ""


def resolve_link(url: str, sites: Iterable[SiteHosts]) -> Link:
    """The album, chapter, booru list, post or pool ``url`` shows; 422 naming what is understood."""
    sites = list(sites)
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() for c in text):
        raise _cannot_use(sites, "it is not one link")
    if "://" not in text:
        text = "https://" + text  # pasted without the scheme, as browsers show links
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    try:
        port = _port(parts.port, parts.scheme)
    except ValueError:
        raise _cannot_use(sites, "its port is not a number") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise _cannot_use(sites, "it is not an http(s) link")
    path = parts.path or "/"
    params = {k.lower(): v[0].strip() for k, v in parse_qs(parts.query).items() if v}
    for site in sites:
        if site.owns(host, port):
            link = _booru_link(site, path, params)
            if link is not None:
                return link
    if found := _JM_ALBUM.fullmatch(path):
        return Link("jm_album", album_id=str(int(found["id"])))
    if found := _JM_CHAPTER.fullmatch(path):
        return Link("jm_chapter", chapter_id=str(int(found["id"])))
    known = [s for s in sites if s.owns(host, port)]
    if known:
        raise _cannot_use(sites, f"it is a {known[0].name} page but not a post list, a post or a pool")
    raise _cannot_use(sites, f"{host[:60]} is not JM or a configured booru site")


def _booru_link(site: SiteHosts, path: str, params: Mapping[str, str]) -> Link | None:
    for shape in SHAPES[site.family]:
        ident = shape.match(path, params)
        if ident is None:
            continue
        if shape.kind == "posts":
            tags = " ".join(params.get("tags", "").split())
            if not tags or tags.lower() == "all":
                raise Unprocessable(
                    f"This {site.name} link lists every post (it has no tags=): open a tag search on "
                    "the site and paste that link, or use the Booru tags box."
                )
            return Link("booru_posts", site=site.site, tags=tags)
        if shape.kind == "post":
            return Link("booru_post", site=site.site, post_id=ident, tags=f"id:{ident}")
        return Link("booru_pool", site=site.site, pool_id=ident)
    return None


def _cannot_use(sites: list[SiteHosts], why: str) -> Unprocessable:
    domains = ", ".join(s.domain for s in sites) or "none configured"
    return Unprocessable(
        f"jmbooru cannot use this link ({why}). It understands JM album and chapter links on any JM "
        "domain (…/album/<id>, …/photo/<id>) and, on the booru sites (" + domains + " or the host of "
        "their JMBOORU_<SITE>_URL), post lists with tags= (index.php?page=post&s=list&tags=, "
        "/posts?tags=, /post?tags=), single posts (index.php?page=post&s=view&id=, /posts/<id>, "
        "/post/show/<id>) and pools."
    )


def _bare(host: str) -> str:
    host = host.lower()
    return host[4:] if host.startswith("www.") else host


def _port(port: int | None, scheme: str) -> int | None:
    """A port, with the scheme's default written out, so that ``:443`` and no port compare equal."""
    if port is not None:
        return port
    return {"http": 80, "https": 443}.get(scheme.lower())
