"""A loopback Gelbooru that speaks the real ``dapi`` wire format, quirks and faults included.

    with GelbooruDouble(make_posts(30)) as gb:
        site = build_site("gelbooru", settings_for(gb))

Posts are raw Gelbooru dicts (see tests/fakes/booru.py). ``file_url``/``preview_url`` are filled in
with this server's address unless a post sets them. A post with ``_raw: True`` is served exactly as
stored (to test missing fields). Without ``json=1`` post lists come as XML, as on Gelbooru.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import quoteattr

from tests.fakes.booru import (  # noqa: F401 - re-exported: what tests build posts with
    CLOUDFLARE_PAGE,
    DEFAULT_TAG_TYPES,
    DEFAULT_TAGS_POOL,
    RATINGS,
    BooruDouble,
    Handler,
    escape_tag,
    make_image,
    make_post,
    make_posts,
    unescape_tag,
)


def xml_posts(posts: list[dict[str, Any]], count: int, offset: int) -> bytes:
    """A post list as ``dapi`` serves it without ``json=1``: ``<posts count offset><post a=".."/>``."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<posts count="{count}" offset="{offset}">']
    for post in posts:
        lines.append("<post " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in post.items()) + "/>")
    lines.append("</posts>")
    return "\n".join(lines).encode()


class GelbooruDouble(BooruDouble):
    max_limit = 100

    def __init__(
        self,
        posts: list[dict[str, Any]] | None = None,
        api_key: str = "testkey",
        user_id: str = "12345",
        *,
        depth_limit: int = 20_000,
        require_credentials: bool = True,
        require_referer: bool = True,
        tag_types: dict[str, int] | None = None,
    ) -> None:
        super().__init__(posts, depth_limit=depth_limit, tag_types=tag_types, require_referer=require_referer)
        self.api_key, self.user_id = api_key, user_id
        self.require_credentials = require_credentials
        self.single_object = False  # one result comes as an object, not a list
        self.ints_as_strings = False
        self.xml_reason: str | None = None

    def xml_error(self, reason: str | None = "Search error: API limited due to abuse.") -> None:
        self.xml_reason = reason

    def classify(self, path: str, query: dict[str, list[str]]) -> tuple[str, str]:
        if path.startswith("/images/"):
            return "image", path.rsplit("/", 1)[-1].split(".")[0]
        if path.startswith("/thumbnails/"):
            return "thumbnail", path.rsplit("/", 1)[-1].removeprefix("thumbnail_").split(".")[0]
        if path == "/index.php":
            return ("tag" if query.get("s", [""])[0] == "tag" else "post"), ""
        return "other", ""

    def refuse(self, h: Handler, query: dict[str, list[str]]) -> bool:
        """Credentials and the daily-limit refusal; True when the request was answered."""
        def arg(name: str) -> str:
            return query.get(name, [""])[-1]

        if self.require_credentials and (
            arg("api_key") != self.api_key or arg("user_id") != self.user_id or not arg("user_id").isdigit()
        ):
            h.send(401, b"Unauthorized", "text/html")
            return True
        if self.xml_reason is not None:
            body = f'<?xml version="1.0" encoding="UTF-8"?><response success="false" reason="{self.xml_reason}"/>'
            h.send(200, body.encode(), "text/xml")
            return True
        if query.get("page") != ["dapi"] or arg("q") != "index":
            h.send(200, b"<html>not the API</html>", "text/html")
            return True
        return False

    def page_of(self, query: dict[str, list[str]]) -> tuple[list[dict[str, Any]], int, int, int]:
        """(posts of the page, total count, offset, limit)."""
        limit = min(self.max_limit, max(0, int(query.get("limit", ["100"])[-1] or 100)))  # 0: the count alone
        pid = max(0, int(query.get("pid", ["0"])[-1] or 0))
        matches = self.search(query.get("tags", [""])[-1])
        offset = pid * limit
        page = [] if offset >= self.depth_limit else matches[offset : offset + limit]
        return page, len(matches), offset, limit

    def serve_api(self, h: Handler, kind: str, path: str, query: dict[str, list[str]]) -> None:
        if self.refuse(h, query):
            return
        if kind == "tag":
            names = query.get("names", [""])[-1].split()
            tags = [
                {"id": i + 1, "name": escape_tag(n), "count": 100, "type": self.tag_types[n], "ambiguous": 0}
                for i, n in enumerate(names) if n in self.tag_types
            ]
            doc: dict[str, Any] = {"@attributes": {"limit": 100, "offset": 0, "count": len(tags)}}
            if tags:
                doc["tag"] = tags
            h.send(200, json.dumps(doc).encode())
            return
        page, count, offset, limit = self.page_of(query)
        served = [self.render(p) for p in page]
        if "json" not in query:
            h.send(200, xml_posts(served, count, offset), "text/xml; charset=utf-8")
            return
        doc = {"@attributes": {"limit": limit, "offset": offset, "count": count}}
        if served:
            doc["post"] = served[0] if self.single_object and len(served) == 1 else served
        h.send(200, json.dumps(doc).encode())

    def render(self, post: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in post.items() if not k.startswith("_")}
        if post.get("_raw"):
            return out
        name = f"{post['directory']}/{post['md5']}.{post.get('_ext', 'png')}"
        out.setdefault("file_url", post.get("_file_url") or f"{self.base_url}/images/{name}")
        # Thumbnails are always JPEG, named as on the real image hosts.
        out.setdefault("preview_url", f"{self.base_url}/thumbnails/{post['directory']}/thumbnail_{post['md5']}.jpg")
        if self.ints_as_strings:
            out = {k: str(v) if isinstance(v, int) else v for k, v in out.items()}
        out.update(post.get("_wire") or {})
        return out
