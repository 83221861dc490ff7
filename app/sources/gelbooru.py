"""Async client for the Gelbooru ``dapi`` API and its image hosts.

Everything Gelbooru sends is treated as untrusted: every post field may be missing or have the wrong
type, tags arrive HTML-escaped, and errors come as 401s, XML bodies or Cloudflare pages. Failures are
raised as ``AppError`` subclasses with a sentence a user can act on; upstream text is only logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import random
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from app.blocking import BlockingPool
from app.errors import AppError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.sources.gelbooru_models import (  # noqa: F401 - re-exported: the client's public names
    CREDENTIALS_HINT,
    GelbooruCredentialsError,
    ImageDownload,
    Post,
    PostPage,
    as_int,
    as_list,
    as_str,
    parse_credentials,
    split_tags,
)

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger("jmbooru.gelbooru")

USER_AGENT = "jmbooru/0.1 (dataset downloader; +https://github.com/)"
MAX_LIMIT = 100
DEPTH_LIMIT = 20_000
TAG_BATCH = 100
CATEGORY_NAMES: dict[int, str] = {
    0: "general", 1: "artist", 3: "copyright", 4: "character", 5: "metadata", 6: "deprecated",
}
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_XML_REFUSAL = re.compile(r"<response\b[^>]*success\s*=\s*[\"']false[\"']", re.I)
_XML_REASON = re.compile(r"reason\s*=\s*[\"']([^\"']*)[\"']", re.I)
_T = TypeVar("_T")


# --- plumbing -----------------------------------------------------------------------------------

# File writes and hashing get a small pool of their own, so the event loop never blocks on disk.
FILE_POOL = BlockingPool(4, "gelbooru-files")


class RateLimiter:
    """Spaces calls at least ``1/rate`` seconds apart (a token bucket with a burst of one)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def pause(self, seconds: float) -> None:
        """Push every later call back (used when the site says Retry-After)."""
        self._next = max(self._next, time.monotonic() + seconds)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _safe_url(url: httpx.URL) -> str:
    """The URL for logs, without the API key."""
    return str(url.copy_remove_param("api_key"))


