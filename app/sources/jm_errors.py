"""What went wrong with JM, in a sentence: jmcomic's and libcurl's exceptions, translated.

jmcomic wraps failures in layers (a retry-all failure holding one error per domain and try, a
partial download holding one error per image, responses kept in the exceptions' context), so the
useful facts (an HTTP status, a Retry-After, a full disk) are dug out of the whole tree.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import jmcomic
from curl_cffi.requests import exceptions as curl_errors

from app.errors import (
    AppError,
    DiskFull,
    NotFound,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    exception_tree,
    is_disk_full,
)
from app.text import count

log = logging.getLogger("jmbooru.jm")

# JMBOORU_PROXY with its password masked, set with the module settings: when JM fails through a
# proxy, the proxy is as likely a culprit as JM, so the sentence names it.
_proxy = ""


def set_proxy(masked_url: str) -> None:
    global _proxy
    _proxy = masked_url


def _suspect_proxy(error: AppError) -> AppError:
    if not _proxy or isinstance(error, NotFound | DiskFull | UpstreamRateLimited):
        return error
    error.detail = (f"{error.detail} jmbooru reaches JM through the proxy {_proxy} (JMBOORU_PROXY), which may be "
                    "the one failing: check that it is up and lets the request through.")
    error.args = (error.detail,)
    return error


def _inner(exc: BaseException) -> list[object]:
    """The errors jmcomic keeps inside an exception: one per domain and try, one per image."""
    if isinstance(exc, jmcomic.RequestRetryAllFailException):
        return [item.get("error") for item in exc.errors]
    if isinstance(exc, jmcomic.PartialDownloadFailedException):
        downloader = exc.context.get(jmcomic.ExceptionTool.CONTEXT_KEY_DOWNLOADER)
        failed = list(getattr(downloader, "download_failed_image", []) or [])
        failed += list(getattr(downloader, "download_failed_photo", []) or [])
        return [error for _detail, error in failed]
    return []


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception inside it, each once."""
    return exception_tree(exc, _inner)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The failures themselves: one per domain and try, one per image, not their wrappers."""
    inner = [e for e in _inner(exc) if isinstance(e, BaseException)]
    if not inner:
        yield exc
    for error in inner:
        yield from _leaves(error)


def _response(exc: BaseException) -> Any:
    """The HTTP response an exception carries, if any (jmcomic keeps it in its context)."""
    context = getattr(exc, "context", None)
    resp = context.get(jmcomic.ExceptionTool.CONTEXT_KEY_RESP) if isinstance(context, dict) else None
    if resp is None:
        resp = getattr(exc, "response", None)
    return getattr(resp, "resp", resp)  # jmcomic's JmResp wraps the curl_cffi response


def _retry_after(resp: Any) -> float | None:
    value = str((getattr(resp, "headers", None) or {}).get("retry-after", "") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def translate_error(exc: BaseException, *, what: str = "JM") -> AppError:
    """Turn a jmcomic or transport exception into a sentence a user can act on (details are logged)."""
    if isinstance(exc, AppError):
        return exc
    return _suspect_proxy(_translate(exc, what))


def _translate(exc: BaseException, what: str) -> AppError:
    if any(is_disk_full(c) for c in _causes(exc)):
        log.error("disk full while talking to %s: %s", what, type(exc).__name__)
        return DiskFull()
    if isinstance(exc, jmcomic.MissingAlbumPhotoException):
        return NotFound("This JM album does not exist, or it can only be seen by logged-in users.")
    causes = list(_causes(exc))
    log.warning("jm upstream failure: %s: %s", type(exc).__name__, str(exc)[:500])
    statuses: dict[int, Any] = {}
    for cause in causes:
        resp = _response(cause)
        status = getattr(resp, "status_code", None)
        if isinstance(status, int) and status >= 100:  # libcurl reports 0 when nothing came back
            statuses.setdefault(status, resp)
    if 429 in statuses:
        wait = _retry_after(statuses[429])
        when = f"in about {count(round(wait), 'second')}" if wait is not None else "in a minute"
        return UpstreamRateLimited(f"{what} is rate-limiting this server (HTTP 429); try again {when}.",
                                   retry_after=wait)
    failing = sorted(s for s in statuses if s >= 500)
    if failing:
        return UpstreamError(f"{what}'s servers are failing (HTTP {failing[0]}); try again later.")
    leaves = list(_leaves(exc))
    if all(isinstance(c, curl_errors.Timeout) for c in leaves):
        return UpstreamTimeout(f"{what} did not answer in time. Try again later.")
    if not statuses and all(isinstance(c, curl_errors.RequestException | OSError) for c in leaves):
        return UpstreamUnavailable(
            f"{what} is unreachable right now (every configured domain failed). "
            "Try again later or set JMBOORU_JM_API_DOMAINS / JMBOORU_JM_IMAGE_DOMAINS to working domains."
        )
    if 403 in statuses or any(_looks_like_cloudflare(r) for r in statuses.values()):
        return UpstreamError(
            f"{what} refused this server (HTTP 403, often a Cloudflare check): cloud and CI addresses are "
            "often blocked; try again later, from another network, or through a proxy (JMBOORU_PROXY)."
        )
    return UpstreamError(f"{what} answered with something unusable (an error page instead of data). Try again later.")


def _looks_like_cloudflare(resp: Any) -> bool:
    try:
        text = str(resp.text[:3000]).lower()
    except Exception:
        return False
    return "cloudflare" in text or "just a moment" in text
