"""What every loopback booru double shares: posts, the server, faults, counters and image serving.

Posts are stored in one neutral shape, Gelbooru's raw dict (HTML-escaped tag string, ``rating`` one
of general/sensitive/questionable/explicit); each family's double renders them in its own wire
format. Keys starting with ``_`` are private: ``_data`` (the image bytes, whose md5 is the post's md5),
``_ext``, ``_file_url`` (serve this as the file URL: a foreign host, ``//host``, ``hostile_urls()``...), ``_restricted``
(Danbooru: no md5 or file), ``_deleted`` (Moebooru: no file), ``_wire`` (fields merged into the
rendered post as they are: hostile values).
"""

from __future__ import annotations

import hashlib
import html
import io
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

DEFAULT_TAGS_POOL = (
    "long_hair", "smile", "solo", "grabbing_another's_arm", "hifumi_(blue_archive)", "^_^",
    "blue_archive", "highres", "cat_ears", "tom_&_jerry", "artist_name", "open_mouth",
)
DEFAULT_TAG_TYPES = {
    "1girl": 0, "long_hair": 0, "smile": 0, "solo": 0, "grabbing_another's_arm": 0, "^_^": 0, "open_mouth": 0,
    "cat_ears": 0, "hifumi_(blue_archive)": 4, "blue_archive": 3, "tom_&_jerry": 3, "highres": 5,
    "artist_name": 1,
}
API_KINDS = ("post", "tag", "count", "pool")
RATINGS = ("general", "sensitive", "questionable", "explicit")
LIBRARY_AGENTS = ("python-httpx", "python-requests", "aiohttp", "curl/", "python-urllib", "wget/", "go-http-client")
CLOUDFLARE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    b"<h1>Checking your browser</h1><p>cf-ray: 8a1b2c3d4e5f</p><p>Performance &amp; security by Cloudflare</p>"
    b"</body></html>"
)


def escape_tag(tag: str) -> str:
    """Gelbooru's escaping: ``'`` as ``&#039;``, not Python's ``&#x27;``."""
    return (
        tag.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#039;")
    )


def unescape_tag(tag: str) -> str:
    return html.unescape(tag)


def plain_tags(post: dict[str, Any]) -> list[str]:
    return [unescape_tag(t) for t in str(post.get("tags", "")).split()]


def make_image(seed: int, *, fmt: str = "png", size: tuple[int, int] | None = None, image_bytes: int = 0) -> bytes:
    """Random pixels (unique per seed, incompressible): ``image_bytes`` picks a size of about that many bytes."""
    if size is None:
        side = max(8, int((image_bytes / 3) ** 0.5)) if image_bytes else 8
        size = (side, side)
    pixels = random.Random(seed).randbytes(size[0] * size[1] * 3)
    img = Image.frombytes("RGB", size, pixels)
    buf = io.BytesIO()
    if fmt in ("jpg", "jpeg"):
        img.save(buf, "JPEG", quality=92)
    else:
        img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def make_post(
    post_id: int,
    tags: Iterable[str],
    *,
    data: bytes | None = None,
    ext: str = "png",
    rating: str = "general",
    score: int = 0,
    size: tuple[int, int] | None = None,
    source: str = "",
    image_bytes: int = 0,
) -> dict[str, Any]:
    if data is None:
        data = make_image(post_id, fmt=ext, size=size, image_bytes=image_bytes)
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
    md5 = hashlib.md5(data).hexdigest()
    return {
        "id": post_id,
        "created_at": "Sat Sep 26 03:51:09 -0500 2026",
        "score": score,
        "width": width,
        "height": height,
        "md5": md5,
        "directory": f"{md5[:2]}/{md5[2:4]}",
        "image": f"{md5}.{ext}",
        "rating": rating,
        "source": source,
        "change": 1700000000 + post_id,
        "owner": "danbooru",
        "creator_id": 6498,
        "parent_id": 0,
        "sample": 0,
        "preview_height": 150,
        "preview_width": 150,
        "tags": " ".join(escape_tag(t) for t in sorted(set(tags))),
        "title": "",
        "has_notes": "false",
        "has_comments": "false",
        "sample_url": "",
        "sample_height": 0,
        "sample_width": 0,
        "status": "active",
        "post_locked": 0,
        "has_children": "false",
        "_data": data,
        "_ext": ext,
    }


