"""Download a Gelbooru search into a folder as an SD dataset: ``<md5>.<ext>`` plus ``<md5>.txt``.

Files are written to a temporary name, verified against the post's md5 and only then renamed,
so the folder never holds a half image under its final name. Running it again on the same folder
skips images whose md5 already matches and writes only the captions that are missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from app.errors import AppError, NotFound, Unprocessable
from app.sources.captions import CaptionOptions, PostFilters, build_caption
from app.sources.gelbooru import FILE_POOL, GelbooruClient, Post

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger("jmbooru.dataset")

MD5_RE = re.compile(r"[0-9a-f]{32}")
_EXT_RE = re.compile(r"[a-z0-9]{1,5}")
Status = Literal["downloaded", "skipped", "failed"]
PAGE = 100  # posts per API page


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


@dataclass(slots=True)
class DatasetResult:
    out_dir: Path
    total: int = 0
    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    captions_written: int = 0
    bytes: int = 0
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        return (
            f"downloaded {self.downloaded}, skipped {self.skipped}, failed {self.failed}, "
            f"captions written {self.captions_written}, {self.bytes / 1e6:.1f} MB"
        )


def image_extension(post: Post) -> str:
    """A short alphanumeric extension from the post's file URL (or ``image``), never a path."""
    for candidate in (urlsplit(post.file_url).path, post.image):
        ext = os.path.splitext(candidate.rsplit("/", 1)[-1])[1].lstrip(".").lower()
        if _EXT_RE.fullmatch(ext):
            return ext
    return "jpg"


def _file_md5(path: Path) -> str | None:
    h = hashlib.md5()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:  # never hide the real error behind a clean-up failure
        log.warning("could not remove %s: %r", path, exc)


async def selected_batches(
    client: GelbooruClient, tags: str, max_images: int, filters: PostFilters, max_scanned: int | None = None
) -> AsyncGenerator[list[Post], None]:
    """The first ``max_images`` posts that pass the filters, one per md5, in batches of one page.

    Filters run here, not in the site's query, so strict filters on a huge tag could page for hours:
    at most ``max_scanned`` posts (default 50 per wanted image, at least 5,000) are looked at.
    """
    md5s: set[str] = set()
    batch: list[Post] = []
    selected = scanned = 0
    limit = max_scanned or max(5000, max_images * 50)
    async with aclosing(client.iter_posts(tags, max_posts=limit)) as posts:
        async for post in posts:
            scanned += 1
            if filters.matches(post) and not (post.md5 and post.md5 in md5s):
                md5s.add(post.md5)
                batch.append(post)
                selected += 1
            if selected >= max_images:
                break
            if scanned % PAGE == 0 and batch:
                yield batch
                batch = []
    if batch:
        yield batch


async def select_posts(
    client: GelbooruClient, tags: str, max_images: int, filters: PostFilters, max_scanned: int | None = None
) -> list[Post]:
    """All of :func:`selected_batches` at once."""
    posts: list[Post] = []
    async with aclosing(selected_batches(client, tags, max_images, filters, max_scanned)) as batches:
        async for batch in batches:
            posts.extend(batch)
    return posts


