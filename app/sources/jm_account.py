"""The JM account of the server's owner: logging in through jmcomic, and the favourites.

The account has a jmcomic client of its own, so logging in never changes what anonymous reads
and downloads see. It logs in on first use, and again once when JM refuses the session (JM ends
sessions after a while). The password is read from the settings as a secret and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmcomic
from jmcomic import JmMagicConstants

from app.blocking import BlockingPool
from app.config import Settings
from app.errors import AppError, Conflict, UpstreamError
from app.sources.jm import build_option
from app.sources.jm_errors import translate_error

log = logging.getLogger("jmbooru.jm")

CREDENTIALS_MISSING = (
    "Favourites need your JM account: set JMBOORU_JM_USERNAME and JMBOORU_JM_PASSWORD (in the environment or "
    "the .env file) and restart jmbooru."
)
LOGIN_REFUSED = (
    "JM refused the login: the user name or password is wrong. Check JMBOORU_JM_USERNAME and "
    "JMBOORU_JM_PASSWORD, then restart jmbooru."
)
REFUSAL_MEMORY_SECONDS = 60.0  # a refused password is not tried again at once (accounts get locked)


@dataclass(frozen=True)
class FavoriteAlbum:
    album_id: str
    title: str
    author: str
    latest_chapter_id: str = ""  # the favourites list's latest_ep_aid: a new chapter shows here first


@dataclass(frozen=True)
class FavoriteFolder:
    folder_id: str
    name: str


@dataclass(frozen=True)
class FavoritesPage:
    folder_id: str
    page: int
    page_count: int
    total: int
    albums: list[FavoriteAlbum]
    folders: list[FavoriteFolder]


class _Refused(Exception):
    """JM answered HTTP 401: the session (or, for /login, the password) is not accepted."""


def _http_status(exc: BaseException) -> int | None:
    resp = getattr(exc, "context", {}).get("resp") if isinstance(exc, jmcomic.JmcomicException) else None
    code = getattr(resp, "http_code", None)
    return int(code) if isinstance(code, int) else None


class JmAccount:
    def __init__(self, settings: Settings, pool: BlockingPool) -> None:
        self.settings = settings
        self.pool = pool
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._refused_at: float | None = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.jm_username and self.settings.jm_password.get_secret_value())

    async def _logged_in(self, *, again: bool = False) -> Any:
        if not self.configured:
            raise Conflict(CREDENTIALS_MISSING)
        async with self._lock:
            if self._client is not None and not again:
                return self._client
            if self._refused_at is not None and time.monotonic() - self._refused_at < REFUSAL_MEMORY_SECONDS:
                raise UpstreamError(LOGIN_REFUSED)
            self._client = None
            username = self.settings.jm_username
            password = self.settings.jm_password.get_secret_value()

            def login() -> Any:
                client = build_option(self.settings).new_jm_client()
                try:
                    client.login(username, password)
                except jmcomic.ResponseUnexpectedException as exc:
                    if _http_status(exc) == 401:
                        raise _Refused() from None  # the exception text holds nothing we want to keep
                    raise
                return client

            try:
                self._client = await self.pool.run(login)
            except _Refused:
                self._refused_at = time.monotonic()
                log.warning("jm login refused (wrong user name or password)")
                raise UpstreamError(LOGIN_REFUSED) from None
            except Exception as exc:
                raise translate_error(exc, what="JM (logging in)") from exc
            self._refused_at = None
            log.info("jm login ok")
            return self._client

    async def _call(self, call: Callable[[Any], Any]) -> Any:
        """``call(client)`` in the pool with a logged-in client; once more after a new login if JM
        refuses the session."""
        client = await self._logged_in()
        for attempt in (1, 2):
            try:
                return await self.pool.run(call, client)
            except jmcomic.ResponseUnexpectedException as exc:
                if _http_status(exc) != 401 or attempt == 2:
                    raise translate_error(exc) from exc
                log.info("jm session refused; logging in again")
                client = await self._logged_in(again=True)
            except AppError:
                raise
            except Exception as exc:
                raise translate_error(exc) from exc
        raise AssertionError("unreachable")

    async def favorites(self, page: int = 1, folder_id: str = "0") -> FavoritesPage:
        result = await self._call(lambda client: client.favorite_folder(
            page=page, order_by=JmMagicConstants.ORDER_FF_FAVORITE_TIME, folder_id=folder_id))
        total = int(result.total)
        albums = [FavoriteAlbum(str(aid), str(info.get("name", "")), str(info.get("author", "") or ""),
                                str(info.get("latest_ep_aid") or ""))
                  for aid, info in result.content]
        folders = [FavoriteFolder(str(fid), str(name)) for fid, name in result.iter_folder_id_name()]
        page_count = math.ceil(total / result.page_size) if total else 0
        return FavoritesPage(folder_id, page, page_count, total, albums, folders)
