"""Gelbooru 0.2 sites (safebooru.org, and rule34-style sites): the same ``dapi`` as Gelbooru, older.

Quirks: posts come as a bare JSON array (no envelope, no count) and as an empty body when nothing
matches; there is no ``file_url`` (it is ``<root>/images/<directory>/<image>``); ``hash`` is the md5;
ratings are words (``safe`` is general); the tag API answers XML only, even with ``json=1``.
Credentials are optional: sent when configured (some instances want them).
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from app.errors import UpstreamError
from app.sources.booru.base import Post, PostPage
from app.sources.booru.gelbooru import GelbooruSite
from app.sources.booru.values import as_int, as_list, as_md5, as_str

_SAFE_NAME = re.compile(r"[^/?#\\]+")


class GelbooruV02Site(GelbooruSite):
    page_limit = 1000

    def parse_post(self, raw: Mapping[str, Any]) -> Post:
        post = super().parse_post(raw)
        post.md5 = post.md5 or as_md5(raw.get("hash"))
        directory, image = as_str(raw.get("directory")).strip("/"), as_str(raw.get("image"))
        usable = bool(directory) and all(_SAFE_NAME.fullmatch(part) for part in [*directory.split("/"), image])
        # Built only when the site sent no file_url: one it sent that is unusable stays unusable.
        if not post.file_url and usable and not as_str(raw.get("file_url")).strip():
            post.file_url = f"{self.root}/images/{quote(directory)}/{quote(image)}"
        if not post.preview_url and usable:
            stem = image.rsplit(".", 1)[0]
            post.preview_url = f"{self.root}/thumbnails/{quote(directory)}/thumbnail_{quote(stem)}.jpg"
        return post

    def parse_page(self, data: Any) -> PostPage:
        if isinstance(data, dict):  # a newer instance with Gelbooru's envelope; {} for an empty body
            return super().parse_page(data) if "post" in data or "@attributes" in data else PostPage(None, [])
        posts = [self.parse_post(p) for p in as_list(data) if isinstance(p, Mapping)]
        return PostPage(count=None, posts=posts)

    async def tag_types(self, names: list[str]) -> list[tuple[str, int]]:
        self.check_credentials()
        response = await self.http.get("/index.php", self.query({"s": "tag", "q": "index", "names": " ".join(names)}))
        self.refuse_errors(response)
        text = response.text
        if not text.strip():
            return []
        if "<!DOCTYPE" in text[:1000].upper() or "<!ENTITY" in text.upper():
            raise UpstreamError(f"{self.title} answered the tag look-up with something that is not tag data.")
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise UpstreamError(f"{self.title} answered the tag look-up with something that is not tag data.") from exc
        return [(html.unescape(as_str(tag.get("name"))), as_int(tag.get("type"), 0))
                for tag in root.iter("tag") if tag.get("name")]