async def download_dataset(
    client: GelbooruClient,
    tags: str,
    out_dir: str | os.PathLike[str],
    *,
    max_images: int,
    caption: CaptionOptions | None = None,
    filters: PostFilters | None = None,
    workers: int = 8,
    overwrite_captions: bool = False,
    on_progress: Callable[[DatasetProgress], None] | None = None,
) -> DatasetResult:
    """Download up to ``max_images`` posts matching ``tags`` into ``out_dir``.

    Images are fetched while later pages are still being listed; until the listing ends,
    progress counts ``max_images`` as the total. Raises ``NotFound`` when nothing matches;
    per-image failures are counted, not raised.
    Cancelling removes the temporary files and re-raises.
    """
    if max_images < 1:
        raise Unprocessable("max_images must be at least 1.")
    caption = caption or CaptionOptions()
    filters = filters or PostFilters()
    out = Path(out_dir)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)

    # Downloads start with the first page of posts while the next pages are still being listed.
    queue: asyncio.Queue[Post | None] = asyncio.Queue()
    result = DatasetResult(out_dir=out, total=0)
    first_batch = asyncio.Event()
    listing_done = False
    n_workers = max(1, min(workers, max_images))

    async def produce() -> None:
        nonlocal listing_done
        try:
            async with aclosing(selected_batches(client, tags, max_images, filters)) as batches:
                async for batch in batches:
                    if caption.needs_categories:  # one look-up per page; the client caches the answers
                        await client.tag_categories(dict.fromkeys(tag for post in batch for tag in post.tags))
                    result.total += len(batch)
                    for post in batch:
                        queue.put_nowait(post)
                    if not first_batch.is_set():
                        first_batch.set()
                        if on_progress:
                            on_progress(DatasetProgress(0, max_images, 0))
        finally:
            listing_done = True
            first_batch.set()
            for _ in range(n_workers):
                queue.put_nowait(None)

    def total() -> int:
        return result.total if listing_done else max(result.total, max_images)

    parts: set[Path] = set()
    existing = set(await asyncio.to_thread(os.listdir, out))
    done = 0

    async def categories(post: Post) -> dict[str, str] | None:
        return await client.tag_categories(post.tags) if caption.needs_categories else None

    async def fetch(post: Post, md5: str, path: Path) -> tuple[Path | None, int, str | None]:
        """Download into a temporary file whose md5 is checked; two tries. The caller renames it."""
        fetched = 0
        for attempt in (1, 2):
            part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
            parts.add(part)
            try:
                got = await client.download_image(post.file_url, part)
            except AppError as exc:
                _discard(part)
                return None, fetched, exc.detail
            except BaseException:
                _discard(part)
                raise
            fetched += got.size
            if got.md5 == md5:
                return part, fetched, None
            _discard(part)
            log.warning("md5 mismatch post=%s expected=%s got=%s attempt=%d", post.id, md5, got.md5, attempt)
        return None, fetched, "the downloaded image did not match its md5 twice"

    def _discard(part: Path) -> None:
        parts.discard(part)
        _unlink(part)

    def finish(part: Path | None, path: Path, caption_text: str | None) -> None:
        """Publish the verified image, then its caption."""
        if part is not None:
            os.replace(part, path)
        if caption_text is not None:
            _write_text_atomic(path.with_suffix(".txt"), caption_text)

    async def process(post: Post) -> FileOutcome:
        md5 = post.md5
        if not MD5_RE.fullmatch(md5):
            return FileOutcome(md5=md5, post_id=post.id, status="failed", error="the post has no valid md5")
        if not post.file_url:
            return FileOutcome(md5=md5, post_id=post.id, status="failed", error="the post has no file (deleted or hidden)")
        path = out / f"{md5}.{image_extension(post)}"
        outcome = FileOutcome(md5=md5, post_id=post.id, status="skipped", file=path.name)
        part = None
        if path.name not in existing or await FILE_POOL.run_to_end(_file_md5, path) != md5:
            part, outcome.bytes, outcome.error = await fetch(post, md5, path)
            if part is None:
                outcome.status = "failed"
                return outcome
            outcome.status = "downloaded"
        text = None
        if overwrite_captions or f"{md5}.txt" not in existing:
            text = build_caption(post.tags, caption, await categories(post))
        finish(part, path, text)  # a rename and a small text file: cheaper inline than a thread hop
        if part is not None:
            parts.discard(part)  # renamed; on any failure the clean-up below removes it
        outcome.caption_written = text is not None
        return outcome

    def record(outcome: FileOutcome) -> None:
        nonlocal done
        done += 1
        result.files.append(outcome)
        result.bytes += outcome.bytes
        result.captions_written += outcome.caption_written
        if outcome.status == "downloaded":
            result.downloaded += 1
        elif outcome.status == "skipped":
            result.skipped += 1
        else:
            result.failed += 1
            log.warning("post failed id=%s md5=%s error=%s", outcome.post_id, outcome.md5, outcome.error)
        if on_progress:
            on_progress(DatasetProgress(done, total(), result.bytes, result.failed))

    async def worker() -> None:
        while (post := await queue.get()) is not None:  # each post goes to exactly one worker
            record(await process(post))

    producer = asyncio.create_task(produce())
    tasks: list[asyncio.Task[None]] = []
    try:
        await first_batch.wait()
        if producer.done() and producer.exception() is not None:
            raise producer.exception()  # type: ignore[misc]
        if result.total == 0:
            raise NotFound(
                f"No Gelbooru posts match the tags '{' '.join(tags.split())[:200]}'"
                + (" and the filters" if filters != PostFilters() else "")
                + "; check the spelling on the Gelbooru site (tags use underscores, like long_hair)."
            )
        tasks = [asyncio.create_task(worker()) for _ in range(n_workers)]
        await asyncio.gather(producer, *tasks)
    finally:
        for task in [producer, *tasks]:
            if not task.done():
                task.cancel()
        await asyncio.gather(producer, *tasks, return_exceptions=True)
        for part in list(parts):
            _unlink(part)
    return result


async def download(
    tags: str,
    out_dir: str | os.PathLike[str],
    max_images: int,
    *,
    settings: Settings | None = None,
    client_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> DatasetResult:
    """Convenience for scripts: a client built from the settings (env ``JMBOORU_GELBOORU_*``)."""
    from app.config import Settings

    settings = settings or Settings()
    kwargs.setdefault("workers", settings.download_workers)
    async with GelbooruClient.from_settings(settings, **(client_options or {})) as client:
        client.check_credentials()
        return await download_dataset(client, tags, out_dir, max_images=max_images, **kwargs)
