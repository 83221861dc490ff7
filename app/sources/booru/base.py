"""The seam every booru site sits behind: the shared ``Post`` and the ``BooruSite`` Protocol.

Each family (Gelbooru, Gelbooru 0.2, Danbooru 2, Moebooru) pages, counts, names files and refuses
clients differently; a site object hides that, so the dataset pipeline, the job runner, the API and
the CLI work with any of them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from app.errors import UpstreamError

if TYPE_CHECKING:
    from app.blocking import BlockingPool

Family = Literal["gelbooru", "gelbooru_v02", "danbooru", "moebooru"]
CredentialsKind = Literal["required", "optional", "none"]
FAMILY_NAMES: dict[str, str] = {
    "gelbooru": "Gelbooru", "gelbooru_v02": "Gelbooru 0.2", "danbooru": "Danbooru 2", "moebooru": "Moebooru",
}

# Every family's rating letters and words, to the four the API speaks.
_RATINGS = {
    "g": "general", "general": "general", "safe": "general",
    "s": "sensitive", "sensitive": "sensitive",
    "q": "questionable", "questionable": "questionable", "questionable_plus": "questionable",
    "e": "explicit", "explicit": "explicit",
}


def normalise_rating(value: str, *, s_means: str = "sensitive") -> str:
    """``general``, ``sensitive``, ``questionable``, ``explicit``, or ``""`` when unknown.

    Moebooru's ``s`` is "safe" (general); Danbooru's is "sensitive": the family says which.
    """
    key = value.strip().lower()
    if key == "s":
        return s_means
    return _RATINGS.get(key, "")


@dataclass(slots=True)
class Post:
    """One post, the same on every site. Fields the site did not send keep their defaults."""

    id: int = 0
    md5: str = ""
    file_url: str = ""
    preview_url: str = ""
    sample_url: str = ""
    ext: str = ""  # from the site's own field where it has one (Danbooru, Moebooru)
    image: str = ""
    directory: str = ""
    tags: list[str] = field(default_factory=list)
    # Category per tag when the post itself says (Danbooru); empty: ask the site's tag API.
    categories: dict[str, str] = field(default_factory=dict)
    rating: str = ""
    score: int = 0
    width: int = 0
    height: int = 0
    source: str = ""
    parent_id: int = 0
    created_at: str = ""
    status: str = ""
    has_notes: bool = False
    has_comments: bool = False
    has_children: bool = False


@dataclass(slots=True)
class PostPage:
    count: int | None  # None: the site cannot count (Moebooru, Gelbooru 0.2 JSON)
    posts: list[Post]
    offset: int = 0


@dataclass(slots=True, frozen=True)
class ImageDownload:
    md5: str
    size: int


@dataclass(slots=True, frozen=True)
class SiteInfo:
    """What ``GET /v1/booru/sites`` says about a site."""

    site: str  # the name in URLs: gelbooru, danbooru, ...
    name: str  # for people: "Gelbooru", "Danbooru"
    family: Family
    url: str
    credentials: CredentialsKind
    credentials_set: bool  # some credentials are given (they may still be refused)
    settings_prefix: str  # JMBOORU_GELBOORU, for sentences naming the settings


class CredentialsError(UpstreamError):
    """Credentials are missing, malformed or refused: a 502, since it is the server's settings that are wrong."""


class ForeignImageHost(UpstreamError):
    """A post's image (or a redirect) points outside the site's origin and configured image hosts."""


class BooruSite(Protocol):
    """One booru site, built once from the settings and shared by every request and job."""

    info: SiteInfo
    page_limit: int  # the most posts one search page may hold

    def check_credentials(self) -> None:
        """Raise ``CredentialsError`` now when required credentials are missing or malformed."""
        ...

    def check_page(self, page: int, limit: int) -> None:
        """Raise ``Unprocessable`` with advice when ``page`` is deeper than the site serves numbered pages."""
        ...

    async def search_posts(self, tags: str, page: int = 1, limit: int = 40) -> PostPage:
        """One page of posts, newest first; ``page`` is 1-based on every site."""
        ...

    def iter_posts(self, tags: str, max_posts: int | None = None) -> AsyncGenerator[Post, None]:
        """Every post for ``tags``, newest first, past the site's depth limit; at most ``max_posts`` looked at."""
        ...

    async def find_md5(self, md5: str) -> Post | None:
        """The post whose file has this md5, if the site still has one."""
        ...

    async def tag_categories(self, names: Iterable[str]) -> dict[str, str]:
        """Category (general, artist, copyright, character, metadata, deprecated) per known tag."""
        ...

    def image_allowed(self, url: str) -> bool:
        """Whether ``url`` may be fetched at all (the site's origin or its configured image hosts)."""
        ...

    async def download_image(self, url: str, dest: Path, files: BlockingPool) -> ImageDownload:
        """Stream an image into ``dest`` while hashing it, writing in ``files`` (``ImagePools.files``).
        The caller owns ``dest`` and removes it on failure."""
        ...

    async def aclose(self) -> None: ...
