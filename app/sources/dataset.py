"""Download a booru search into a folder as an SD dataset: ``<md5>.<ext>`` plus ``<md5>.txt``.

Works with any site of the registry. Files are written to a temporary name, verified against the
post's md5 and only then renamed, so the folder never holds a half image under its final name.
Running it again on the same folder skips images whose md5 already matches and writes only the
captions that are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from app.errors import AppError, Unprocessable
from app.files import file_md5, temp_beside, write_text_atomic
from app.sources.booru.base import BooruSite, ForeignImageHost, Post
from app.sources.booru.files import ImagePools
from app.sources.booru.politeness import WaitListener, waits_reported_to
from app.sources.captions import CaptionOptions, PostFilters, build_caption
from app.sources.selection import MD5_RE, PostSelection, SkipVariants, Unavailable
from app.text import count

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger("jmbooru.dataset")

_EXT_RE = re.compile(r"[a-z0-9]{1,5}")
Status = Literal["downloaded", "skipped", "failed", "unavailable"]


@dataclass(slots=True, frozen=True)
class DatasetProgress:
    done: int
    total: int
    bytes: int
    failed: int = 0


@dataclass(slots=True)
class FileOutcome:
    md5: str
    status: Status
    post_id: int = 0
    file: str = ""
    bytes: int = 0
    caption_written: bool = False
    error: str | None = None
    post: Post | None = None
    categories: dict[str, str] | None = None  # tag -> category, when the job's exports need them
    facts: Any = None  # what ``inspect`` measured on the published image (size, hashes)
    order: int = 0  # the post's place in the site's listing


@dataclass(slots=True)
class DatasetResult:
    out_dir: Path
    total: int = 0
    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    unavailable: int = 0  # restricted, deleted, or on a host the site's settings do not allow
    filtered_out: int = 0
    skipped_variants: int = 0  # posts with a parent or children, skipped by skip_variants
    captions_written: int = 0
    bytes: int = 0
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        text = (f"downloaded {self.downloaded}, skipped {self.skipped}, failed {self.failed}, "
                f"captions written {self.captions_written}, {self.bytes / 1e6:.1f} MB")
        if self.unavailable:
            text += f"; {count(self.unavailable, 'post')} had no file to fetch (restricted, deleted, on another host, or not a usable address)"
        if self.skipped_variants:
            text += f"; {self.skipped_variants} posts with a parent or children were skipped (skip_variants)"
        return text


def _prepare(folder: Path) -> list[str]:
    """Make the folder (if needed) and list what is already in it."""
    folder.mkdir(parents=True, exist_ok=True)
    return os.listdir(folder)


def dataset_entries(folder: Path) -> list[tuple[str, Path]]:
    """The files of a dataset folder by name, in name order, without hidden or partial files: what a
    dataset job's archive holds. Blocking."""
    return [(p.name, p) for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".part")]


def image_extension(post: Post) -> str:
    """A short alphanumeric extension from the post's own field, file URL or ``image``, never a path."""
    if _EXT_RE.fullmatch(post.ext):
        return post.ext
    for candidate in (urlsplit(post.file_url).path, post.image):
        ext = os.path.splitext(candidate.rsplit("/", 1)[-1])[1].lstrip(".").lower()
        if _EXT_RE.fullmatch(ext):
            return ext
    return "jpg"


def _md5_or_none(path: Path) -> str | None:
    try:
        return file_md5(path)
    except OSError:
        return None


