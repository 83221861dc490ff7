"""Gelbooru (gelbooru.com): the ``dapi`` API with a JSON envelope, credentials required.

Quirks: ``pid`` is 0-based and stops at an offset of about 20,000 (deeper pages go by ``id:<N``);
no ``post`` key when nothing matches; a single object where a list was expected; tags HTML-escaped;
daily-limit refusals as XML even with ``json=1``; 401 without ``api_key`` and the numeric ``user_id``.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

import httpx

from app.errors import AppError, Unprocessable, UpstreamError
from app.logs import install_redaction, redact
from app.sources.booru.base import CredentialsError, Post, PostPage, normalise_rating
from app.sources.booru.config import SiteConfig
from app.sources.booru.http import is_cloudflare
from app.sources.booru.site import HttpSite
from app.sources.booru.values import as_bool, as_int, as_list, as_md5, as_str, split_tags

log = logging.getLogger("jmbooru.booru")

TAG_BATCH = 100
_XML_REFUSAL = re.compile(r"<response\b[^>]*success\s*=\s*[\"']false[\"']", re.I)
_XML_REASON = re.compile(r"reason\s*=\s*[\"']([^\"']*)[\"']", re.I)


def credentials_hint(prefix: str) -> str:
    return (f"set {prefix}_API_KEY and {prefix}_USER_ID; both are shown on the account options page "
            "(API Access Credentials)")


def parse_credentials(api_key: str | None, user_id: str | int | None, prefix: str = "JMBOORU_GELBOORU") -> tuple[str, str]:
    """Clean up what users paste: the whole ``&api_key=...&user_id=...`` string is accepted.

    Raises ``Unprocessable`` for a user id that is not a number (usually the user name).
    """
    key, uid = as_str(api_key).strip(), as_str(user_id).strip()
    pasted: dict[str, str] = {}
    for value in (key, uid):
        if "api_key=" in value or "user_id=" in value:
            query = value.split("?", 1)[1] if "?" in value else value
            for name, values in parse_qs(query.lstrip("&"), keep_blank_values=True).items():
                if name in ("api_key", "user_id") and values:
                    pasted[name] = values[-1].strip()
    if pasted:
        if "api_key=" in uid or "user_id=" in uid or not uid:
            uid = pasted.get("user_id", "" if "user_id=" in uid else uid)
        elif pasted.get("user_id") and pasted["user_id"] != uid:
            raise Unprocessable(
                "The pasted credentials name a different user id than the one given separately; "
                f"give the user id once ({prefix}_USER_ID)."
            )
        key = pasted.get("api_key", "") if ("api_key=" in key or "user_id=" in key or not key) else key
    if key and not re.fullmatch(r"[A-Za-z0-9_\-]+", key):
        raise Unprocessable(
            "The API key should be letters and digits only; copy just the api_key value "
            f"(or the whole '&api_key=...&user_id=...' line) into {prefix}_API_KEY."
        )
    if uid and not uid.isdigit():
        raise Unprocessable(
            "The site needs the numeric user id, not the user name: copy the number after 'user_id=' "
            f"from your account options page into {prefix}_USER_ID, and the api_key value into {prefix}_API_KEY."
        )
    return key, uid


class GelbooruSite(HttpSite):
    """Gelbooru's ``dapi``; Gelbooru 0.2 sites subclass it (see gelbooru_v02.py)."""

    page_limit = 100

    def __init__(self, config: SiteConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(config, transport=transport)
        self.max_offset = config.max_offset
        self.credentials_required = config.info.credentials == "required"
        self.credentials_error: AppError | None = None
        self.api_key, self.user_id = "", ""
        try:
            self.api_key, self.user_id = parse_credentials(config.api_key, config.user_id, self.prefix)
        except AppError as exc:
            # Reported on first use (so a bad setting never stops the server) as a 502: to an API
            # client it is the server's configuration that is wrong, not its request.
            self.credentials_error = CredentialsError(exc.detail)
        install_redaction([self.api_key])  # it travels in every API URL, which httpx logs

    def check_credentials(self) -> None:
        if self.credentials_error is not None:
            raise self.credentials_error
        if self.credentials_required and (not self.api_key or not self.user_id):
            raise CredentialsError(f"{self.title} needs an API key and a numeric user id: {credentials_hint(self.prefix)}.")

    def check_page(self, page: int, limit: int) -> None:
        if self.max_offset is not None and (page - 1) * limit >= self.max_offset:
            raise Unprocessable(
                f"{self.title} only pages through the first {self.max_offset:,} results; narrow the tags "
                "or add id:<N to continue below a post id."
            )

    # --- posts ---

    def parse_post(self, raw: Mapping[str, Any]) -> Post:
        url = functools.partial(self.url_field, raw)
        return Post(
            id=as_int(raw.get("id")),
            md5=as_md5(raw.get("md5")),
            file_url=url("file_url"),
            preview_url=url("preview_url"),
            sample_url=url("sample_url"),
            image=as_str(raw.get("image")),
            directory=as_str(raw.get("directory")),
            tags=split_tags(raw.get("tags")),
            rating=normalise_rating(as_str(raw.get("rating")), s_means="sensitive"),
            score=as_int(raw.get("score")),
            width=as_int(raw.get("width")),
            height=as_int(raw.get("height")),
            source=html.unescape(as_str(raw.get("source"))),
            parent_id=as_int(raw.get("parent_id")),
            created_at=as_str(raw.get("created_at")),
            status=as_str(raw.get("status")),
            has_notes=as_bool(raw.get("has_notes")),
            has_comments=as_bool(raw.get("has_comments")),
            has_children=as_bool(raw.get("has_children")),
        )

    def parse_page(self, data: Any) -> PostPage:
        attrs = data.get("@attributes", {}) if isinstance(data, dict) else {}
        attrs = attrs if isinstance(attrs, Mapping) else {}
        raw_posts = data.get("post") if isinstance(data, dict) else data
        posts = [self.parse_post(p) for p in as_list(raw_posts) if isinstance(p, Mapping)]
        return PostPage(count=as_int(attrs.get("count"), len(posts)), posts=posts, offset=as_int(attrs.get("offset")))

    async def search_page(self, tags: str, pid: int | None, limit: int) -> PostPage:
        """One ``dapi`` page; ``pid`` is 0-based, None omits it (for ``id:<N`` pages)."""
        params: dict[str, Any] = {"s": "post", "q": "index", "tags": " ".join(tags.split()),
                                  "limit": max(1, min(self.page_limit, int(limit)))}
        if pid is not None:
            params["pid"] = max(0, int(pid))
        return self.parse_page(await self.api(params))

    async def search_posts(self, tags: str, page: int = 1, limit: int = 40) -> PostPage:
        return await self.search_page(tags, page - 1, limit)

    async def find_md5(self, md5: str) -> Post | None:
        page = await self.search_page(f"md5:{md5}", None, 1)
        return next((p for p in page.posts if p.md5 == md5 and p.file_url), None)

    async def iter_posts(self, tags: str, max_posts: int | None = None) -> AsyncGenerator[Post, None]:
        """Every post for ``tags`` (newest first), past the depth limit by paging on ``id:<N``."""
        limit = max(1, min(self.page_limit, self.config.page_size))
        seen: set[int] = set()
        pid, last_id, yielded = 0, 0, 0
        count: int | None = -1
        by_id = False
        while max_posts is None or yielded < max_posts:
            if not by_id and last_id and self.max_offset is not None and (pid + 1) * limit > self.max_offset:
                by_id = True
            if by_id:
                page = await self.search_page(f"{tags} id:<{last_id}", None, limit)
            else:
                page = await self.search_page(tags, pid, limit)
            if count == -1:
                count = page.count
            fresh = [p for p in page.posts if not p.id or p.id not in seen]
            for post in fresh:
                if post.id:
                    seen.add(post.id)
                    last_id = post.id if not last_id else min(last_id, post.id)
                yield post
                yielded += 1
                if max_posts is not None and yielded >= max_posts:
                    return
            if fresh and len(page.posts) >= limit:
                pid += 0 if by_id else 1
                continue
            # A short or empty page before the end is the depth limit: continue by id. Without a count
            # (Gelbooru 0.2) an empty page after full ones may be it too; one id:< page tells.
            if not by_id and last_id and (count is None and not page.posts or count is not None and len(seen) < count):
                by_id = True
                continue
            return

    # --- tags ---

    async def tag_categories(self, names: Iterable[str]) -> dict[str, str]:
        wanted = list(names)
        missing = self.unknown(wanted)
        for start in range(0, len(missing), TAG_BATCH):
            batch = missing[start : start + TAG_BATCH]
            found: dict[str, str | None] = dict.fromkeys(batch)  # unknown to the site: don't ask again
            for name, type_id in await self.tag_types(batch):
                found[name] = self.config.tag_types.get(type_id, "general")
            self.remember(found)
        return self.known_categories(wanted)

    async def tag_types(self, names: list[str]) -> list[tuple[str, int]]:
        data = await self.api({"s": "tag", "q": "index", "names": " ".join(names)})
        raw_tags = data.get("tag") if isinstance(data, dict) else data
        return [(html.unescape(as_str(raw.get("name"))), as_int(raw.get("type"), 0))
                for raw in as_list(raw_tags) if isinstance(raw, Mapping) and as_str(raw.get("name"))]

    # --- the API ---

    def query(self, params: dict[str, Any]) -> dict[str, Any]:
        query = {"page": "dapi", **params, "json": 1}
        if self.api_key and self.user_id:
            query.update(api_key=self.api_key, user_id=self.user_id)
        return query

    async def api(self, params: dict[str, Any]) -> Any:
        self.check_credentials()
        response = await self.http.get("/index.php", self.query(params))
        self.refuse_errors(response)
        return self.http.json(response, empty={})

    def refuse_errors(self, response: httpx.Response) -> None:
        status, head = response.status_code, response.text[:2000]
        if _XML_REFUSAL.search(head):
            reason = _XML_REASON.search(head)
            log.warning("%s refused status=%d reason=%r url=%s", self.title, status, reason and reason.group(1),
                        redact(str(response.request.url)))
            raise UpstreamError(
                f"{self.title} refused the request (daily API limit or credentials?); try again later or check "
                f"{self.prefix}_API_KEY and {self.prefix}_USER_ID."
            )
        if status in (401, 403) and not is_cloudflare(response):
            log.warning("%s status=%d url=%s", self.title, status, redact(str(response.request.url)))
            raise CredentialsError(f"{self.title} refused the credentials (HTTP {status}): {credentials_hint(self.prefix)}.")
        if status != 200:
            raise self.http.status_error(response)
