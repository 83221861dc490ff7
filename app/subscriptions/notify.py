"""Notifications after a check that started jobs, through apprise (the optional ``notify`` extra)."""

from __future__ import annotations

import logging
from typing import Any

from app.blocking import BlockingPool

log = logging.getLogger("jmbooru.subscriptions")

EXTRA_MISSING = ("notify URLs need the notify extra (apprise): pip install 'jmbooru[notify]' "
                 "(in a checkout: .venv/bin/pip install -e '.[notify]'), then restart jmbooru")


def _apprise() -> Any:
    try:
        import apprise
    except ImportError:
        return None
    # apprise logs the URLs it refuses or fails on, tokens and passwords included: jmbooru logs its
    # own line without them instead.
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
    return apprise


def notify_problem(urls: list[str]) -> str | None:
    """Why these URLs cannot be used (no apprise, or a URL apprise cannot read), or None."""
    if not urls:
        return None
    apprise = _apprise()
    if apprise is None:
        return EXTRA_MISSING
    for index, url in enumerate(urls):
        if not isinstance(url, str) or not apprise.Apprise().add(url):
            return (f"the notify[{index}] URL is not a notification URL apprise can use (for example "
                    "json://host:port/path, tgram://bot_token/chat_id or mailto://user:password@host)")
    return None


def scheme(url: str) -> str:
    """What a log line may say of a notify URL: its scheme (the rest may hold tokens)."""
    return url.split("://", 1)[0][:20] + "://…" if "://" in url else "(a notify URL)"


async def send(pool: BlockingPool, urls: list[str], title: str, body: str) -> None:
    """One notification to each URL; a failure is logged without the URL's secrets, never raised."""
    apprise = _apprise()
    if apprise is None or not urls:
        return

    def deliver(url: str) -> bool:
        target = apprise.Apprise()
        target.add(url)
        return bool(target.notify(title=title, body=body))

    for url in urls:
        try:
            delivered = await pool.run(deliver, url)
        except Exception as exc:  # apprise plugins raise anything; a notification never fails a check
            log.warning("subscription notification to %s failed: %s", scheme(url), type(exc).__name__)
            continue
        if not delivered:
            log.warning("subscription notification to %s was not delivered", scheme(url))
