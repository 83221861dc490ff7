"""A test double of the JM mobile API and its image CDN, on 127.0.0.1.

It speaks the wire protocol that the real ``jmcomic`` library (2.7.10) speaks, so tests run the
real library end to end against it (see ../shared/docs/upstreams.md, "The wire protocol of the
API client"):

* every API request is signed: ``token = md5hex(f"{ts}{secret}")``, ``tokenparam = f"{ts},{ver}"``;
  a bad signature gets HTTP 400 ``{"code": 400, "data": [], "errorMsg": "Not legal."}``;
* API answers are ``{"code": 200, "data": base64(AES-256-ECB(PKCS7(json)))}`` keyed with
  ``md5hex(f"{ts}185Hcomic3PAPP7R")`` (32 ASCII bytes), ``ts`` taken from the request;
* ``/setting``, ``/album``, ``/chapter``, ``/chapter_view_template``, ``/search``,
  ``/categories/filter``;
* images ``/media/photos/<photo_id>/<00001.webp>`` (chapter ids at or above 220980 are served
  cut into strips exactly as the real CDN does, so jmcomic's descrambling restores them) and
  covers ``/media/albums/<aid>[_3x4].jpg``.

One server answers both the API and the images, so ``double.host`` is used as API domain and as
image domain. Call :func:`configure_jmcomic_for` before creating a jmcomic client.

Fault injection (``fail``, ``fail_images_after``, ``cloudflare``, ``set_latency``) and request
counting (``hits``) are thread-safe and can be changed while requests are in flight.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from . import images as _img
from .jm_account import LOGIN_REQUIRED, WRONG_PASSWORD, FakeAccount, FakeAccounts

__all__ = [
    "APP_SECRET",
    "FakeAccount",
    "APP_VERSION",
    "CONTENT_SECRET",
    "SCRAMBLE_ID",
    "FakeAlbum",
    "FakeChapter",
    "JmDouble",
    "big_album",
    "configure_jmcomic_for",
    "decrypt_data",
    "default_catalogue",
    "encrypt_data",
    "jm_option_dict",
    "md5hex",
    "sign_headers",
    "strip_count",
]

# --------------------------------------------------------------------------------------------
# protocol constants and crypto
# --------------------------------------------------------------------------------------------

APP_SECRET = "185Hcomic3PAPP7R"  # token secret of every endpoint, and the data (AES) secret
CONTENT_SECRET = "18comicAPPContent"  # accepted too for /chapter_view_template (async client)
APP_VERSION = "2.1.12"
SCRAMBLE_ID = 220980
_SCRAMBLE_268850 = 268850
_SCRAMBLE_421926 = 421926
PAGE_SIZE = 80  # search and category pages hold 80 items, as on the site


def md5hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _aes(key: bytes):
    # the same AES implementation jmcomic itself uses (pycryptodome)
    from Crypto.Cipher import AES

    return AES.new(key, AES.MODE_ECB)


def encrypt_data(obj: Any, ts: str | int) -> str:
    """The ``data`` field of an API answer: base64(AES-256-ECB(PKCS7(utf-8 json)))."""
    raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    pad = 16 - len(raw) % 16
    raw += bytes([pad]) * pad
    key = md5hex(f"{ts}{APP_SECRET}").encode("ascii")
    return base64.b64encode(_aes(key).encrypt(raw)).decode("ascii")


def decrypt_data(data: str, ts: str | int) -> Any:
    """Inverse of :func:`encrypt_data` (for tests that talk to the double directly)."""
    key = md5hex(f"{ts}{APP_SECRET}").encode("ascii")
    raw = _aes(key).decrypt(base64.b64decode(data))
    return json.loads(raw[: -raw[-1]].decode("utf-8"))


def sign_headers(ts: str | int | None = None, secret: str = APP_SECRET, version: str = APP_VERSION) -> dict:
    """Headers of a correctly signed API request (for tests that talk to the double directly)."""
    ts = str(int(time.time()) if ts is None else ts)
    return {"token": md5hex(f"{ts}{secret}"), "tokenparam": f"{ts},{version}"}


def strip_count(photo_id: str | int, filename_without_ext: str, scramble_id: int = SCRAMBLE_ID) -> int:
    """How many horizontal strips a page is cut into (0 = served plain); same rule as jmcomic."""
    pid = int(photo_id)
    if pid < scramble_id:
        return 0
    if pid < _SCRAMBLE_268850:
        return 10
    x = 10 if pid < _SCRAMBLE_421926 else 8
    return (ord(md5hex(f"{pid}{filename_without_ext}")[-1]) % x) * 2 + 2


# --------------------------------------------------------------------------------------------
# catalogue
# --------------------------------------------------------------------------------------------

# category slug (the ``c=`` of /categories/filter) -> (id, title) as the app shows them
CATEGORIES: dict[str, tuple[str, str]] = {
    "doujin": ("1", "同人"),
    "single": ("2", "單本"),
    "short": ("3", "短篇"),
    "another": ("4", "其他類"),
    "hanman": ("5", "韓漫"),
    "meiman": ("6", "美漫"),
    "doujin_cosplay": ("7", "Cosplay"),
    "3D": ("8", "3D"),
    "english_site": ("9", "English Site"),
}
SUB_CATEGORIES: dict[str, tuple[str, str]] = {
    "chinese": ("1", "漢化"),
    "japanese": ("2", "日語"),
    "CG": ("3", "CG"),
    "youth": ("4", "青年"),
}


@dataclass
class FakeChapter:
    photo_id: str
    title: str
    pages: int  # number of images
    sort: int = 1
    ext: str = "webp"  # older albums have "jpg" (or "png") pages; a chapter serves one kind

    def image_names(self) -> list[str]:
        return [f"{i:05d}.{self.ext}" for i in range(1, self.pages + 1)]


@dataclass
class FakeAlbum:
    album_id: str
    name: str
    chapters: list[FakeChapter]
    authors: list[str] = field(default_factory=lambda: ["someone"])
    tags: list[str] = field(default_factory=lambda: ["full color", "chinese"])
    views: int = 1000
    likes: int = 100
    description: str = ""
    login_only: bool = False
    # extras (not required by callers)
    works: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    category: str = "doujin"  # key of CATEGORIES
    category_sub: str | None = "chinese"  # key of SUB_CATEGORIES, None -> nulls in list items
    comment_total: int = 3
    addtime: int = 1_700_000_000  # unix seconds

    def __post_init__(self) -> None:
        self.album_id = str(self.album_id)
        for ch in self.chapters:
            ch.photo_id = str(ch.photo_id)

    @property
    def is_single_chapter(self) -> bool:
        """JM's one-chapter album: its only chapter has the album's id; ``series`` is []."""
        return len(self.chapters) == 1 and self.chapters[0].photo_id == self.album_id

    @property
    def total_pages(self) -> int:
        return sum(ch.pages for ch in self.chapters)

    @classmethod
    def single(cls, album_id: str, name: str, pages: int, **kwargs: Any) -> FakeAlbum:
        """A one-chapter album (chapter id == album id)."""
        return cls(str(album_id), name, [FakeChapter(str(album_id), name, pages)], **kwargs)


ILLEGAL_TITLE = 'a/b\\c:d*e?f"g<h>i|j ../.. 漢字テスト ✓ 𝒳\tend.'
SAME_TITLE = "Same Title Twice"


def default_catalogue() -> list[FakeAlbum]:
    """The albums a fresh :class:`JmDouble` serves.

    * ``100001`` plain one-chapter album, 5 pages (chapter id < 220980: served unscrambled);
    * ``500001`` scrambled one-chapter album, 4 pages (id > 421926: 2..16 strips per page);
    * ``200001`` two chapters ``200001`` (3 pages) and ``200002`` (2 pages), plain;
    * ``600001`` two scrambled chapters ``600001`` (3 pages) and ``600002`` (4 pages), 23 comments;
    * ``100002`` title full of characters that are illegal in file names, plus unicode;
    * ``100003`` and ``100004`` share the title :data:`SAME_TITLE`;
    * ``300001`` login-only (``/album`` answers "no such album"; it still shows in lists);
    * ``250001`` (10 strips per page) and ``300002`` (md5 rule with x=10): the other scramble eras;
    * ``100010``..``100015`` filler with varied tags, views and categories for search and rankings.
    """
    A = FakeAlbum
    C = FakeChapter
    albums = [
        A.single("100001", "Plain Album", 5, authors=["Alice"], tags=["full color", "chinese", "plain"],
                 views=52_000, likes=1_200, description="A plain album.", addtime=1_700_000_100),
        A.single("500001", "Scrambled Album", 4, authors=["Bob"], tags=["scrambled", "english"],
                 views=88_000, likes=3_400, category="hanman", category_sub=None, addtime=1_700_000_900),
        A("200001", "Two Chapters", [C("200001", "第1話", 3, 1), C("200002", "第2話", 2, 2)],
          authors=["Carol", "Dave"], tags=["series", "chinese"], works=["Some Work"], actors=["Hero"],
          views=31_000, likes=800, category="single", addtime=1_700_000_200),
        A.single("100002", ILLEGAL_TITLE, 2, authors=["Eve/Mallory"], tags=["weird title"],
                 views=1_500, likes=20, addtime=1_700_000_300),
        A.single("100003", SAME_TITLE, 2, authors=["Frank"], tags=["twin"], views=4_000, likes=40,
                 addtime=1_700_000_400),
        A.single("100004", SAME_TITLE, 2, authors=["Grace"], tags=["twin"], views=4_100, likes=41,
                 addtime=1_700_000_500),
        A.single("300001", "Members Only Album", 2, authors=["Heidi"], tags=["members"], views=9_000,
                 likes=300, login_only=True, addtime=1_700_000_600),
        A.single("250001", "Ten Strips Era", 3, authors=["Ivan"], tags=["scrambled", "old"], views=2_500,
                 likes=25, category="short", addtime=1_700_000_700),
        A.single("300002", "Middle Era", 3, authors=["Judy"], tags=["scrambled", "middle"], views=7_700,
                 likes=70, category="short", addtime=1_700_000_800),
        # scrambled WebP pages in two chapters, as most of JM serves them; many comments
        A("600001", "Scrambled Two Chapters", [C("600001", "Part 1", 3, 1), C("600002", "Part 2", 4, 2)],
          authors=["Kim"], tags=["scrambled", "series"], views=12_300, likes=456, category="hanman",
          comment_total=23, addtime=1_700_001_000),
    ]
    filler_tags = ["romance", "comedy", "romance", "action", "comedy", "romance"]
    filler_cats = ["doujin", "single", "hanman", "doujin", "another", "doujin"]
    for i in range(6):
        aid = str(100010 + i)
        albums.append(A.single(
            aid, f"Filler {filler_tags[i].title()} {i}", 1 + i % 3,
            authors=[f"Filler Author {i % 2}"], tags=[filler_tags[i], "filler"],
            views=(i + 1) * 6_100 + 37 * i, likes=10 * i + 1, category=filler_cats[i],
            category_sub=[None, "chinese", "japanese"][i % 3], addtime=1_699_000_000 + 1_000 * i,
        ))
    return albums


def big_album(album_id: str = "700001", pages: int = 200, *, scrambled: bool = True,
              name: str | None = None) -> FakeAlbum:
    """A one-chapter album with many pages for benchmarks. Pages are generated on first request
    and cached. ``scrambled=False`` needs an id below 220980 (e.g. ``"190001"``)."""
    pid = int(album_id)
    if scrambled and pid < SCRAMBLE_ID:
        raise ValueError("a scrambled album needs an id >= 220980")
    if not scrambled and pid >= SCRAMBLE_ID:
        raise ValueError("a plain album needs an id < 220980")
    return FakeAlbum.single(album_id, name or f"Big Album {album_id} ({pages} pages)", pages,
                            authors=["Benchmark"], tags=["big"], views=1, likes=1)


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------

_CLOUDFLARE_PAGE = b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow">
<style>*{box-sizing:border-box;margin:0;padding:0}html{line-height:1.15}</style></head>
<body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">Verify you are human by completing the action below.</h1>
<p>Checking if the site connection is secure</p></div></div>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "jm",cType: 'managed',cRay: '8f2a1b3c4d5e6f70'};}());</script>
<div class="footer">Performance &amp; security by Cloudflare &middot; Ray ID: 8f2a1b3c4d5e6f70</div>
</body></html>"""