class _HashingWriter:
    """Buffers a download and writes and hashes it 1 MiB at a time in the file executor.

    A flush of at most ``INLINE_MAX`` bytes (the whole of a typical small image) is done on the loop:
    a page-cache write that size takes well under a millisecond, less than the hop to a thread.
    """

    FLUSH = 1 << 20
    INLINE_MAX = 256 << 10

    def __init__(self, path: Path) -> None:
        self.path = path
        self.md5 = hashlib.md5()
        self.size = 0
        self._file: IO[bytes] | None = None
        self._buf: list[bytes] = []
        self._buffered = 0

    async def write(self, chunk: bytes) -> None:
        self._buf.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= self.FLUSH:
            await self._flush(final=False)

    async def close(self) -> None:
        await self._flush(final=True)

    async def _flush(self, final: bool) -> None:
        data = b"".join(self._buf)
        self._buf, self._buffered = [], 0
        if len(data) <= self.INLINE_MAX:
            self._flush_sync(data, final)
        else:
            await FILE_POOL.run_to_end(self._flush_sync, data, final)

    def _flush_sync(self, data: bytes, final: bool) -> None:
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in final/abort
        self.md5.update(data)
        self._file.write(data)
        self.size += len(data)
        if final:
            self._file.close()

    def abort(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()


# --- the client ---------------------------------------------------------------------------------


class GelbooruClient:
    """One per site and process; safe to share between concurrent tasks."""

    def __init__(
        self,
        base_url: str = "https://gelbooru.com",
        api_key: str | None = "",
        user_id: str | int | None = "",
        *,
        rate: float = 2.0,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        max_wait: float = 60.0,
        depth_limit: int = DEPTH_LIMIT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_url = f"{self.base_url}/index.php"
        self.referer = f"{self.base_url}/"
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.max_wait = max_wait
        self.depth_limit = depth_limit
        self.credentials_error: AppError | None = None
        self.api_key, self.user_id = "", ""
        try:
            self.api_key, self.user_id = parse_credentials(api_key, user_id)
        except AppError as exc:
            # Reported on first use (so a bad setting never stops the server) as a 502: to an API
            # client it is the server's configuration that is wrong, not its request.
            self.credentials_error = GelbooruCredentialsError(exc.detail)
        self._limiter = RateLimiter(rate)
        self._categories: dict[str, str | None] = {}
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> GelbooruClient:
        kwargs: dict[str, Any] = {
            "base_url": settings.gelbooru_url,
            "api_key": settings.gelbooru_api_key,
            "user_id": settings.gelbooru_user_id,
            "rate": settings.gelbooru_api_rate,
            "timeout": settings.gelbooru_timeout_seconds,
        }
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)

    async def __aenter__(self) -> GelbooruClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def check_credentials(self) -> None:
        """Raise the sentence a user needs when the credentials are missing or malformed."""
        if self.credentials_error is not None:
            raise self.credentials_error
        if not self.api_key or not self.user_id:
            raise GelbooruCredentialsError(f"Gelbooru needs an API key and a numeric user id: {CREDENTIALS_HINT}.")

    # --- API calls ---

    async def search_posts(self, tags: str, page: int | None = 0, limit: int = MAX_LIMIT) -> PostPage:
        """One page of posts, newest first. ``page`` is Gelbooru's 0-based ``pid``; None omits it."""
        limit = max(1, min(MAX_LIMIT, int(limit)))
        params: dict[str, Any] = {"s": "post", "q": "index", "tags": " ".join(tags.split()), "limit": limit}
        if page is not None:
            params["pid"] = max(0, int(page))
        data = await self._api(params)
        attrs = data.get("@attributes", {}) if isinstance(data, dict) else {}
        raw_posts = data.get("post") if isinstance(data, dict) else data
        posts = [Post.from_api(p, self.base_url) for p in as_list(raw_posts) if isinstance(p, Mapping)]
        count = as_int(attrs.get("count") if isinstance(attrs, Mapping) else None, len(posts))
        offset = as_int(attrs.get("offset") if isinstance(attrs, Mapping) else None)
        return PostPage(count=count, posts=posts, offset=offset)

    async def iter_posts(self, tags: str, max_posts: int | None = None, *, page_size: int = MAX_LIMIT) -> AsyncGenerator[Post, None]:
        """Every post for ``tags`` (newest first), past the ~20,000 offset limit by paging on ``id:<N``."""
        limit = max(1, min(MAX_LIMIT, page_size))
        seen: set[int] = set()
        pid, last_id, count, yielded = 0, 0, -1, 0
        by_id = False
        while max_posts is None or yielded < max_posts:
            if not by_id and last_id and (pid + 1) * limit > self.depth_limit:
                by_id = True
            if by_id:
                page = await self.search_posts(f"{tags} id:<{last_id}", page=None, limit=limit)
            else:
                page = await self.search_posts(tags, page=pid, limit=limit)
            if count < 0:
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
            # A short or empty page before ``count`` is reached is the depth limit: continue by id.
            if not by_id and last_id and len(seen) < count:
                by_id = True
                continue
            return

    async def tag_categories(self, names: Iterable[str]) -> dict[str, str]:
        """Category name (general, artist, copyright, character, metadata, deprecated) per known tag."""
        wanted = list(dict.fromkeys(n for n in names if n))
        missing = [n for n in wanted if n not in self._categories]
        for start in range(0, len(missing), TAG_BATCH):
            batch = missing[start : start + TAG_BATCH]
            data = await self._api({"s": "tag", "q": "index", "names": " ".join(batch)})
            raw_tags = data.get("tag") if isinstance(data, dict) else data
            if len(self._categories) > 200_000:
                self._categories.clear()
            for raw in as_list(raw_tags):
                if isinstance(raw, Mapping) and raw.get("name") is not None:
                    name = html.unescape(as_str(raw.get("name")))
                    self._categories[name] = CATEGORY_NAMES.get(as_int(raw.get("type"), 0), "general")
            for name in batch:
                self._categories.setdefault(name, None)  # unknown to the site: don't ask again
        return {n: c for n in wanted if (c := self._categories.get(n)) is not None}

    async def _api(self, params: dict[str, Any]) -> Any:
        self.check_credentials()
        query = {"page": "dapi", **params, "json": 1, "api_key": self.api_key, "user_id": self.user_id}
        response = await self._send(lambda: self._http.get(self.api_url, params=query), limited=True)
        return self._decode(response)

    async def _send(self, request: Callable[[], Any], *, limited: bool) -> httpx.Response:
        """Send with retries: 429/5xx (honouring Retry-After) and network errors, bounded attempts."""
        for attempt in range(self.max_attempts):
            last = attempt == self.max_attempts - 1
            if limited:
                await self._limiter.acquire()
            try:
                response: httpx.Response = await request()
            except httpx.TimeoutException as exc:
                log.warning("gelbooru timeout attempt=%d error=%r", attempt + 1, exc)
                if last:
                    raise UpstreamTimeout("Gelbooru did not answer in time; try again later or raise --timeout.") from exc
            except httpx.TransportError as exc:
                log.warning("gelbooru network error attempt=%d error=%r", attempt + 1, exc)
                if last:
                    raise UpstreamUnavailable(
                        "Gelbooru cannot be reached right now; check the network and JMBOORU_GELBOORU_URL (or --url)."
                    ) from exc
            except httpx.HTTPError as exc:  # undecodable body, redirect loop: retrying will not help
                log.warning("gelbooru broken answer error=%r", exc)
                raise UpstreamError("Gelbooru sent an answer that could not be read; try again later.") from exc
            else:
                if response.status_code not in _RETRY_STATUSES or last:
                    return response
                wait = _retry_after(response)
                log.warning(
                    "gelbooru status=%d attempt=%d retry_after=%s url=%s",
                    response.status_code, attempt + 1, wait, _safe_url(response.request.url),
                )
                if wait is not None:
                    wait = min(wait, self.max_wait)
                    if limited:
                        self._limiter.pause(wait)
                    await asyncio.sleep(wait)
                    continue
            await asyncio.sleep(min(self.backoff_base * 2**attempt, self.max_wait) * (1 + random.random() / 4))
        raise AssertionError("unreachable")

    def _decode(self, response: httpx.Response) -> Any:
        status, text = response.status_code, response.text
        where = _safe_url(response.request.url)
        if _XML_REFUSAL.search(text[:2000]):
            reason = _XML_REASON.search(text[:2000])
            log.warning("gelbooru refused status=%d reason=%r url=%s", status, reason and reason.group(1), where)
            raise UpstreamError(
                "Gelbooru refused the request (daily API limit or credentials?); try again later or check "
                "JMBOORU_GELBOORU_API_KEY and JMBOORU_GELBOORU_USER_ID."
            )
        if status != 200:
            log.warning("gelbooru status=%d url=%s body=%r", status, where, text[:300])
        lowered = text[:5000].lower()
        if status == 403 and ("cloudflare" in lowered or "cf-ray" in lowered or "just a moment" in lowered):
            raise UpstreamError(
                "Gelbooru's Cloudflare protection blocked the request (HTTP 403), which often happens from "
                "cloud or VPN addresses; try again later or from another network."
            )
        if status in (401, 403):
            raise GelbooruCredentialsError(f"Gelbooru refused the credentials (HTTP {status}): {CREDENTIALS_HINT}.")
        if status == 429:
            raise UpstreamUnavailable(
                "Gelbooru keeps rate-limiting us; wait a minute and try again, or lower JMBOORU_GELBOORU_API_RATE."
            )
        if status == 404:
            raise UpstreamError("The Gelbooru API was not found at the configured address; check JMBOORU_GELBOORU_URL (or --url).")
        if status == 503:
            raise UpstreamUnavailable("Gelbooru is unavailable right now (HTTP 503); try again later.")
        if status >= 500:
            raise UpstreamError(f"Gelbooru kept failing (HTTP {status}); try again later.")
        if status != 200:
            raise UpstreamError(f"Gelbooru rejected the request (HTTP {status}).")
        if not text.strip():
            return {}
        try:
            return response.json()
        except ValueError as exc:
            log.warning("gelbooru non-json body url=%s body=%r", where, text[:300])
            raise UpstreamError(
                "Gelbooru answered with a web page instead of API data (Cloudflare or maintenance?); try again later."
            ) from exc

    # --- images (not rate-limited: the caller bounds them with its workers) ---

    def _image_url(self, url: str) -> str:
        absolute = urljoin(self.referer, url.strip())
        try:
            valid = urlsplit(absolute).scheme in ("http", "https") and bool(httpx.URL(absolute).host)
        except (ValueError, httpx.InvalidURL):
            valid = False
        if not valid:
            log.warning("gelbooru unusable image url=%r", url[:300])
            raise UpstreamError("Gelbooru gave an image address that cannot be used; the post was skipped.")
        return absolute

    def _image_error(self, response: httpx.Response) -> AppError:
        log.warning("gelbooru image status=%d url=%s", response.status_code, response.request.url)
        if response.status_code in (403, 401):
            return UpstreamError("The Gelbooru image host refused the download (HTTP 403); try again later or from another network.")
        if response.status_code == 404:
            return UpstreamError("The image is no longer on Gelbooru (HTTP 404).")
        return UpstreamError(f"The Gelbooru image host failed (HTTP {response.status_code}); try again later.")

    async def fetch_image(self, url: str) -> bytes:
        """The whole image in memory (for previews and small files)."""
        target = self._image_url(url)
        response = await self._send(lambda: self._http.get(target, headers={"Referer": self.referer}), limited=False)
        if response.status_code != 200:
            raise self._image_error(response)
        return response.content

    async def download_image(self, url: str, dest: Path) -> ImageDownload:
        """Stream an image into ``dest`` while hashing it; a failed transfer is retried from scratch.

        The caller owns ``dest`` (a temporary name) and removes it on failure.
        """
        target = self._image_url(url)
        for attempt in range(self.max_attempts):
            last = attempt == self.max_attempts - 1
            writer = _HashingWriter(dest)
            try:
                async with self._http.stream("GET", target, headers={"Referer": self.referer}) as response:
                    if response.status_code == 200:
                        async for chunk in response.aiter_bytes():
                            await writer.write(chunk)
                        await writer.close()
                        return ImageDownload(md5=writer.md5.hexdigest(), size=writer.size)
                    if response.status_code not in _RETRY_STATUSES or last:
                        raise self._image_error(response)
                    wait = _retry_after(response)
            except httpx.TimeoutException as exc:
                log.warning("gelbooru image timeout attempt=%d url=%s", attempt + 1, target)
                if last:
                    raise UpstreamTimeout("The Gelbooru image host did not answer in time; try again later.") from exc
                wait = None
            except httpx.TransportError as exc:
                log.warning("gelbooru image network error attempt=%d url=%s error=%r", attempt + 1, target, exc)
                if last:
                    raise UpstreamUnavailable("The Gelbooru image host cannot be reached right now; try again later.") from exc
                wait = None
            except httpx.HTTPError as exc:
                log.warning("gelbooru image broken answer url=%s error=%r", target, exc)
                raise UpstreamError("The Gelbooru image host sent an answer that could not be read.") from exc
            finally:
                writer.abort()
            delay = min(wait, self.max_wait) if wait is not None else self.backoff_base * 2**attempt
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")
