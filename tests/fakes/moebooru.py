"""A loopback Moebooru site (yande.re, konachan.com): ``post.json``, ``post.xml``, ``tag.json``.

Quirks served: a bare list with no count (``post.xml`` has one), 1-based pages of at most 100,
``created_at`` a unix time, ratings ``s``/``q``/``e``, deleted posts (``status: deleted``) without
``file_url``, file URLs named ``<site> <id> <tags>.<ext>`` (not the md5), a ``jpeg_url`` that is a
re-encode with another md5, and ``tag.json?name=`` matching substrings.
"""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from PIL import Image

from tests.fakes.booru import BooruDouble, Handler, plain_tags

LETTERS = {"general": "s", "sensitive": "q", "questionable": "q", "explicit": "e"}


class MoebooruDouble(BooruDouble):
    def __init__(self, posts: list[dict[str, Any]] | None = None, *, site_name: str = "yande.re",
                 tag_types: dict[str, int] | None = None) -> None:
        super().__init__(posts, tag_types=tag_types)
        self.site_name = site_name

    def classify(self, path: str, query: dict[str, list[str]]) -> tuple[str, str]:
        if path.startswith(("/image/", "/jpeg/", "/sample/")):
            parts = path.split("/")
            return "image", parts[2] if len(parts) > 2 else ""
        if path in ("/post.json", "/post.xml"):
            return "post", ""
        if path == "/tag.json":
            return "tag", ""
        if path in ("/pool.json", "/pool/show.json") or (path.startswith("/pool/show/") and path.endswith(".json")):
            return "pool", ""
        return "other", ""

    def serve_api(self, h: Handler, kind: str, path: str, query: dict[str, list[str]]) -> None:
        if path.startswith("/pool"):
            self.serve_pools(h, path, query)
            return
        if path == "/tag.json":
            needle = query.get("name", [""])[-1]
            found = [{"id": i, "name": n, "count": 10, "type": t, "ambiguous": False}
                     for i, (n, t) in enumerate(sorted(self.tag_types.items())) if needle in n]
            h.send(200, json.dumps(found).encode())
            return
        limit = min(100, max(1, int(query.get("limit", ["40"])[-1] or 40)))
        number = max(1, int(query.get("page", ["1"])[-1] or 1))
        matches = self.search(query.get("tags", [""])[-1], letters={"s": "general", "q": "questionable", "e": "explicit"})
        chosen = [self.render(p) for p in matches[(number - 1) * limit : number * limit]]
        if path == "/post.xml":
            rows = "".join("<post " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in p.items()) + "/>" for p in chosen)
            body = f'<?xml version="1.0" encoding="UTF-8"?><posts count="{len(matches)}" offset="{(number - 1) * limit}">{rows}</posts>'
            h.send(200, body.encode(), "application/xml")
        else:
            h.send(200, json.dumps(chosen).encode())

    def pool_json(self, pool_id: int, *, with_posts: bool) -> dict[str, Any]:
        pool = self.pools[pool_id]
        out: dict[str, Any] = {"id": pool_id, "name": pool["name"], "created_at": "2026-01-02T03:04:05.000Z",
                               "updated_at": "2026-01-02T03:04:05.000Z", "user_id": 1, "is_public": True,
                               "post_count": len(pool["post_ids"]), "description": pool["description"]}
        if with_posts:
            out["posts"] = [self.render(p) for p in self.pool_posts(pool_id)]
        return out

    def serve_pools(self, h: Handler, path: str, query: dict[str, list[str]]) -> None:
        """``/pool/show.json?id=`` (also ``/pool/show/{id}.json``; 404 when unknown) and ``/pool.json?query=``."""
        if path == "/pool.json":
            needle = query.get("query", [""])[-1].lower().replace(" ", "_")
            found = [self.pool_json(i, with_posts=False) for i in sorted(self.pools, reverse=True)
                     if needle in self.pools[i]["name"].lower()]
            h.send(200, json.dumps(found[:20]).encode())
            return
        ident = query.get("id", [""])[-1] if path == "/pool/show.json" else path.split("/")[-1].removesuffix(".json")
        if not ident.isdigit() or int(ident) not in self.pools:
            h.send(404, json.dumps({"success": False, "reason": "not found"}).encode())
            return
        h.send(200, json.dumps(self.pool_json(int(ident), with_posts=True)).encode())

    def render(self, post: dict[str, Any]) -> dict[str, Any]:
        tags = plain_tags(post)
        md5, ext = post["md5"], post.get("_ext", "png")
        name = quote(f"{self.site_name} {post['id']} {' '.join(tags)}"[:150])
        out: dict[str, Any] = {
            "id": post["id"], "tags": " ".join(tags), "created_at": 1_790_000_000 + post["id"], "creator_id": 1,
            "author": "uploader", "change": post.get("change", 0), "source": post.get("source", ""),
            "score": post.get("score", 0), "md5": md5, "file_size": len(post.get("_data", b"")), "file_ext": ext,
            "file_url": post.get("_file_url") or f"{self.base_url}/image/{md5}/{name}.{ext}",
            "preview_url": f"{self.base_url}/data/preview/{md5[:2]}/{md5[2:4]}/{md5}.jpg",
            "sample_url": f"{self.base_url}/sample/{md5}/{name}.jpg",
            "jpeg_url": f"{self.base_url}/jpeg/{md5}/{name}.jpg",
            "rating": LETTERS.get(post["rating"], post["rating"]), "width": post["width"], "height": post["height"],
            "status": "active", "parent_id": None, "has_children": False, "is_shown_in_index": True,
        }
        if post.get("_deleted"):
            out["status"] = "deleted"
            for key in ("file_url", "jpeg_url", "sample_url"):
                del out[key]
        out.update(post.get("_wire") or {})
        return out

    def serve_image(self, h: Handler, md5: str, path: str) -> None:
        if not path.startswith("/jpeg/"):
            super().serve_image(h, md5, path)
            return
        post = next((p for p in self.posts if p.get("md5") == md5 and "_data" in p), None)
        if post is None:
            h.send(404, b"<html>404 Not Found</html>", "text/html")
            return
        with Image.open(io.BytesIO(post["_data"])) as img:  # the site's JPEG re-encode: another md5
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=80)
        h.send(200, buf.getvalue(), "image/jpeg")
