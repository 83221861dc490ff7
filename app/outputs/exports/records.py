"""One dataset image as the exports describe it: file, caption, decoded size, post and tag categories."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.sources.booru.base import Post
from app.sources.captions import CaptionOptions, format_tag

# The order of ``tag_categories`` keys in every export.
CATEGORY_KEYS = ("character", "copyright", "artist", "general", "metadata", "deprecated")


@dataclass(slots=True)
class PostInfo:
    """The post behind an image, and which category each caption item of it belongs to."""

    post_id: int | None
    md5: str
    site: str | None
    rating: str | None
    source: str | None
    score: int | None
    # caption item (as written in a caption) -> category; items not found here count as general
    item_categories: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_post(cls, post: Post, site: str, categories: Mapping[str, str] | None,
                  caption: CaptionOptions | None = None) -> PostInfo:
        categories = categories or post.categories or {}
        items: dict[str, str] = {}
        for options in (CaptionOptions(), caption or CaptionOptions()):
            for tag in post.tags:
                items[format_tag(tag, options)] = categories.get(tag, "general")
        for tag in post.tags:  # a hand-edited caption may keep the site's spelling
            items.setdefault(tag, categories.get(tag, "general"))
        return cls(post_id=post.id, md5=post.md5, site=site, rating=post.rating,
                   source=html.unescape(post.source or ""), score=post.score, item_categories=items)

    @classmethod
    def from_metadata(cls, line: Mapping[str, Any]) -> PostInfo:
        """From a ``metadata.jsonl`` line jmbooru wrote earlier (for ``jmbooru check --exports``)."""
        items: dict[str, str] = {}
        categories = line.get("tag_categories")
        if isinstance(categories, dict):
            for name, values in categories.items():
                if name in CATEGORY_KEYS and isinstance(values, list):
                    items.update({str(v): name for v in values})

        def integer(key: str) -> int | None:
            value = line.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        def text(key: str) -> str | None:
            value = line.get(key)
            return value if isinstance(value, str) else None

        return cls(post_id=integer("post_id"), md5=str(line.get("md5") or ""), site=text("site"),
                   rating=text("rating"), source=text("source"), score=integer("score"), item_categories=items)


def caption_items(caption: str, separator: str = ",") -> list[str]:
    """The items of a caption, as kohya splits them when it shuffles (``separator`` stripped)."""
    sep = separator.strip() or separator
    return [item.strip() for item in caption.split(sep) if item.strip()]


def categorise(items: Iterable[str], post: PostInfo | None, trigger: str | None) -> dict[str, list[str]]:
    """Each caption item under its category; the trigger under none, unknown items under general."""
    grouped: dict[str, list[str]] = {name: [] for name in CATEGORY_KEYS}
    lookup = post.item_categories if post else {}
    for i, item in enumerate(items):
        if i == 0 and trigger and item == trigger:
            continue
        category = lookup.get(item, "general")
        grouped[category if category in grouped else "general"].append(item)
    return grouped


@dataclass(slots=True)
class ImageRecord:
    file: str  # <md5>.<ext>
    md5: str
    caption: str  # the .txt as it is, without its trailing newline
    width: int
    height: int
    post: PostInfo | None
    tag_categories: dict[str, list[str]]

    def metadata(self) -> dict[str, Any]:
        """The object of a ``metadata.jsonl`` line and of ``<md5>.json``. No ``tags`` key: kohya's
        fine-tuning dataset appends a ``tags`` string to the caption."""
        post = self.post
        return {
            "file_name": self.file,
            "text": self.caption,
            "image_path": self.file,
            "caption": self.caption,
            "image_size": [self.width, self.height] if self.width and self.height else None,
            "tag_categories": self.tag_categories,
            "post_id": post.post_id if post else None,
            "md5": self.md5,
            "site": post.site if post else None,
            "rating": post.rating if post else None,
            "source": post.source if post else None,
            "score": post.score if post else None,
        }
