"""The HTTP side every booru site shares: one httpx client per site, its User-Agent and proxy,
retries that honour Retry-After up to a bound, redirects checked hop by hop, and image streaming
with an md5 computed on the way to disk.

Failures become ``AppError`` sentences naming the site and the settings to change (never a
command-line flag: the CLI adds its own hints); upstream text is only logged, with secrets redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app import __version__, upstream_counts
from app.blocking import BlockingPool
from app.errors import AppError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.logs import redact
from app.sources.booru.base import ForeignImageHost, ImageDownload
from app.sources.booru.files import HashingWriter
from app.sources.booru.hosts import HostPolicy
from app.sources.booru.politeness import RateLimiter, report_resumed, report_wait, retry_after, wait_bound
from app.sources.booru.sockets import poll_cheaply
from app.sources.booru.tls import client_context
from app.text import count

log = logging.getLogger("jmbooru.booru")

DEFAULT_USER_AGENT = f"jmbooru/{__version__}"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """How one site's client behaves; built by the registry from the settings."""

    user_agent: str = DEFAULT_USER_AGENT
    proxy: str = ""
    rate: float = 2.0  # API requests per second
    timeout: float = 30.0
    max_attempts: int = 4
    backoff_base: float = 0.5
    max_wait: float = 120.0  # the longest Retry-After a job waits for; longer is an error at once