def _unlink(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # never hide the real error behind a clean-up failure
            log.warning("could not remove %s: %r", path, exc)


class DatasetDownload:
    """One dataset download: posts are listed, selected and downloaded at the same time.

    Downloads start with the first page of posts while the next pages are still being listed; until
    the listing ends, progress counts ``max_images`` as the total.
    """

    def __init__(self, site: BooruSite, tags: str, out_dir: Path, *, max_images: int, caption: CaptionOptions,
                 filters: PostFilters, workers: int, overwrite_captions: bool,
                 on_progress: Callable[[DatasetProgress], None] | None, pools: ImagePools,
                 trigger: str | None = None, want_categories: bool = False,
                 inspect: Callable[[Path, FileOutcome], Any] | None = None,
                 skip_variants: SkipVariants = "none", posts: AsyncGenerator[Post, None] | None = None) -> None:
        self.site, self.tags, self.out, self.pools = site, tags, out_dir, pools
        self.max_images, self.caption, self.filters = max_images, caption, filters
        self.overwrite_captions, self.on_progress = overwrite_captions, on_progress
        self.trigger, self.want_categories, self.inspect = trigger, want_categories, inspect
        self.n_workers = max(1, min(workers, max_images))
        self.selection = PostSelection(site, tags, max_images, filters, skip_variants=skip_variants, posts=posts)
        self.order: dict[str, int] = {}
        self.inspections: list[asyncio.Task[None]] = []
        self.result = DatasetResult(out_dir=out_dir)
        self.queue: asyncio.Queue[Post | None] = asyncio.Queue()
        self.first_batch = asyncio.Event()
        self.listing_done = False
        self.parts: set[Path] = set()
        self.existing: set[str] = set()
        self.done = 0

    async def run(self) -> DatasetResult:
        self.existing = set(await self.pools.files.run(_prepare, self.out))
        producer = asyncio.create_task(self.produce())
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.first_batch.wait()
            if producer.done() and producer.exception() is not None:
                raise producer.exception()  # type: ignore[misc]
            if self.result.total == 0:
                await producer
                raise self.selection.nothing_selected()
            tasks = [asyncio.create_task(self.worker()) for _ in range(self.n_workers)]
            await asyncio.gather(producer, *tasks)
            await asyncio.gather(*self.inspections)
        finally:
            for task in [producer, *tasks, *self.inspections]:
                if not task.done():
                    task.cancel()
            await asyncio.gather(producer, *tasks, *self.inspections, return_exceptions=True)
            if self.parts:
                await self.pools.files.run_to_end(_unlink, *self.parts)
        self.result.filtered_out = self.selection.filtered_out
        self.result.skipped_variants = self.selection.skipped_variants
        for item in self.selection.unavailable:
            self.record_unavailable(item)
        return self.result

    # --- listing ---

    async def produce(self) -> None:
        try:
            async with aclosing(self.selection.batches()) as batches:
                async for batch in batches:
                    if self.needs_categories:  # one look-up per page; the site caches the answers
                        await self.site.tag_categories(dict.fromkeys(t for p in batch if not p.categories for t in p.tags))
                    self.result.total += len(batch)
                    for post in batch:
                        self.order.setdefault(post.md5, len(self.order))
                        self.queue.put_nowait(post)
                    if not self.first_batch.is_set():
                        self.first_batch.set()
                        if self.on_progress:
                            self.on_progress(DatasetProgress(0, self.max_images, 0))
        finally:
            self.listing_done = True
            self.first_batch.set()
            for _ in range(self.n_workers):
                self.queue.put_nowait(None)

    def total(self) -> int:
        return self.result.total if self.listing_done else max(self.result.total, self.max_images)

    # --- downloading ---

    async def worker(self) -> None:
        # Each image is published (renamed, its caption written, in the file pool) while this worker
        # already fetches the next one: the disk's latency stays off the network's round trips. At
        # most one publication per worker is in flight; its failure (a full disk) ends the worker
        # at its next image, as it would have at once.
        publishing: asyncio.Task[None] | None = None
        try:
            while (post := await self.queue.get()) is not None:  # each post goes to exactly one worker
                outcome, publication = await self.process(post)
                if publishing is not None:
                    await publishing
                    publishing = None
                if publication is None:
                    self.record(outcome)
                else:
                    publishing = asyncio.create_task(self.publish_and_record(outcome, *publication))
            if publishing is not None:
                await publishing
        finally:
            if publishing is not None:
                if not publishing.done():
                    publishing.cancel()  # the file pool's call runs to its end first (run_to_end)
                await asyncio.gather(publishing, return_exceptions=True)  # its outcome read, never lost

    async def process(self, post: Post) -> tuple[FileOutcome, tuple[Path | None, Path, str | None] | None]:
        """Fetch the post's image if it is not here yet and make its caption; returns the outcome
        and what is left to publish (the verified part file, the path, the caption), None if nothing."""
        md5 = post.md5
        path = self.out / f"{md5}.{image_extension(post)}"
        outcome = FileOutcome(md5=md5, post_id=post.id, status="skipped", file=path.name, post=post,
                              order=self.order.get(md5, 0))
        part = None
        if path.name not in self.existing or await self.pools.files.run_to_end(_md5_or_none, path) != md5:
            part, outcome.bytes, outcome.error, foreign = await self.fetch(post, path)
            if part is None:
                outcome.status = "unavailable" if foreign else "failed"
                return outcome, None
            outcome.status = "downloaded"
        text = None
        if self.overwrite_captions or f"{md5}.txt" not in self.existing:
            text = build_caption(post.tags, self.caption, await self.categories(post))
            if self.trigger:  # the trigger word leads every caption (kohya's keep_tokens protects it)
                text = f"{self.trigger}{self.caption.separator}{text}" if text else self.trigger
        if self.want_categories:
            outcome.categories = await self.categories(post)
        if part is None and text is None and self.inspect is None:
            return outcome, None  # here already, caption and all
        return outcome, (part, path, text)

    async def publish_and_record(self, outcome: FileOutcome, part: Path | None, path: Path, text: str | None) -> None:
        # A rename and a small text file, in a thread: creating a file can stall for ~0.4 ms on a slow disk.
        await self.pools.files.run_to_end(self.publish, part, path, text)
        if part is not None:
            self.parts.discard(part)  # renamed; on any failure the clean-up removes it
        outcome.caption_written = text is not None
        if self.inspect is not None:  # measured beside the downloads: the worker moves on to the next image
            self.inspections.append(asyncio.create_task(self.measure(outcome, path)))
        self.record(outcome)

    async def measure(self, outcome: FileOutcome, path: Path) -> None:
        assert self.inspect is not None
        outcome.facts = await self.pools.measure.run_to_end(self.inspect, path, outcome)

    @property
    def needs_categories(self) -> bool:
        return self.caption.needs_categories or self.want_categories

    async def categories(self, post: Post) -> dict[str, str] | None:
        if not self.needs_categories:
            return None
        return post.categories or await self.site.tag_categories(post.tags)

    async def fetch(self, post: Post, path: Path) -> tuple[Path | None, int, str | None, bool]:
        """Download into a temporary file whose md5 is checked; two tries. The caller renames it.

        Returns (file or None, bytes fetched, error, whether the image was refused as foreign).
        """
        fetched = 0
        for attempt in (1, 2):
            part = temp_beside(path)
            self.parts.add(part)
            try:
                got = await self.site.download_image(post.file_url, part, self.pools.files)
            except AppError as exc:
                await self.discard(part)
                return None, fetched, exc.detail, isinstance(exc, ForeignImageHost)
            except BaseException:
                await self.discard(part)
                raise
            fetched += got.size
            if got.md5 == post.md5:
                return part, fetched, None, False
            await self.discard(part)
            log.warning("md5 mismatch post=%s expected=%s got=%s attempt=%d", post.id, post.md5, got.md5, attempt)
        return None, fetched, "the downloaded image did not match its md5 twice", False

    async def discard(self, part: Path) -> None:
        self.parts.discard(part)
        await self.pools.files.run_to_end(_unlink, part)

    @staticmethod
    def publish(part: Path | None, path: Path, caption_text: str | None) -> None:
        """Publish the verified image, then its caption."""
        if part is not None:
            os.replace(part, path)
        if caption_text is not None:
            write_text_atomic(path.with_suffix(".txt"), caption_text)

    def record(self, outcome: FileOutcome) -> None:
        self.done += 1
        result = self.result
        result.files.append(outcome)
        result.bytes += outcome.bytes
        result.captions_written += outcome.caption_written
        if outcome.status == "downloaded":
            result.downloaded += 1
        elif outcome.status == "skipped":
            result.skipped += 1
        elif outcome.status == "unavailable":
            result.unavailable += 1
        else:
            result.failed += 1
            log.warning("post failed id=%s md5=%s error=%s", outcome.post_id, outcome.md5, outcome.error)
        if self.on_progress:
            self.on_progress(DatasetProgress(self.done, self.total(), result.bytes, result.failed))

    def record_unavailable(self, item: Unavailable) -> None:
        self.result.unavailable += 1
        self.result.files.append(FileOutcome(md5=item.md5, post_id=item.post_id, status="unavailable",
                                             error=item.reason))


async def download_dataset(
    site: BooruSite,
    tags: str,
    out_dir: str | os.PathLike[str],
    *,
    max_images: int,
    caption: CaptionOptions | None = None,
    filters: PostFilters | None = None,
    workers: int = 8,
    overwrite_captions: bool = False,
    on_progress: Callable[[DatasetProgress], None] | None = None,
    on_wait: WaitListener | None = None,
    trigger: str | None = None,
    want_categories: bool = False,
    inspect: Callable[[Path, FileOutcome], Any] | None = None,
    skip_variants: SkipVariants = "none",
    pools: ImagePools | None = None,
    posts: AsyncGenerator[Post, None] | None = None,
) -> DatasetResult:
    """Download up to ``max_images`` posts of ``site`` matching ``tags`` into ``out_dir``.

    Raises ``NotFound`` (with a sentence saying whether the tags, the filters or unavailable files
    were the reason) when there is nothing to download; per-image failures are counted, not raised.
    ``trigger`` leads every caption written; ``want_categories`` records each post's tag categories;
    ``inspect(path, outcome)`` runs (in its own pool) on every published image, beside the downloads, and
    its answer is kept in ``outcome.facts``;
    ``skip_variants`` skips posts with a parent or children before they count. ``on_wait`` hears "Rate limited by <site>; retrying at HH:MM:SS." while the site makes us wait,
    and None when the download resumes. Cancelling removes the temporary files and re-raises.
    ``pools``: the caller's (the Engine's, a command's); without them the call makes its own and
    shuts them down when it ends. ``posts``: the site's posts for ``tags`` already being listed
    (``site.iter_posts(tags, max_posts=scan_limit(max_images))``, started early by the command line);
    by default the site is asked here.
    """
    if max_images < 1:
        raise Unprocessable("max_images must be at least 1.")
    with contextlib.ExitStack() as owned:
        if pools is None:
            pools = owned.enter_context(ImagePools.create())
        download = DatasetDownload(site, tags, Path(out_dir), max_images=max_images,
                                   caption=caption or CaptionOptions(), filters=filters or PostFilters(),
                                   workers=workers, overwrite_captions=overwrite_captions, on_progress=on_progress,
                                   pools=pools, trigger=trigger, want_categories=want_categories, inspect=inspect,
                                   skip_variants=skip_variants, posts=posts)
        with waits_reported_to(on_wait):
            return await download.run()


async def download(
    tags: str,
    out_dir: str | os.PathLike[str],
    max_images: int,
    *,
    site: str = "gelbooru",
    settings: Settings | None = None,
    site_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> DatasetResult:
    """Convenience for scripts: the site built from the settings (env ``JMBOORU_<SITE>_*``)."""
    from app.config import Settings
    from app.sources.booru.registry import build_site

    settings = settings or Settings()
    kwargs.setdefault("workers", settings.download_workers)
    booru = build_site(site, settings, **(site_options or {}))
    try:
        booru.check_credentials()
        return await download_dataset(booru, tags, out_dir, max_images=max_images, **kwargs)
    finally:
        await booru.aclose()


__all__ = ["MD5_RE", "DatasetProgress", "DatasetResult", "FileOutcome", "download", "download_dataset", "image_extension"]