def make_posts(
    n: int,
    tags_pool: Iterable[str] = DEFAULT_TAGS_POOL,
    *,
    base_tags: Iterable[str] = ("1girl",),
    start_id: int = 1000,
    image_bytes: int = 0,
    ext: str = "png",
) -> list[dict[str, Any]]:
    """``n`` posts with ids ``start_id..start_id+n-1``; every post has ``base_tags`` plus a few from the pool;
    ratings cycle through general, sensitive, questionable, explicit and score equals the index."""
    pool = list(tags_pool)
    posts = []
    for i in range(n):
        chosen = [pool[(i + k) % len(pool)] for k in range(min(4, len(pool)))] if pool else []
        posts.append(
            make_post(
                start_id + i, [*base_tags, *chosen], rating=RATINGS[i % 4], score=i, image_bytes=image_bytes,
                ext=ext if ext != "mixed" else ("png", "jpg")[i % 2],
            )
        )
    return posts


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, double: BooruDouble) -> None:
        self.double = double
        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet: clients hang up mid-body in tests
        pass

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.double._handle(self)

    def send(self, status: int, body: bytes, ctype: str = "application/json", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class BooruDouble:
    """The parts every family shares. A subclass says which requests are which (``classify``) and
    answers the API ones (``serve_api``); images and faults are served here."""

    refuse_library_agents = False  # Danbooru's Cloudflare: 403 for HTTP libraries' default User-Agents

    def __init__(self, posts: list[dict[str, Any]] | None = None, *, depth_limit: int = 20_000,
                 tag_types: dict[str, int] | None = None, require_referer: bool = False) -> None:
        self.posts: list[dict[str, Any]] = list(posts or [])
        # Pools (Danbooru, Moebooru): id -> {"name", "description", "category", "post_ids" in page order}.
        self.pools: dict[int, dict[str, Any]] = {}
        self.depth_limit = depth_limit
        self.require_referer = require_referer
        self.tag_types = dict(DEFAULT_TAG_TYPES if tag_types is None else tag_types)
        self.latency = 0.0
        self.cloudflare_mode = False
        self.image_stall: tuple[int, float] | None = None  # (bytes, seconds): send that much, then pause
        self.redirects: dict[str, str] = {}  # request path -> Location (a 302)
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self._hits: Counter[str] = Counter()
        self._faults: dict[str, deque[tuple[int, dict[str, str], bytes] | None]] = {}
        self._mangle: dict[str, list[Any]] = {}  # md5 -> [kind, times or None]
        self._lock = threading.Lock()
        self._server: _Server | None = None

    # --- lifecycle ---

    def start(self) -> Any:
        self._server = _Server(self)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the double first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hostile_urls(self) -> list[str]:
        """File URLs a real site has been seen to send that no HTTP client can fetch, aimed at this
        double (its port): octal and fullwidth hosts, a tab in the host, two ports, a bad punycode
        label, a fullwidth port. Put one in a post's ``_file_url`` (or ``preview_url`` in ``_wire``)."""
        port = self.base_url.rsplit(":", 1)[1]
        return [
            f"http://0177.0.0.1:{port}/images/octal.png",
            f"http://\uff11\uff12\uff17.0.0.1:{port}/images/fullwidth.png",
            f"http://127.0.0.1\t:{port}/images/tab.png",
            "http://a:1:2/x",
            "https://xn--a-.example/x.png",
            "http://127.0.0.1:" + "".join(chr(0xFF10 + int(d)) for d in port) + "/images/fullwidth-port.png",
        ]

    # --- faults and counters ---

    def fail_next(self, n: int = 1, status: int = 500, kind: str = "api", headers: dict[str, str] | None = None,
                  body: bytes = b"server error") -> None:
        """The next ``n`` requests of ``kind`` (post, tag, api = both, image, any) answer ``status`` and ``body``."""
        with self._lock:
            self._faults.setdefault(kind, deque()).extend([(status, headers or {}, body)] * n)

    def clear_faults(self) -> None:
        """The site works again: faults still queued are dropped."""
        with self._lock:
            self._faults.clear()

    def rate_limit_next(self, n: int = 1, retry_after: float = 1, kind: str = "api") -> None:
        with self._lock:
            entry = (429, {"Retry-After": f"{retry_after:g}"}, b"Too Many Requests")
            self._faults.setdefault(kind, deque()).extend([entry] * n)

    def drop_next(self, n: int = 1, kind: str = "api") -> None:
        """Close the connection without an answer (a network error for the client)."""
        with self._lock:
            self._faults.setdefault(kind, deque()).extend([None] * n)

    def corrupt(self, md5: str, times: int | None = 1) -> None:
        """Serve bytes that do not match ``md5`` (``times=None``: always)."""
        self._mangle[md5] = ["corrupt", times]

    def truncate(self, md5: str, times: int | None = None) -> None:
        """Serve only the first half of the image."""
        self._mangle[md5] = ["truncate", times]

    def cloudflare(self, on: bool = True) -> None:
        self.cloudflare_mode = on

    def hits(self, key: str = "all") -> int:
        """Requests seen for a kind (post, tag, api, image, all), a path, or an image md5."""
        with self._lock:
            return self._hits[key]

    def reset_hits(self) -> None:
        with self._lock:
            self._hits.clear()
            self.requests.clear()

    def add_pool(self, pool_id: int, name: str, post_ids: list[int], *, description: str = "",
                 category: str = "series") -> None:
        """A pool: an ordered list of post ids (its page order, not id order)."""
        with self._lock:
            self.pools[pool_id] = {"name": name, "description": description, "category": category,
                                   "post_ids": list(post_ids)}

    def pool_posts(self, pool_id: int) -> list[dict[str, Any]]:
        """The pool's posts that still exist, in pool order."""
        by_id = {int(p["id"]): p for p in self.posts}
        pool = self.pools.get(pool_id)
        return [by_id[i] for i in (pool or {}).get("post_ids", []) if i in by_id]

    def add_posts(self, posts: list[dict[str, Any]]) -> None:
        """New posts appear on the site (subscriptions look for these)."""
        with self._lock:
            self.posts.extend(posts)

    def post_by_md5(self, md5: str) -> dict[str, Any]:
        return next(p for p in self.posts if p.get("md5") == md5)

    # --- serving ---

    def classify(self, path: str, query: dict[str, list[str]]) -> tuple[str, str]:
        """(kind: post, tag, count, image or other; image md5 or "")."""
        raise NotImplementedError

    def serve_api(self, h: Handler, kind: str, path: str, query: dict[str, list[str]]) -> None:
        raise NotImplementedError

    def _take_fault(self, kind: str) -> tuple[bool, tuple[int, dict[str, str], bytes] | None]:
        with self._lock:
            for key in (kind, "api" if kind in API_KINDS else "", "any"):
                queue = self._faults.get(key)
                if queue:
                    return True, queue.popleft()
        return False, None

    def _handle(self, h: Handler) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query, keep_blank_values=True)
        kind, md5 = self.classify(url.path, query)
        with self._lock:
            self.requests.append((h.path, query, dict(h.headers.items())))
            self._hits.update(["all", kind, url.path] + (["api"] if kind in API_KINDS else []) + ([md5] if md5 else []))
        if self.latency:
            time.sleep(self.latency)
        agent = h.headers.get("User-Agent", "").lower()
        if self.cloudflare_mode or self.refuse_library_agents and (not agent or agent.startswith(LIBRARY_AGENTS)):
            h.send(403, CLOUDFLARE_PAGE, "text/html; charset=UTF-8", {"Server": "cloudflare", "CF-RAY": "8a1b2c3d4e5f"})
            return
        found, fault = self._take_fault(kind)
        if found:
            if fault is None:
                h.close_connection = True
                return
            status, headers, body = fault
            h.send(status, body, "text/plain", headers)
            return
        if url.path in self.redirects:
            h.send(302, b"", "text/plain", {"Location": self.redirects[url.path]})
        elif kind == "image":
            self.serve_image(h, md5, url.path)
        elif kind == "thumbnail":
            self.serve_thumbnail(h, md5)
        elif kind in API_KINDS:
            self.serve_api(h, kind, url.path, query)
        else:
            h.send(404, b"<html>404 Not Found</html>", "text/html")

    def _image_post(self, h: Handler, md5: str) -> dict[str, Any] | None:
        """The post whose image is asked for, or None once the refusal (hotlink, unknown) is sent."""
        if self.require_referer and not h.headers.get("Referer"):
            h.send(403, b"<html>403 Forbidden: hotlinking</html>", "text/html")
            return None
        post = next((p for p in self.posts if p.get("md5") == md5 and "_data" in p), None)
        if post is None:
            h.send(404, b"<html>404 Not Found</html>", "text/html")
        return post

    def serve_thumbnail(self, h: Handler, md5: str) -> None:
        """The post's image scaled to fit 150 px, as JPEG (what the web page's previews show)."""
        post = self._image_post(h, md5)
        if post is None:
            return
        with Image.open(io.BytesIO(post["_data"])) as img:
            small = img.convert("RGB")
            small.thumbnail((150, 150))
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=80)
        h.send(200, buf.getvalue(), "image/jpeg")

    def serve_image(self, h: Handler, md5: str, path: str) -> None:
        post = self._image_post(h, md5)
        if post is None:
            return
        data: bytes = post["_data"]
        with self._lock:
            mangle = self._mangle.get(md5)
            if mangle is not None:
                if mangle[1] is not None:
                    mangle[1] -= 1
                    if mangle[1] <= 0:
                        del self._mangle[md5]
                if mangle[0] == "truncate":
                    data = data[: len(data) // 2]
                else:
                    middle = len(data) // 2
                    data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]
        ctype = "image/jpeg" if post.get("_ext") in ("jpg", "jpeg") else "image/png"
        if self.image_stall is None:
            h.send(200, data, ctype)
            return
        cut, pause = self.image_stall
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[:cut])
        time.sleep(pause)
        h.wfile.write(data[cut:])

    # --- searching (booru query syntax, the common part) ---

    def search(self, tags: str, *, letters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Posts matching ``tags``, newest first: plain tags, ``-tag``, ``~tag`` (any of), ``*`` wildcards,
        ``id:N``, ``id:<N``, ``id:>N``, ``ordpool:N``/``pool:N`` (pool order), ``md5:``, ``rating:`` (words or,
        with ``letters``, the family's letters), ``order:score``."""
        posts = sorted(self.posts, key=lambda p: -int(p.get("id") or 0))
        any_of: list[str] = []
        for term in tags.split():
            low = term.lower()
            if low.startswith("id:<"):
                limit = int(low[4:])
                posts = [p for p in posts if int(p.get("id") or 0) < limit]
            elif low.startswith("id:") and low[3:].isdigit():  # one post, as a pasted post link asks
                posts = [p for p in posts if int(p.get("id") or 0) == int(low[3:])]
            elif low.startswith("id:>"):
                floor = int(low[4:])
                posts = [p for p in posts if int(p.get("id") or 0) > floor]
            elif low.startswith(("ordpool:", "pool:")):
                # Pool order, whatever the rest says (an expunged post is simply not there).
                wanted = self.pool_posts(int(low.split(":", 1)[1]) if low.split(":", 1)[1].isdigit() else -1)
                keep = {id(p) for p in posts}
                posts = [p for p in wanted if id(p) in keep]
            elif low.startswith("md5:"):
                posts = [p for p in posts if p.get("md5") == low[4:]]
            elif low.startswith("rating:"):
                wanted = (letters or {}).get(low[7:], low[7:])
                posts = [p for p in posts if p.get("rating") == wanted]
            elif low.startswith(("order:score", "sort:score")):
                posts = sorted(posts, key=lambda p: (-int(p.get("score") or 0), -int(p.get("id") or 0)))
            elif low.startswith(("sort:", "order:")):
                continue
            elif low.startswith("~"):
                any_of.append(low[1:])
            elif low.startswith("-"):
                posts = [p for p in posts if not self._has(p, low[1:])]
            else:
                posts = [p for p in posts if self._has(p, low)]
        if any_of:
            posts = [p for p in posts if any(self._has(p, t) for t in any_of)]
        return posts

    @staticmethod
    def _has(post: dict[str, Any], term: str) -> bool:
        tags = set(plain_tags(post))
        return any(fnmatchcase(t, term) for t in tags) if "*" in term else term in tags