class SiteHttp:
    """One per site and process; safe to share between concurrent tasks."""

    def __init__(
        self,
        title: str,
        settings_prefix: str,
        hosts: HostPolicy,
        options: HttpOptions,
        *,
        api_auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.title = title
        self.settings_prefix = settings_prefix
        # The metrics' site label: the site's name in the settings (gelbooru, danbooru, ...).
        self.site = settings_prefix.removeprefix("JMBOORU_").lower()
        self.hosts = hosts
        self.options = options
        self.root = str(hosts.root).rstrip("/")
        self.referer = self.root + "/"
        self._limiter = RateLimiter(options.rate)
        self._api_auth = api_auth  # sent to the site's own origin only, never to image hosts
        self._http = poll_cheaply(httpx.AsyncClient(
            transport=transport,
            proxy=options.proxy or None,  # empty: httpx honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY
            timeout=httpx.Timeout(options.timeout),
            follow_redirects=False,  # followed by hand, each hop checked against the allowed hosts
            headers={"User-Agent": options.user_agent},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            verify=client_context(),  # what verify=True builds, once per process (app/sources/booru/tls.py)
        ))

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- API requests ---

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """A rate-limited API GET with retries; returns the last answer whatever its status."""
        url = httpx.URL(self.root + path)
        for attempt in range(self.options.max_attempts):
            last = attempt == self.options.max_attempts - 1
            if attempt:
                upstream_counts.retried(self.site)
            await self._limiter.acquire()
            try:
                response = await self._follow(url, params)
            except httpx.TimeoutException as exc:
                log.warning("%s timeout attempt=%d error=%r", self.title, attempt + 1, exc)
                if last:
                    raise UpstreamTimeout(
                        f"{self.title} did not answer in time; try again later or raise JMBOORU_BOORU_TIMEOUT_SECONDS."
                    ) from exc
            except httpx.TransportError as exc:
                log.warning("%s network error attempt=%d error=%r", self.title, attempt + 1, exc)
                if last:
                    raise UpstreamUnavailable(
                        f"{self.title} cannot be reached right now; check the network, the proxy settings "
                        f"and {self.settings_prefix}_URL."
                    ) from exc
            except httpx.HTTPError as exc:  # undecodable body and the like: retrying will not help
                log.warning("%s broken answer error=%r", self.title, exc)
                raise UpstreamError(f"{self.title} sent an answer that could not be read; try again later.") from exc
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
                log.warning("%s status=%d attempt=%d url=%s", self.title, response.status_code, attempt + 1,
                            redact(str(response.request.url)))
                wait = await self._wait_for(response, limited=True)
                if wait:
                    continue
            await asyncio.sleep(min(self.options.backoff_base * 2**attempt, 30.0) * (1 + random.random() / 4))
        raise AssertionError("unreachable")

    async def _wait_for(self, response: httpx.Response, *, limited: bool) -> bool:
        """Honour Retry-After within the bound (saying so to whoever listens); False when there is none."""
        wait = retry_after(response)
        if wait is None:
            return False
        bound = wait_bound(self.options.max_wait)
        if wait > bound:
            seconds = int(wait + 0.999)
            raise UpstreamUnavailable(
                f"{self.title} is rate limiting jmbooru and asks to wait {_duration(seconds)}; try again then, "
                f"or lower {self.settings_prefix}_API_RATE.",
                headers={"Retry-After": str(seconds)},
            )
        if limited:
            self._limiter.pause(wait)
        report_wait(self.title, wait)
        try:
            await asyncio.sleep(wait)
        finally:
            report_resumed()
        return True

    async def _follow(self, url: httpx.URL, params: Mapping[str, Any] | None) -> httpx.Response:
        """GET ``url``, following redirects only to allowed hosts (the API's own origin included)."""
        for _ in range(MAX_REDIRECTS + 1):
            on_origin = self.hosts.is_origin(url)
            try:
                response = await self._http.get(url, params=params, auth=self._api_auth if on_origin else None)
            except Exception as exc:
                upstream_counts.answered(self.site, type(exc).__name__)
                raise
            upstream_counts.answered(self.site, _outcome(response))
            if response.status_code not in REDIRECT_STATUSES or "location" not in response.headers:
                return response
            target = self.hosts.resolve(response.headers["location"], response.request.url)
            if target is None:
                log.warning("%s API redirect refused from=%s", self.title, redact(str(response.request.url)))
                raise UpstreamError(f"{self.title} redirected the request away from {self.settings_prefix}_URL; "
                                    "check that setting.")
            url, params = target, None
        raise UpstreamError(f"{self.title} redirected the request too many times; check {self.settings_prefix}_URL.")

    def status_error(self, response: httpx.Response) -> AppError:
        """The sentence for an API answer that is not a 200 (after retries, family quirks handled first)."""
        status = response.status_code
        log.warning("%s status=%d url=%s body=%r", self.title, status, redact(str(response.request.url)),
                    redact(response.text[:300]))
        if status == 403 and is_cloudflare(response):
            return UpstreamError(
                f"{self.title}'s Cloudflare protection blocked the request (HTTP 403), which often happens from "
                f"cloud or VPN addresses; try again later, from another network, or through JMBOORU_PROXY."
            )
        if status == 429:
            return UpstreamUnavailable(
                f"{self.title} keeps rate limiting jmbooru; wait a minute and try again, or lower "
                f"{self.settings_prefix}_API_RATE."
            )
        if status == 404:
            return UpstreamError(f"The {self.title} API was not found at the configured address; check {self.settings_prefix}_URL.")
        if status == 503:
            return UpstreamUnavailable(f"{self.title} is unavailable right now (HTTP 503); try again later.")
        if status >= 500:
            return UpstreamError(f"{self.title} kept failing (HTTP {status}); try again later.")
        return UpstreamError(f"{self.title} rejected the request (HTTP {status}).")

    def json(self, response: httpx.Response, empty: Any = None) -> Any:
        """The body of a 200 as JSON; ``empty`` for an empty body. Anything else is a 502 sentence."""
        text = response.text
        if not text.strip():
            return empty
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:  # a web page, or JSON nested deep enough to hurt
            log.warning("%s non-json body url=%s body=%r", self.title, redact(str(response.request.url)),
                        redact(text[:300]))
            raise UpstreamError(
                f"{self.title} answered with something other than API data (a Cloudflare or maintenance "
                "page?); try again later."
            ) from exc

    # --- images (not rate-limited: the caller bounds them with its workers) ---

    def image_url(self, raw: str) -> httpx.URL:
        url = self.hosts.resolve(raw)
        if url is None:
            log.warning("%s image refused url=%r", self.title, redact(raw[:300]))
            raise ForeignImageHost(
                f"the image is not on {self.title} or its image hosts ({self.settings_prefix}_IMAGE_HOSTS); "
                "it was not requested"
            )
        return url

    def _image_error(self, response: httpx.Response) -> AppError:
        log.warning("%s image status=%d url=%s", self.title, response.status_code, redact(str(response.request.url)))
        if response.status_code in (401, 403):
            return UpstreamError(f"the {self.title} image host refused the download (HTTP {response.status_code})")
        if response.status_code == 404:
            return UpstreamError(f"the image is no longer on {self.title} (HTTP 404)")
        return UpstreamError(f"the {self.title} image host failed (HTTP {response.status_code})")

    @contextlib.asynccontextmanager
    async def _counted_stream(self, url: httpx.URL) -> AsyncIterator[httpx.Response]:
        """An image GET, counted once its answer (or failure) is known."""
        answered = False
        try:
            async with self._http.stream("GET", url, headers={"Referer": self.referer}, auth=None) as response:
                upstream_counts.answered(self.site, _outcome(response))
                answered = True
                yield response
        except Exception as exc:
            if not answered:  # a failure while reading the body was counted with its answer
                upstream_counts.answered(self.site, type(exc).__name__)
            raise

    async def download_image(self, raw_url: str, dest: Path, files: BlockingPool) -> ImageDownload:
        """Stream an image into ``dest`` while hashing it (the writes in ``files``); a failed transfer
        is retried from scratch."""
        start = self.image_url(raw_url)
        for attempt in range(self.options.max_attempts):
            last = attempt == self.options.max_attempts - 1
            if attempt:
                upstream_counts.retried(self.site)
            writer = HashingWriter(dest, files)
            try:
                url = start
                for _hop in range(MAX_REDIRECTS + 1):
                    async with self._counted_stream(url) as response:
                        if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                            target = self.hosts.resolve(response.headers["location"], url)
                            if target is None:
                                log.warning("%s image redirect refused from=%s", self.title, redact(str(url)))
                                raise ForeignImageHost(
                                    f"{self.title} redirected the image away from its hosts "
                                    f"({self.settings_prefix}_IMAGE_HOSTS); the redirect was not followed"
                                )
                            url = target
                            continue
                        if response.status_code == 200:
                            async for chunk in response.aiter_bytes():
                                await writer.write(chunk)
                            await writer.close()
                            return ImageDownload(md5=writer.md5.hexdigest(), size=writer.size)
                        if response.status_code not in RETRY_STATUSES or last:
                            raise self._image_error(response)
                        waited = await self._wait_for(response, limited=False)
                        break
                else:
                    raise UpstreamError(f"the {self.title} image host redirected too many times")
            except httpx.TimeoutException as exc:
                log.warning("%s image timeout attempt=%d url=%s", self.title, attempt + 1, redact(str(start)))
                if last:
                    raise UpstreamTimeout(f"the {self.title} image host did not answer in time") from exc
                waited = False
            except httpx.TransportError as exc:
                log.warning("%s image network error attempt=%d error=%r", self.title, attempt + 1, exc)
                if last:
                    raise UpstreamUnavailable(f"the {self.title} image host cannot be reached right now") from exc
                waited = False
            except httpx.HTTPError as exc:
                log.warning("%s image broken answer error=%r", self.title, exc)
                raise UpstreamError(f"the {self.title} image host sent an answer that could not be read") from exc
            finally:
                writer.abort()
            if not waited:
                await asyncio.sleep(self.options.backoff_base * 2**attempt)
        raise AssertionError("unreachable")


def _outcome(response: httpx.Response) -> str:
    return "ok" if response.status_code < 400 else str(response.status_code)


def is_cloudflare(response: httpx.Response) -> bool:
    if "cf-ray" in response.headers or response.headers.get("server", "").lower() == "cloudflare":
        return True
    lowered = response.text[:5000].lower()
    return "just a moment" in lowered or "cloudflare" in lowered or "cf-ray" in lowered


def _duration(seconds: int) -> str:
    if seconds < 120:
        return count(seconds, "second")
    if seconds < 7200:
        return count(seconds // 60, "minute")
    return count(seconds // 3600, "hour")