_PHOTO_PATH = re.compile(r"^/media/photos/(\d+)/(\d+)\.(\w+)$")
_COVER_PATH = re.compile(r"^/media/albums/(\d+)(_3x4)?\.jpg$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog; the default 5 drops bursts of connections

    def __init__(self, double: JmDouble):
        self.double = double
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.accepted = 0  # TCP connections accepted so far
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self):
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conns_lock:
            self._conns.add(conn)
            self.accepted += 1
        return conn, addr

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut open keep-alive connections, so a stopped double answers nothing at all."""
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):  # quiet: clients hanging up are normal
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jm-double/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are dropped after a minute
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - quiet logging
        pass

    body = b""

    def do_GET(self):
        self.body = b""
        self.server.double._handle(self)

    def do_HEAD(self):
        self.server.double._handle(self)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.server.double._handle(self)

    def respond(self, status: int, body: bytes, content_type: str,
                headers: Sequence[tuple[str, str]] = ()) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append("Connection: close" if self.close_connection else "Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # one write: status, headers and body leave in the same segment(s)
        self.wfile.write(head if self.command == "HEAD" else head + body)


@dataclass
class _Fault:
    prefix: str
    status: int
    body: bytes
    content_type: str
    remaining: int | None  # None = until clear_faults()
    headers: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------------------------
# the double
# --------------------------------------------------------------------------------------------


class JmDouble:
    """The fake JM API + image CDN. Use as ``with JmDouble() as jm: ...`` or ``start()``/``stop()``."""

    def __init__(self, albums: list[FakeAlbum] | None = None):
        self.albums: dict[str, FakeAlbum] = {}
        for a in default_catalogue() if albums is None else albums:
            self.albums[a.album_id] = a
        self._lock = threading.Lock()
        self._latency: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._cloudflare = False
        self._images_ok_left: int | None = None
        self._images_fail_status = 500
        self._hits: dict[str, int] = {}
        self._bytes_cache: dict[tuple[str, int], bytes] = {}
        self._cover_cache: dict[tuple[str, str], bytes] = {}
        self.accounts = FakeAccounts(self)  # /login and /favorite (tests/fakes/jm_account.py)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int = 0
        self.host: str = ""

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> JmDouble:
        if self._server is not None:
            return self
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"jm-double-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> JmDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # ---- catalogue ---------------------------------------------------------------------------

    def add_album(self, album: FakeAlbum) -> None:
        with self._lock:
            self.albums[album.album_id] = album

    def add_chapter(self, album_id: str, chapter: FakeChapter) -> None:
        """A new chapter appears in an album, as JM publishes one (subscriptions look for these)."""
        with self._lock:
            album = self.albums[album_id]
            chapter.photo_id = str(chapter.photo_id)
            if chapter.sort <= max((c.sort for c in album.chapters), default=0):
                chapter.sort = max(c.sort for c in album.chapters) + 1
            album.chapters.append(chapter)

    def _find_chapter(self, photo_id: str) -> tuple[FakeAlbum, FakeChapter] | None:
        for album in list(self.albums.values()):
            for ch in album.chapters:
                if ch.photo_id == photo_id:
                    return album, ch
        return None

    # ---- fault injection ---------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds added to every request (the ``""`` prefix of :meth:`set_latency`)."""
        with self._lock:
            return self._latency.get("", 0.0)

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.set_latency(seconds)

    def set_latency(self, seconds: float, path_prefix: str = "") -> None:
        """Delay requests whose path starts with ``path_prefix`` ("" = all). When several
        prefixes match a request, the longest one decides. 0 removes the delay."""
        with self._lock:
            if seconds and seconds > 0:
                self._latency[path_prefix] = float(seconds)
            else:
                self._latency.pop(path_prefix, None)

    def fail(self, path_prefix: str, *, status: int = 500, body: bytes = b"fake upstream failure",
             content_type: str = "text/plain", times: int | None = None,
             headers: dict[str, str] | None = None) -> None:
        """Answer requests whose path starts with ``path_prefix`` with ``status``/``body`` (and
        ``headers``, e.g. Retry-After), ``times`` times (None: until :meth:`clear_faults`).
        Newest rule wins when several match."""
        with self._lock:
            self._faults.insert(0, _Fault(path_prefix, status, body, content_type, times,
                                          tuple((headers or {}).items())))

    def fail_images_after(self, n_ok: int, status: int = 500) -> None:
        """Serve the next ``n_ok`` page images (``/media/photos``) normally, then fail every one."""
        with self._lock:
            self._images_ok_left = max(0, int(n_ok))
            self._images_fail_status = status

    def cloudflare(self, on: bool = True) -> None:
        """Every API request (not ``/media/...``) answers 403 with a Cloudflare challenge page."""
        with self._lock:
            self._cloudflare = on

    def clear_faults(self) -> None:
        """Remove failures, Cloudflare mode and all latency."""
        with self._lock:
            self._faults.clear()
            self._cloudflare = False
            self._images_ok_left = None
            self._latency.clear()

    def hits(self, path_prefix: str) -> int:
        """How many requests (any outcome) had a path starting with ``path_prefix``."""
        with self._lock:
            return sum(n for p, n in self._hits.items() if p.startswith(path_prefix))

    def reset_hits(self) -> None:
        with self._lock:
            self._hits.clear()

    @property
    def connections(self) -> int:
        """TCP connections accepted since the double started (a kept-alive one counts once)."""
        return self._server.accepted if self._server is not None else 0

    # ---- pictures ------------------------------------------------------------------------------

    @staticmethod
    def image_name(page_index: int) -> str:
        return f"{page_index:05d}.webp"

    def expected_image(self, photo_id: str, page_index: int) -> Image.Image:
        """The original (unscrambled) picture of a page, RGB; ``page_index`` is 1-based."""
        return _img.make_picture(f"jm photo {photo_id} page {page_index}")

    def page_ext(self, photo_id: str) -> str:
        found = self._find_chapter(str(photo_id))
        return found[1].ext if found is not None else "webp"

    def served_bytes(self, photo_id: str, page_index: int) -> bytes:
        """The exact bytes the CDN serves for a page (scrambled for ids >= 220980): lossless WebP, or
        the chapter's ``ext`` (JPEG, PNG)."""
        key = (str(photo_id), int(page_index))
        cached = self._bytes_cache.get(key)
        if cached is not None:
            return cached
        picture = self.expected_image(*key)
        num = strip_count(key[0], f"{key[1]:05d}")
        data = _img.encode(_img.scramble(picture, num) if num else picture, self.page_ext(key[0]))
        self._bytes_cache[key] = data  # dict assignment is atomic; duplicates are identical
        return data

    def cover_bytes(self, album_id: str, size: str = "") -> bytes:
        """JPEG bytes of ``/media/albums/<album_id><size>.jpg`` (size "" or "_3x4")."""
        key = (str(album_id), size)
        cached = self._cover_cache.get(key)
        if cached is None:
            dims = (300, 400) if size == "_3x4" else (400, 300)
            cached = _img.encode(_img.make_picture(f"jm cover {album_id}{size}", dims), "jpeg")
            self._cover_cache[key] = cached
        return cached

    # ---- listings (also used by tests to know the expected answer) ---------------------------

    @staticmethod
    def period_views(album: FakeAlbum, period: str) -> int:
        """Views of an album in a period: "" all-time, "m" month, "w" week, "t" day. Derived
        from the album id so that the day, week and month rankings differ from each other."""
        if period in ("", "a"):
            return album.views
        share = {"m": 1.0, "w": 0.5, "t": 0.1}.get(period, 1.0)
        factor = (zlib.crc32(f"{album.album_id}:{period}".encode()) % 1000 + 1) / 1000
        return int(album.views * share * factor)

    def ranking(self, period: str = "", category: str = "0", order: str = "mv") -> list[str]:
        """Album ids in the order ``/categories/filter`` lists them (all pages)."""
        albums = [a for a in list(self.albums.values()) if category in ("0", "") or a.category == category]
        return [a.album_id for a in self._sort(albums, order, period)]

    def search_ids(self, query: str, main_tag: int = 0, order: str = "mr") -> list[str]:
        """Album ids ``/search`` lists for a text query (all pages)."""
        terms = [t.lstrip("+").casefold() for t in query.split() if t.lstrip("+")]

        def fields(a: FakeAlbum) -> list[str]:
            return {
                1: a.works,
                2: a.authors,
                3: a.tags,
                4: a.actors,
            }.get(main_tag, [a.name, a.description, *a.tags, *a.authors, *a.works, *a.actors])

        found = []
        for a in list(self.albums.values()):
            hay = [f.casefold() for f in fields(a)]
            if terms and all(any(t in h for h in hay) for t in terms):
                found.append(a)
        return [a.album_id for a in self._sort(found, order, "")]

    def _sort(self, albums: list[FakeAlbum], order: str, period: str) -> list[FakeAlbum]:
        base = (order or "mr").split("_")[0]
        if base == "mv":
            key = lambda a: (self.period_views(a, period), int(a.album_id))  # noqa: E731
        elif base == "mp":
            key = lambda a: (a.total_pages, int(a.album_id))  # noqa: E731
        elif base == "tf":
            key = lambda a: (a.likes, int(a.album_id))  # noqa: E731
        else:  # "mr", latest first
            key = lambda a: (a.addtime, int(a.album_id))  # noqa: E731
        return sorted(albums, key=key, reverse=True)

    # ---- request handling ----------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        is_media = path.startswith("/media/")

        with self._lock:
            self._hits[path] = self._hits.get(path, 0) + 1
            delay = 0.0
            best = -1
            for prefix, seconds in self._latency.items():
                if path.startswith(prefix) and len(prefix) > best:
                    best, delay = len(prefix), seconds
            fault = None
            for f in self._faults:
                if path.startswith(f.prefix) and (f.remaining is None or f.remaining > 0):
                    if f.remaining is not None:
                        f.remaining -= 1
                    fault = f
                    break
            cloudflare = self._cloudflare and not is_media
            image_fail = None
            if fault is None and not cloudflare and path.startswith("/media/photos/") \
                    and self._images_ok_left is not None:
                if self._images_ok_left > 0:
                    self._images_ok_left -= 1
                else:
                    image_fail = self._images_fail_status

        if delay:
            time.sleep(delay)
        if fault is not None:
            return h.respond(fault.status, fault.body, fault.content_type, fault.headers)
        if cloudflare:
            return h.respond(403, _CLOUDFLARE_PAGE, "text/html; charset=UTF-8",
                             [("cf-mitigated", "challenge"), ("CF-RAY", "8f2a1b3c4d5e6f70-HKG"),
                              ("Cache-Control", "private, max-age=0, no-store, no-cache")])
        if image_fail is not None:
            return h.respond(image_fail, b"fake image failure", "text/plain")

        try:
            if is_media:
                return self._media(h, path)
            return self._api(h, path, query)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as e:  # a bug in the double: answer 500 instead of hanging the client
            return h.respond(500, f"jm double error: {type(e).__name__}: {e}".encode(), "text/plain")

    def _media(self, h: _Handler, path: str) -> None:
        m = _PHOTO_PATH.match(path)
        if m:
            pid, number, ext = m.group(1), int(m.group(2)), m.group(3)
            found = self._find_chapter(pid)
            if found is None or ext != found[1].ext or not 1 <= number <= found[1].pages:
                return h.respond(404, b"Not Found", "text/plain")
            media = {"jpg": "image/jpeg", "png": "image/png"}.get(ext, f"image/{ext}")
            return h.respond(200, self.served_bytes(pid, number), media,
                             [("Cache-Control", "max-age=2592000"), ("Accept-Ranges", "bytes")])
        m = _COVER_PATH.match(path)
        if m:
            aid, size = m.group(1), m.group(2) or ""
            if aid not in self.albums:
                return h.respond(404, b"Not Found", "text/plain")
            return h.respond(200, self.cover_bytes(aid, size), "image/jpeg")
        return h.respond(404, b"Not Found", "text/plain")

    # -- API --

    def _api(self, h: _Handler, path: str, query: dict[str, str]) -> None:
        tokenparam = h.headers.get("tokenparam", "")
        token = h.headers.get("token", "")
        ts, _, _ver = tokenparam.partition(",")
        secrets = (APP_SECRET, CONTENT_SECRET) if path == "/chapter_view_template" else (APP_SECRET,)
        if not ts or not any(token == md5hex(f"{ts}{s}") for s in secrets):
            body = json.dumps({"code": 400, "data": [], "errorMsg": "Not legal."}).encode()
            return h.respond(400, body, "application/json; charset=UTF-8")

        if path == "/chapter_view_template":
            return h.respond(200, self._view_template(query.get("id", "")).encode("utf-8"),
                             "text/html; charset=UTF-8")

        extra_headers: list[tuple[str, str]] = []
        if path == "/setting":
            data = self._setting()
            extra_headers = [
                ("Set-Cookie", "ipcountry=US; path=/"),
                ("Set-Cookie", f"AVS={md5hex(ts)[:26]}; path=/; HttpOnly"),
            ]
        elif path == "/album":
            data = self._album(query.get("id", ""))
        elif path == "/chapter":
            data = self._chapter(query.get("id", ""))
        elif path == "/search":
            data = self._search(query)
        elif path == "/categories/filter":
            data = self._categories(query)
        elif path == "/forum":
            data = self._forum(query)
        elif path in ("/login", "/favorite"):
            if path == "/login":
                status, account_data, extra_headers = self.accounts.login(h.body)
                message = WRONG_PASSWORD
            else:
                status, account_data = self.accounts.favorites(h.headers.get("Cookie", ""), query)
                message = LOGIN_REQUIRED
            if account_data is None:
                body = json.dumps({"code": status, "data": [], "errorMsg": message}, ensure_ascii=False).encode()
                return h.respond(status, body, "application/json; charset=UTF-8")
            data = account_data
        else:
            body = json.dumps({"code": 404, "data": [], "errorMsg": "Not found."}).encode()
            return h.respond(404, body, "application/json; charset=UTF-8")

        body = json.dumps({"code": 200, "data": encrypt_data(data, ts)}).encode()
        return h.respond(200, body, "application/json; charset=UTF-8", extra_headers)

    @staticmethod
    def _setting() -> dict:
        return {
            "logo_path": "/media/logo/new_logo.png",
            "main_web_host": "18comic.vip",
            "img_host": "",
            "base_url": "",
            "is_cn": 0,
            "cn_base_url": "",
            "version": APP_VERSION,
            "test_version": APP_VERSION,
            "store_link": "",
            "ios_version": APP_VERSION,
            "ios_test_version": APP_VERSION,
            "ios_store_link": "",
            "ad_cache_version": 1_700_000_000,
            "bundle_url": "",
            "is_hot_update": False,
            "api_banner_path": "",
            "version_info": "",
            "app_shunts": [],
            "download_url": "",
            "app_landing_page": "",
            "float_ad": False,
            "jm3_version": APP_VERSION,
            "jm3_download_url": "",
        }

    @staticmethod
    def _view_template(photo_id: str) -> str:
        return (
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>chapter</title></head><body>\n"
            "<script>\n"
            f"var aid = {photo_id or 0};\n"
            f"var scramble_id = {SCRAMBLE_ID};\n"
            "var speed = '';\n"
            "var readmode = \"read-by-full\";\n"
            "var page_initial = '0';\n"
            "</script>\n"
            "<div class=\"panel-body\"></div></body></html>\n"
        )

    def _list_item(self, a: FakeAlbum) -> dict:
        cat_id, cat_title = CATEGORIES.get(a.category, ("0", a.category))
        sub = SUB_CATEGORIES.get(a.category_sub) if a.category_sub else None
        return {
            "id": a.album_id,
            "author": ", ".join(a.authors),
            "description": a.description,
            "name": a.name,
            "image": "",
            "category": {"id": cat_id, "title": cat_title},
            "category_sub": {"id": sub[0], "title": sub[1]} if sub else {"id": None, "title": None},
            "liked": False,
            "is_favorite": False,
            "update_at": a.addtime,
        }

    @staticmethod
    def _missing_album(jmid: str) -> dict:
        # what the API answers for an id it will not show (unknown, or needs a login):
        # an album-shaped object whose fields are null; jmcomic checks ``name is None``
        return {
            "id": None, "name": None, "addtime": None, "description": None, "total_views": None,
            "likes": None, "images": [], "series": [], "series_id": None, "comment_total": None,
            "author": [], "tags": [], "works": [], "actors": [], "related_list": None,
            "liked": False, "is_favorite": False, "is_aids": False, "total_photos": None,
        }

    def _series(self, a: FakeAlbum) -> list[dict]:
        if a.is_single_chapter:
            return []
        return [{"id": ch.photo_id, "name": ch.title, "sort": str(ch.sort)} for ch in a.chapters]

    def _album(self, jmid: str) -> dict:
        album = self.albums.get(jmid)
        requested_id = jmid
        if album is None:
            # the id of a (non-first) chapter: the site answers with series_id = the album,
            # and jmcomic re-requests that album
            found = self._find_chapter(jmid)
            if found is None:
                return self._missing_album(jmid)
            album = found[0]
        if album.login_only:
            return self._missing_album(jmid)
        related = [self._related(o) for o in list(self.albums.values())
                   if o.album_id != album.album_id and not o.login_only][:5]
        first = album.chapters[0] if album.chapters else None
        return {
            "id": int(requested_id),
            "name": album.name,
            "author": list(album.authors),
            "images": first.image_names() if first else [],
            "description": album.description,
            "total_views": str(album.views),
            "likes": str(album.likes),
            "series": self._series(album),
            "series_id": "0" if requested_id == album.album_id else album.album_id,
            "comment_total": str(album.comment_total),
            "tags": list(album.tags),
            "works": list(album.works),
            "actors": list(album.actors),
            "related_list": related,
            "liked": False,
            "is_favorite": False,
            "is_aids": False,
            "price": "",
            "purchased": "",
            "total_photos": str(album.total_pages),
            "addtime": str(album.addtime),
        }

    @staticmethod
    def _related(a: FakeAlbum) -> dict:
        return {"id": a.album_id, "author": ", ".join(a.authors), "description": a.description,
                "name": a.name, "image": ""}

    def _chapter(self, jmid: str) -> dict:
        found = self._find_chapter(jmid)
        if found is None or found[0].login_only:
            return {"id": None, "name": None, "series": [], "series_id": None, "tags": "",
                    "images": [], "addtime": None, "is_favorite": False, "liked": False}
        album, ch = found
        return {
            "id": int(ch.photo_id),
            "series": self._series(album),
            "tags": " ".join(album.tags),
            "name": album.name if album.is_single_chapter else ch.title,
            "images": ch.image_names(),
            "addtime": str(album.addtime),
            "series_id": "0" if album.is_single_chapter else album.album_id,
            "is_favorite": False,
            "liked": False,
        }

    def _search(self, q: dict[str, str]) -> dict:
        text = q.get("search_query", "").strip()
        m = re.fullmatch(r"(?i)(?:jm)?(\d+)", text)
        if m and m.group(1) in self.albums:
            return {"search_query": text, "total": 1, "redirect_aid": m.group(1), "content": []}
        try:
            main_tag = int(q.get("main_tag") or 0)
        except ValueError:
            main_tag = 0
        ids = self.search_ids(text, main_tag, q.get("o", ""))
        page = self._page_number(q)
        chosen = ids[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        return {
            "search_query": text,
            # as on the site: a string normally, null when nothing matched
            "total": str(len(ids)) if ids else None,
            "content": [self._list_item(self.albums[i]) for i in chosen],
        }

    COMMENTS_PER_PAGE = 10  # top-level comments per /forum page, as on the API

    def comments_of(self, album_id: str) -> list[dict]:
        """The album's top-level comments as the API sends them (newest first), replies nested.

        ``comment_total`` of the album says how many there are. Comment 1 spans two lines
        (``<br>``) with an HTML entity, comment 2 is a spoiler with a reply that has its own reply.
        """
        album = self.albums.get(str(album_id))
        if album is None or album.login_only:
            return []

        def item(cid: str, parent: str, n: int, content: str, spoiler: bool = False,
                 replys: list[dict] | None = None) -> dict:
            return {
                "AID": album.album_id, "BID": "", "CID": cid, "UID": str(5000 + n),
                "username": f"reader{n}", "nickname": f"Reader {n}", "likes": str(n % 7),
                "gender": "Male", "update_at": "0", "addtime": f"Nov {1 + n % 28}, 2026",
                "parent_CID": parent, "expinfo": {"level_name": "Lv 1", "level": 1},
                "name": album.name, "content": content, "photo": "nopic-Male.gif?v=0",
                "spoiler": "2" if spoiler else "1", "replys": replys or [],
            }

        out = []
        for n in range(1, album.comment_total + 1):
            cid = f"{album.album_id}{n:04d}"
            if n == 1:
                out.append(item(cid, "0", n, "<p>First line<br>second line &amp; more</p>"))
            elif n == 2:
                inner = item(f"{cid}02", f"{cid}01", 102, "a reply to the reply")
                reply = item(f"{cid}01", cid, 101, "I agree<br/>completely", replys=[inner])
                out.append(item(cid, "0", n, "The ending is a twist", spoiler=True, replys=[reply]))
            else:
                out.append(item(cid, "0", n, f"Comment number {n} on {album.name}"))
        return out

    def _forum(self, q: dict[str, str]) -> dict:
        comments = self.comments_of(q.get("aid", ""))
        page = self._page_number(q)
        size = self.COMMENTS_PER_PAGE
        # ``total`` counts top-level comments and comes as a string, as on the site
        return {"list": comments[(page - 1) * size: page * size], "total": str(len(comments))}

    def _categories(self, q: dict[str, str]) -> dict:
        o = q.get("o", "") or "mr"
        base, _, period = o.partition("_")
        ids = self.ranking(period, q.get("c", "0") or "0", base)
        page = self._page_number(q)
        chosen = ids[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        # as on the site: this endpoint's total is a number
        return {"total": len(ids), "content": [self._list_item(self.albums[i]) for i in chosen]}

    @staticmethod
    def _page_number(q: dict[str, str]) -> int:
        try:
            return max(1, int(q.get("page") or 1))
        except ValueError:
            return 1


# --------------------------------------------------------------------------------------------
# jmcomic configuration
# --------------------------------------------------------------------------------------------


def configure_jmcomic_for(double: JmDouble) -> None:
    """Point jmcomic's module globals at ``double`` and drop jmcomic's global caches.

    Call it after ``double.start()`` and before creating any jmcomic client or option (the
    default option copies ``DEFAULT_PROXIES`` when it is built). Safe to call again for
    another double.
    """
    import asyncio

    from jmcomic import JmMagicConstants, JmModuleConfig

    host = double.host
    if not host:
        raise RuntimeError("start the double before configuring jmcomic for it")
    cfg = JmModuleConfig
    cfg.PROT = "http://"  # URLs are PROT + domain + path, read at call time
    cfg.DOMAIN_API_LIST = [host]
    cfg.DOMAIN_IMAGE_LIST = [host]  # page images and covers
    cfg.DOMAIN_HTML_LIST = [host]
    cfg.DOMAIN_HTML = host  # field cache of get_html_domain(); avoids a network look-up
    cfg.FLAG_API_CLIENT_AUTO_UPDATE_DOMAIN = False
    cfg.DOMAIN_API_UPDATED_LIST = []  # "already looked up, nothing new"
    cfg.API_URL_DOMAIN_SERVER_LIST = []  # never ask the remote domain servers
    # these two were built with https:// at import; only used to discover HTML domains
    cfg.JM_REDIRECT_URL = f"http://{host}/jm-redirect"
    cfg.JM_PUB_URL = f"http://{host}"
    cfg.DEFAULT_PROXIES = {}  # read from the environment at import, ignores NO_PROXY
    cfg.APP_COOKIES = None  # field cache of the /setting cookies
    cfg.SCRAMBLE_CACHE.clear()  # photo/album id -> scramble id
    # Referer of image requests, baked with https:// and a real domain at import (cosmetic)
    cfg.APP_HEADERS_IMAGE = {**cfg.APP_HEADERS_IMAGE, "Referer": f"http://{host}"}
    # /setting may bump this global if a server reports a newer version: undo any bump
    JmMagicConstants.APP_VERSION = APP_VERSION

    # async client: class-level state from an earlier test (an asyncio.Lock tied to a loop)
    try:
        from jmcomic.jm_async_client import AsyncJmApiClient
    except Exception:  # pragma: no cover - only if jmcomic changes
        return
    AsyncJmApiClient._setup_lock = asyncio.Lock()
    AsyncJmApiClient._has_setup_domain = False


def jm_option_dict(double: JmDouble, base_dir: str, *, retry_times: int = 0, image_threads: int = 4,
                   photo_threads: int = 2, suffix: str | None = None, rule: str = "Bd_Aid_Pindex",
                   log: bool = False) -> dict:
    """A ``JmOption.construct`` dict that talks to ``double`` only (no proxies, no cache)."""
    return {
        "log": log,
        "dir_rule": {"rule": rule, "base_dir": str(base_dir)},
        "download": {
            "cache": True,
            "image": {"decode": True, "suffix": suffix},
            "threading": {"image": image_threads, "photo": photo_threads},
        },
        "client": {
            "impl": "api",
            "domain": [double.host],
            "retry_times": retry_times,
            # an empty proxy tells libcurl "no proxy", overriding http_proxy in the environment
            "postman": {"meta_data": {"proxies": {"all": ""}}},
        },
    }
