"""Danbooru 2 (danbooru.donmai.us): ``posts.json`` with categories in each post.

Quirks: ``limit`` silently capped at 200; numbered pages stop at 1000 (410 beyond), so whole searches
page by id (``page=b<id>``); anonymous and basic accounts may search 2 plain tags (422 beyond), so
jmbooru sends the first two and applies the rest itself; restricted posts have no ``md5`` or
``file_url``; Cloudflare refuses HTTP-library User-Agents; credentials go as HTTP Basic.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import httpx

from app.errors import Unprocessable, UpstreamError
from app.logs import install_redaction
from app.sources.booru.base import CredentialsError, Post, PostPage, normalise_rating
from app.sources.booru.config import SiteConfig
from app.sources.booru.http import is_cloudflare
from app.sources.booru.pools import Pool, PoolPage, missing_reason, parse_pool, unknown_pool
from app.sources.booru.site import HttpSite
from app.sources.booru.values import as_bool, as_int, as_list, as_md5, as_str, split_tags

log = logging.getLogger("jmbooru.booru")

MAX_PAGE = 1000
COUNT_TTL = 300.0
# Metatags do not count towards the tag limit (danbooru's PostQueryBuilder, the common ones).
METATAGS = frozenset({
    "rating", "order", "id", "status", "score", "md5", "user", "fav", "ordfav", "pool", "ordpool", "source",
    "width", "height", "mpixels", "ratio", "filesize", "filetype", "date", "age", "limit", "parent", "child",
    "favcount", "tagcount", "gentags", "arttags", "chartags", "copytags", "metatags", "is", "has", "approver",
    "commenter", "noter", "upvote", "downvote", "flagger", "appealer", "search", "embedded", "duration", "random",
    "exif", "disapproved", "pixiv_id", "pixiv", "comment", "note", "commentary", "unaliased",
})
_CATEGORY_FIELDS = (
    ("tag_string_artist", "artist"), ("tag_string_copyright", "copyright"), ("tag_string_character", "character"),
    ("tag_string_general", "general"), ("tag_string_meta", "metadata"),
)


def is_metatag(term: str) -> bool:
    name = term.lstrip("-~")
    return ":" in name and name.split(":", 1)[0].lower() in METATAGS


@dataclass(frozen=True, slots=True)
class LocalTags:
    """The tags of a search that Danbooru was not sent, applied to each post here."""

    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.required or self.excluded or self.any_of)

    def matches(self, post: Post) -> bool:
        tags = {t.lower() for t in post.tags}

        def has(pattern: str) -> bool:
            return any(fnmatchcase(t, pattern) for t in tags) if "*" in pattern else pattern in tags

        return (all(has(t) for t in self.required) and not any(has(t) for t in self.excluded)
                and (not self.any_of or any(has(t) for t in self.any_of)))


def split_search(tags: str, limit: int) -> tuple[str, LocalTags]:
    """What to send (metatags and at most ``limit`` plain tags) and what to check here."""
    terms = tags.split()
    plain = [t for t in terms if not is_metatag(t)]
    if limit <= 0 or len(plain) <= limit:
        return " ".join(terms), LocalTags()
    # The most selective ones go to the site: plain positive tags without wildcards, in the given order.
    sent = [t for t in plain if not t.startswith(("-", "~")) and "*" not in t][:limit]
    sent += [t for t in plain if t not in sent and not t.startswith("~")][: limit - len(sent)]
    rest = [t.lower() for t in plain if t not in sent]
    local = LocalTags(
        required=tuple(t for t in rest if not t.startswith(("-", "~"))),
        excluded=tuple(t[1:] for t in rest if t.startswith("-")),
        any_of=tuple(t[1:] for t in rest if t.startswith("~")),
    )
    return " ".join([t for t in terms if is_metatag(t)] + sent), local


class DanbooruSite(HttpSite):
    page_limit = 200

    def __init__(self, config: SiteConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        login, api_key = config.login.strip(), config.api_key.strip()
        install_redaction([login, api_key])
        # Danbooru's staff ask tools to say who they run for.
        super().__init__(config, transport=transport, user_agent_note=f"user {login}" if login else "",
                         api_auth=httpx.BasicAuth(login, api_key) if login and api_key else None)
        self.login, self.api_key = login, api_key
        self.tag_limit = config.tag_limit
        self._counts: dict[str, tuple[float, int | None]] = {}

    def check_credentials(self) -> None:
        if bool(self.login) != bool(self.api_key):
            raise CredentialsError(
                f"{self.title} needs both a login and an API key, or neither: set {self.prefix}_LOGIN and "
                f"{self.prefix}_API_KEY (the key comes from your profile's API Keys page), or leave both empty."
            )

    def check_page(self, page: int, limit: int) -> None:
        if page > MAX_PAGE:
            raise Unprocessable(
                f"{self.title} serves numbered pages only up to {MAX_PAGE}; narrow the tags or add id:<N "
                "to continue below a post id."
            )

    # --- posts ---

    def parse_post(self, raw: Mapping[str, Any]) -> Post:
        url = functools.partial(self.url_field, raw)
        categories: dict[str, str] = {}
        for key, category in _CATEGORY_FIELDS:
            for tag in split_tags(raw.get(key), unescape=False):
                categories.setdefault(tag, category)
        return Post(
            id=as_int(raw.get("id")),
            md5=as_md5(raw.get("md5")),
            file_url=url("file_url"),
            preview_url=url("preview_file_url"),
            sample_url=url("large_file_url"),
            ext=as_str(raw.get("file_ext")).lower(),
            tags=split_tags(raw.get("tag_string"), unescape=False),
            categories=categories,
            rating=normalise_rating(as_str(raw.get("rating")), s_means="sensitive"),
            score=as_int(raw.get("score")),
            width=as_int(raw.get("image_width")),
            height=as_int(raw.get("image_height")),
            source=as_str(raw.get("source")),
            parent_id=as_int(raw.get("parent_id")),
            created_at=as_str(raw.get("created_at")),
            status="deleted" if as_bool(raw.get("is_deleted")) else ("banned" if as_bool(raw.get("is_banned")) else "active"),
            has_children=as_bool(raw.get("has_children")),
        )

    async def posts_json(self, tags: str, page: int | str, limit: int) -> tuple[list[Post], int]:
        """(posts, how many the site returned before any were dropped)."""
        data = await self.api("/posts.json", {"tags": tags, "limit": max(1, min(self.page_limit, limit)), "page": page})
        raws = [p for p in as_list(data) if isinstance(p, Mapping)] if not isinstance(data, dict) else []
        return [self.parse_post(p) for p in raws], len(raws)

    async def search_posts(self, tags: str, page: int = 1, limit: int = 40) -> PostPage:
        sent, local = split_search(tags, self.tag_limit)
        if local:
            posts, _ = await self.posts_json(sent, page, limit)
            return PostPage(count=None, posts=[p for p in posts if local.matches(p)], offset=(page - 1) * limit)
        cached = self._counts.get(sent)
        if cached is not None and time.monotonic() - cached[0] < COUNT_TTL:
            posts, _ = await self.posts_json(sent, page, limit)
            return PostPage(count=cached[1], posts=posts, offset=(page - 1) * limit)
        counting = asyncio.ensure_future(self.count(sent))
        try:
            posts, _ = await self.posts_json(sent, page, limit)
        except BaseException:
            counting.cancel()
            await asyncio.gather(counting, return_exceptions=True)
            raise
        return PostPage(count=await counting, posts=posts, offset=(page - 1) * limit)

    async def count(self, tags: str) -> int | None:
        """The site's total for ``tags``; None when it will not say (counts time out on huge tags).

        Kept a few minutes, so paging through a search asks for it once, not once a page.
        """
        try:
            data = await self.api("/counts/posts.json", {"tags": tags})
        except UpstreamError as exc:
            log.info("%s count unavailable: %s", self.title, exc.detail)
            return None
        counts = data.get("counts") if isinstance(data, dict) else None
        value = counts.get("posts") if isinstance(counts, dict) else None
        count = as_int(value) if isinstance(value, int | str) and as_str(value).strip().isdigit() else None
        if len(self._counts) > 1000:
            self._counts.clear()
        self._counts[tags] = (time.monotonic(), count)
        return count

    async def find_md5(self, md5: str) -> Post | None:
        posts, _ = await self.posts_json(f"md5:{md5}", 1, 1)
        return next((p for p in posts if p.md5 == md5 and p.file_url), None)

    async def iter_posts(self, tags: str, max_posts: int | None = None) -> AsyncGenerator[Post, None]:
        """Newest first by id pages (``b<id>``), which have no depth limit; ``order:`` searches go by
        numbered pages, which stop at page 1000. ``max_posts`` bounds the posts looked at, including
        those the tags applied here drop, so a rare third tag cannot page through the whole site."""
        sent, local = split_search(tags, self.tag_limit)
        by_number = any(t.lower().startswith("order:") and t.lower() not in ("order:id_desc", "order:id")
                        for t in sent.split())
        limit = max(1, min(self.page_limit, self.config.page_size))
        page: int | str = 1
        looked = 0  # every post counts towards max_posts, also those the local tags drop
        while True:
            posts, returned = await self.posts_json(sent, page, limit)
            for post in posts:
                looked += 1
                if local.matches(post):
                    yield post
                if max_posts is not None and looked >= max_posts:
                    return
            ids = [p.id for p in posts if p.id]
            if returned < limit or not ids:
                return
            if by_number:
                if not isinstance(page, int) or page >= MAX_PAGE:
                    return
                page += 1
            else:
                page = f"b{min(ids)}"

    # --- tags ---

    async def tag_categories(self, names: Iterable[str]) -> dict[str, str]:
        """Posts carry their categories; this asks ``tags.json`` for the others (cached)."""
        wanted = list(names)
        missing = self.unknown(wanted)
        for start in range(0, len(missing), 100):
            batch = missing[start : start + 100]
            found: dict[str, str | None] = dict.fromkeys(batch)
            data = await self.api("/tags.json", {"search[name_comma]": ",".join(batch), "limit": len(batch)})
            for raw in as_list(data):
                if isinstance(raw, Mapping) and as_str(raw.get("name")):
                    found[as_str(raw.get("name"))] = self.config.tag_types.get(as_int(raw.get("category")), "general")
            self.remember(found)
        return self.known_categories(wanted)

    # --- pools ---

    async def pool(self, pool_id: int) -> Pool:
        response = await self.http.get(f"/pools/{pool_id}.json", {})
        if response.status_code == 404:
            raise unknown_pool(self.title, pool_id)
        if response.status_code != 200:
            raise self.http.status_error(response)
        data = self.http.json(response, empty={})
        if not isinstance(data, Mapping) or as_int(data.get("id")) != pool_id:
            raise unknown_pool(self.title, pool_id)
        return parse_pool(data, f"{self.root}/pools/{pool_id}")

    async def pool_pages(self, pool: Pool) -> list[PoolPage]:
        """``ordpool:`` gives the posts in pool order (gallery-dl reads them so); a banned post comes
        back without its file, an expunged one not at all."""
        found: dict[int, Post] = {}
        page = 1
        while len(found) < len(pool.post_ids) and page <= MAX_PAGE:
            posts, returned = await self.posts_json(f"ordpool:{pool.id}", page, self.page_limit)
            for post in posts:
                found.setdefault(post.id, post)
            if returned < self.page_limit:
                break
            page += 1
        return [PoolPage(i, found.get(i), missing_reason(found.get(i))) for i in pool.post_ids]

    async def search_pools(self, query: str, page: int = 1) -> list[Pool]:
        words = "*".join(query.split())
        data = await self.api("/pools.json", {"search[name_matches]": f"*{words}*", "page": page, "limit": 20})
        return [parse_pool(raw, f"{self.root}/pools/{as_int(raw.get('id'))}")
                for raw in as_list(data) if isinstance(raw, Mapping)]

    # --- the API ---

    async def api(self, path: str, params: dict[str, Any]) -> Any:
        self.check_credentials()
        response = await self.http.get(path, params)
        status = response.status_code
        if status == 200:
            data = self.http.json(response, empty=[])
            if isinstance(data, dict) and data.get("success") is False:
                raise UpstreamError(f"{self.title} refused the search; try other tags.")
            return data
        message = _message(response)
        if status == 401 or (status == 403 and not is_cloudflare(response) and self.login):
            raise CredentialsError(
                f"{self.title} refused the login and API key (HTTP {status}): check {self.prefix}_LOGIN (your user "
                f"name) and {self.prefix}_API_KEY (from your profile's API Keys page), or leave both empty."
            )
        if status == 403 and is_cloudflare(response):
            raise UpstreamError(
                f"{self.title}'s Cloudflare protection refused the request (HTTP 403). It refuses the default "
                "User-Agents of HTTP libraries: check JMBOORU_USER_AGENT, or try again later or from another network."
            )
        if status == 422 and "tags" in message.lower():
            raise UpstreamError(
                f"{self.title} refused to search that many tags at once for this account; lower "
                f"{self.prefix}_TAG_LIMIT (2 for anonymous and basic accounts, 6 for Gold)."
            )
        if status == 410:
            raise Unprocessable(f"{self.title} serves numbered pages only up to {MAX_PAGE}; narrow the tags.")
        raise self.http.status_error(response)


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except (ValueError, RecursionError):
        return ""
    return as_str(data.get("message")) if isinstance(data, dict) else ""

