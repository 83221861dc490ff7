"""Which posts of a booru search become dataset files: filters, one post per md5, and the posts that
have no file jmbooru may fetch (restricted, deleted, or on a host outside the site's), counted."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from app.errors import NotFound
from app.sources.booru.base import BooruSite, Post
from app.text import count

if TYPE_CHECKING:
    from app.sources.captions import PostFilters

MD5_RE = re.compile(r"[0-9a-f]{32}")
BATCH = 100  # posts looked at between two hand-overs to the downloads
SkipVariants = Literal["none", "children", "parents"]


def is_skipped_variant(post: Post, skip: SkipVariants) -> bool:
    """``children``: posts with a parent; ``parents``: posts with children (from the listing, no download)."""
    if skip == "children":
        return post.parent_id not in (0, None)
    if skip == "parents":
        return post.has_children
    return False


@dataclass(slots=True)
class Unavailable:
    post_id: int
    md5: str
    reason: str


def unavailable_reason(site: BooruSite, post: Post) -> str | None:
    if not post.file_url:
        return "the post has no usable file address (restricted, deleted, or a malformed URL)"
    if not MD5_RE.fullmatch(post.md5):
        return "the post has no valid md5"
    if not site.image_allowed(post.file_url):
        return f"the image is not on {site.info.name} or its image hosts, so it was not requested"
    return None


def scan_limit(max_images: int, max_scanned: int | None = None) -> int:
    """How many posts a selection looks at, at most (``PostSelection``)."""
    return max_scanned or max(5000, max_images * 50)


@dataclass
class PostSelection:
    """The first ``max_images`` posts that pass the filters, one per md5, in batches.

    Filters run here, not in the site's query, so strict filters on a huge tag could page for hours:
    at most ``max_scanned`` posts (default 50 per wanted image, at least 5,000) are looked at.
    """

    site: BooruSite
    tags: str
    max_images: int
    filters: PostFilters
    max_scanned: int | None = None
    skip_variants: SkipVariants = "none"
    # The site's posts for ``tags`` already being listed, ``scan_limit`` of them at most (the command
    # line's head start); None asks the site.
    posts: AsyncGenerator[Post, None] | None = None
    skipped_variants: int = 0
    scanned: int = 0
    selected: int = 0
    filtered_out: int = 0
    unavailable: list[Unavailable] = field(default_factory=list)

    async def batches(self) -> AsyncGenerator[list[Post], None]:
        md5s: set[str] = set()
        batch: list[Post] = []
        listing = self.posts
        if listing is None:
            listing = self.site.iter_posts(self.tags, max_posts=scan_limit(self.max_images, self.max_scanned))
        async with aclosing(listing) as posts:
            async for post in posts:
                self.scanned += 1
                if not self.filters.matches(post):
                    self.filtered_out += 1
                elif is_skipped_variant(post, self.skip_variants):
                    self.skipped_variants += 1
                elif (reason := unavailable_reason(self.site, post)) is not None:
                    self.unavailable.append(Unavailable(post.id, post.md5, reason))
                elif post.md5 not in md5s:
                    md5s.add(post.md5)
                    batch.append(post)
                    self.selected += 1
                if self.selected >= self.max_images:
                    break
                if self.scanned % BATCH == 0 and batch:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def nothing_selected(self) -> NotFound:
        """The sentence for a search that gave no post to download, saying which step removed them."""
        name, tags = self.site.info.name, " ".join(self.tags.split())[:200]
        limited = self.scanned >= scan_limit(self.max_images, self.max_scanned)
        if limited:
            looked = f"the first {count(self.scanned, f'{name} post')}"
        else:
            looked = f"the one {name} post" if self.scanned == 1 else f"all {self.scanned} {name} posts"
        if self.scanned == 0:
            return NotFound(
                f"No {name} posts match the tags '{tags}'; check the spelling on the site "
                "(tags use underscores, like long_hair)."
            )
        if not self.unavailable:
            variants = (f" ({self.skipped_variants} of them by skip_variants, as posts with a parent or children)"
                        if self.skipped_variants else "")
            return NotFound(
                f"The filters removed {looked} matching '{tags}'{variants}; loosen the rating, size, "
                "score or blacklist filters."
            )
        removed = f", and the filters removed the other {self.filtered_out}" if self.filtered_out else ""
        looked = looked.replace("all ", "the ", 1)
        return NotFound(
            f"None of {looked} matching '{tags}' has a file jmbooru may download: "
            f"{len(self.unavailable)} {'is' if len(self.unavailable) == 1 else 'are'} restricted, deleted or hosted "
            f"elsewhere{removed}."
        )
