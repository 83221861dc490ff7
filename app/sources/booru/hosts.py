"""Where a booru site's images may come from: its own origin and the image hosts configured for it.

A post's ``file_url`` is upstream data, so it is checked before anything is requested: the scheme,
host and port must be the site's origin (from its configured URL) or match one of its image hosts
(``JMBOORU_<SITE>_IMAGE_HOSTS``). Everything else is refused: another port, ``//host`` URLs,
``http://good@evil`` (any user info), other schemes. Redirects are checked hop by hop the same way.
"""

from __future__ import annotations

import functools
import logging
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

log = logging.getLogger("jmbooru.booru")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_ENTRY = re.compile(r"(?:(?P<scheme>https?)://)?(?P<host>\[[0-9a-f:.]+\]|[a-z0-9*._-]+)(?::(?P<port>\d{1,5}))?/?", re.I)
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True, slots=True)
class HostRule:
    scheme: str
    host: re.Pattern[str]
    port: int

    def matches(self, scheme: str, host: str, port: int) -> bool:
        return scheme == self.scheme and port == self.port and self.host.fullmatch(host) is not None


def parse_host_rule(entry: str) -> HostRule | None:
    """``img*.gelbooru.com`` (https, port 443), ``https://cdn.donmai.us``, ``http://127.0.0.1:8080``.

    ``*`` stands for part of one DNS label, so ``img*.gelbooru.com`` matches ``img3.gelbooru.com``
    but not ``evil.com.gelbooru.com.example``.
    """
    match = _HOST_ENTRY.fullmatch(entry.strip())
    if match is None:
        return None
    scheme = (match["scheme"] or "https").lower()
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS[scheme]
    host = match["host"].lower().strip("[]")
    if not host or host.strip("*.") == "" or port > 65535:
        return None
    pattern = re.compile(re.escape(host).replace(r"\*", "[a-z0-9-]*"))
    return HostRule(scheme, pattern, port)


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme, 0)


def usable_url(raw: str, base: httpx.URL) -> httpx.URL | None:
    """``raw`` made absolute against ``base``, or None when it is not a URL anything could fetch.

    Upstream data is hostile: ``http://0177.0.0.1/`` (octal), fullwidth digits, a tab, ``a:1:2``
    or a bad punycode label (``xn--a-``) make httpx or idna raise, sometimes only when the host is
    read. A non-ASCII host or port is refused outright, so no lenient parser can read fullwidth
    digits as a different (allowed) host or port.

    Answers are remembered (``httpx.URL`` is immutable): a post's file URL is checked when its page
    is read, again when the post is selected and when the image is asked for, and httpx's parsing
    of a long URL costs more than the rest of the request's bookkeeping.
    """
    raw = raw.strip()
    if len(raw) > _REMEMBERED_LENGTH:  # a hostile site's huge field is checked, never kept
        return _check_url(raw, str(base))
    return _remembered_url(raw, str(base))


def _check_url(raw: str, base: str) -> httpx.URL | None:
    if not raw or _UNSAFE_CHARS.search(raw):
        return None
    try:
        parts = urllib.parse.urlsplit(raw)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    if not parts.netloc.isascii():
        return None
    try:
        # An absolute URL is itself (what joining it would give, parsed once instead of twice).
        url = httpx.URL(raw) if parts.scheme and parts.netloc else httpx.URL(base).join(raw)
        _origin(url)  # decodes the host: IDNA errors surface here
    except (httpx.InvalidURL, ValueError, TypeError):  # idna.IDNAError is a ValueError
        return None
    return url


# The answers kept: 4,096 URLs of at most 2,048 characters (real file URLs are ~100): ~12 MB at worst.
_REMEMBERED_LENGTH = 2048
_remembered_url = functools.lru_cache(maxsize=4096)(_check_url)


class HostPolicy:
    """The origin of the site's configured URL plus its image-host rules."""

    def __init__(self, site_url: str, image_hosts: Iterable[str] = ()) -> None:
        self.root = httpx.URL(site_url.rstrip("/") + "/")
        self.origin = _origin(self.root)
        self.rules: list[HostRule] = []
        for entry in image_hosts:
            rule = parse_host_rule(entry)
            if rule is None:
                log.warning("ignoring an image host setting that is not a host name: %r", entry[:100])
            else:
                self.rules.append(rule)

    def is_origin(self, url: httpx.URL) -> bool:
        return not url.userinfo and _origin(url) == self.origin

    def allows(self, url: httpx.URL) -> bool:
        try:
            if url.scheme.lower() not in _DEFAULT_PORTS or url.userinfo or not url.host:
                return False
            scheme, host, port = _origin(url)
        except (httpx.InvalidURL, ValueError):  # a host idna cannot decode: nothing to fetch
            return False
        if (scheme, host, port) == self.origin:
            return True
        return any(rule.matches(scheme, host, port) for rule in self.rules)

    def resolve(self, raw: str, base: httpx.URL | None = None) -> httpx.URL | None:
        """``raw`` made absolute against ``base`` (default: the site's root), or None if it may not be fetched."""
        url = usable_url(raw, base or self.root)
        return url if url is not None and self.allows(url) else None
