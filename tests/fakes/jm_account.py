"""JM accounts for the JM double: ``POST /login`` and ``GET /favorite``, as jmcomic 2.7.10's API client
speaks them (``JmApiClient.login``, ``favorite_folder``; ``JmPageTool.parse_api_to_favorite_page``).

* ``POST /login`` (form ``username``, ``password``, signed like every API request): success is the
  usual encrypted answer holding the user (``uid``, ``username``, ``s`` = the session token, the
  favourite counts, ...) and a ``Set-Cookie: AVS=<token>``; jmcomic keeps the token as its AVS
  cookie. A wrong user name or password is HTTP 401 ``{"code": 401, "data": [], "errorMsg":
  "帳號或密碼錯誤"}``.
* ``GET /favorite?page=&folder_id=&o=`` with a logged-in AVS cookie: ``{"list": [album items with
  latest_ep/latest_ep_aid], "folder_list": [{"0", "FID", "1", "UID", "2", "name"}], "total": "<n>",
  "count": 20}``, newest favourite first, 20 a page; folder ``0`` holds every favourite. Without a
  session (no AVS, the anonymous AVS that ``/setting`` hands out, or an expired one) the API refuses
  like the real one does for logged-out apps: HTTP 401 ``{"code": 401, "data": [], "errorMsg":
  "請先登入會員"}``.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from tests.fakes.jm import JmDouble

WRONG_PASSWORD = "帳號或密碼錯誤"
LOGIN_REQUIRED = "請先登入會員"
FAVORITES_PAGE = 20


@dataclass
class FakeAccount:
    username: str
    password: str
    uid: str
    favorites: list[tuple[str, str]] = field(default_factory=list)  # (album id, folder id "0" or a folder), newest first
    folders: dict[str, str] = field(default_factory=dict)  # folder id -> name


class FakeAccounts:
    def __init__(self, double: JmDouble) -> None:
        self.double = double
        self.accounts: dict[str, FakeAccount] = {}
        self._sessions: dict[str, str] = {}  # AVS token -> username
        self._lock = threading.Lock()
        self.logins = 0  # successful logins (tests check that jmbooru logs in once, and again on expiry)

    def add(self, account: FakeAccount) -> FakeAccount:
        with self._lock:
            self.accounts[account.username] = account
        return account

    def add_favorite(self, username: str, album_id: str, folder_id: str = "0") -> None:
        """The user favourites an album (newest first, as the list shows them)."""
        with self._lock:
            self.accounts[username].favorites.insert(0, (str(album_id), folder_id))

    def expire_sessions(self) -> None:
        """Every session ends, as JM's do after a while: the next request with it is refused."""
        with self._lock:
            self._sessions.clear()

    def login(self, body: bytes) -> tuple[int, dict[str, Any] | None, list[tuple[str, str]]]:
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        with self._lock:
            account = self.accounts.get(form.get("username", ""))
            if account is None or account.password != form.get("password"):
                return 401, None, []
            token = secrets.token_hex(13)
            self._sessions[token] = account.username
            self.logins += 1
        user = {
            "uid": account.uid, "username": account.username, "email": f"{account.username}@example.test",
            "emailverified": "yes", "photo": "nopic-Male.gif", "fname": "", "gender": "Male",
            "message": f"Welcome {account.username}!", "coin": 0, "album_favorites": len(account.favorites),
            "s": token, "level_name": "Lv 1", "level": 1, "nextLevelExp": 100, "exp": "0", "expPercent": 0,
            "badges": [], "album_favorites_max": 400,
        }
        return 200, user, [("Set-Cookie", f"AVS={token}; path=/; HttpOnly")]

    def favorites(self, cookie_header: str, query: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
        cookies = SimpleCookie()
        cookies.load(cookie_header or "")
        token = cookies["AVS"].value if "AVS" in cookies else ""
        with self._lock:
            account = self.accounts.get(self._sessions.get(token, ""))
        if account is None:
            return 401, None
        folder = query.get("folder_id", "0") or "0"
        ids = [aid for aid, fid in account.favorites if folder == "0" or fid == folder]
        try:
            page = max(1, int(query.get("page") or 1))
        except ValueError:
            page = 1
        chosen = ids[(page - 1) * FAVORITES_PAGE: page * FAVORITES_PAGE]
        items = []
        for aid in chosen:
            album = self.double.albums[aid]
            item = self.double._list_item(album)
            # As the real list has them: null for a one-chapter album, else the newest chapter's
            # number and id (a client notices a new chapter here without reading the album).
            if len(album.chapters) > 1:
                latest = max(album.chapters, key=lambda c: c.sort)
                item.update(latest_ep=str(latest.sort), latest_ep_aid=latest.photo_id)
            else:
                item.update(latest_ep=None, latest_ep_aid=None)
            items.append(item)
        folder_list = [{"0": fid, "FID": fid, "1": account.uid, "UID": account.uid, "2": name, "name": name}
                       for fid, name in account.folders.items()]
        return 200, {"list": items, "folder_list": folder_list, "total": str(len(ids)), "count": len(items)}
