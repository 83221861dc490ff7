"""A loopback Gelbooru 0.2 site (safebooru.org, rule34-style): the old ``dapi``.

Quirks served: a bare JSON array with no count, an empty body (200, zero bytes) when nothing
matches, no ``file_url`` (clients build ``<root>/images/<directory>/<image>``), ``hash`` for the
md5, ``safe`` for a general rating, and a tag API that answers XML even with ``json=1``. Without
``json=1`` posts come as XML with a count (``limit=0``: the count alone), which gallery-dl reads.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import quoteattr

from tests.fakes.booru import Handler, escape_tag
from tests.fakes.gelbooru import GelbooruDouble, xml_posts

V02_RATINGS = {"general": "safe"}  # the old word; the other ratings are served as they are


class GelbooruV02Double(GelbooruDouble):
    max_limit = 1000

    def __init__(self, posts: list[dict[str, Any]] | None = None, *, api_key: str = "", user_id: str = "",
                 require_credentials: bool = False, depth_limit: int = 200_000,
                 tag_types: dict[str, int] | None = None) -> None:
        super().__init__(posts, api_key, user_id, depth_limit=depth_limit, require_credentials=require_credentials,
                         require_referer=False, tag_types=tag_types)

    def serve_api(self, h: Handler, kind: str, path: str, query: dict[str, list[str]]) -> None:
        if self.refuse(h, query):
            return
        if kind == "tag":
            names = query.get("names", [""])[-1].split()
            rows = "".join(
                f'<tag type="{self.tag_types[n]}" count="100" name={quoteattr(escape_tag(n))} ambiguous="false" id="{i + 1}"/>'
                for i, n in enumerate(names) if n in self.tag_types
            )
            h.send(200, f'<?xml version="1.0" encoding="UTF-8"?><tags type="array">{rows}</tags>'.encode(), "text/xml")
            return
        page, count, offset, limit = self.page_of(query)
        if "json" not in query:
            xml = [self.render_xml(p) for p in page] if limit else []
            h.send(200, xml_posts(xml, count, offset), "text/xml; charset=utf-8")
            return
        served = [self.render(p) for p in page] if limit else []
        if not served:
            h.send(200, b"", "application/json")  # nothing matches: an empty body, not []
        else:
            h.send(200, json.dumps(served).encode())

    def render_xml(self, post: dict[str, Any]) -> dict[str, Any]:
        """The XML API's attributes, which (unlike the JSON) carry ``file_url`` and ``md5``."""
        name = f"{post['directory']}/{post['image']}"
        return {
            "height": post["height"], "score": post.get("score"), "file_url": post.get("_file_url") or
            f"{self.base_url}/images/{name}", "parent_id": "", "sample_url": f"{self.base_url}/images/{name}",
            "rating": post["rating"][:1], "tags": f" {post['tags']} ", "id": post["id"], "width": post["width"],
            "change": post.get("change", 0), "md5": post["md5"], "creator_id": 1, "has_children": "false",
            "created_at": post.get("created_at", ""), "status": "active", "source": post.get("source", ""),
            "has_notes": "false", "has_comments": "false",
            "preview_url": f"{self.base_url}/thumbnails/{post['directory']}/thumbnail_{post['md5']}.jpg",
        }

    def render(self, post: dict[str, Any]) -> dict[str, Any]:
        if post.get("_raw"):
            return {k: v for k, v in post.items() if not k.startswith("_")}
        out = {
            "directory": post["directory"], "hash": post["md5"], "height": post["height"], "id": post["id"],
            "image": post["image"], "change": post.get("change", 0), "owner": post.get("owner", ""),
            "parent_id": post.get("parent_id", 0), "rating": V02_RATINGS.get(post["rating"], post["rating"]),
            "sample": False, "sample_height": 0, "sample_width": 0, "score": post.get("score"),
            "tags": post["tags"], "width": post["width"],
        }
        if post.get("_file_url"):
            out["file_url"] = post["_file_url"]
        out.update(post.get("_wire") or {})
        return out
