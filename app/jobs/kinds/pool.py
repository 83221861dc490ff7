"""The pool kind: a booru pool as one book (CBZ, zip, PDF), a dataset of its posts, or a library CBZ.
Its spec and its runner."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, model_validator

from app.archives import ArchiveContent
from app.config import Settings
from app.jobs.runner import LibraryBook, RunContext, RunOutput
from app.jobs.specs import LIBRARY_FORMAT_PROBLEM, Dest, JobSpec, PoolFormat
from app.outputs.library import pool_path
from app.sources.booru.base import BooruSite
from app.sources.booru.files import ImagePools
from app.sources.booru.pools import pool_site
from app.sources.booru.registry import unknown_site
from app.sources.captions import CaptionOptions
from app.sources.dataset import DatasetProgress, dataset_entries, download_dataset
from app.sources.pool_download import download_pool, pool_book
from app.storage import safe_component

# The search that lists a pool's posts in pool order, per family (what gallery-dl sends).
POOL_TAG = {"danbooru": "ordpool", "moebooru": "pool"}


class PoolSpec(JobSpec):
    """A booru pool as one book (library.md): its posts' original files in pool order."""

    kind: ClassVar[str] = "pool"

    site: str
    pool_id: int = Field(ge=1, le=2**31)
    format: PoolFormat = "cbz"
    caption: CaptionOptions = Field(default_factory=CaptionOptions)
    dest: Dest = "archive"

    @model_validator(mode="after")
    def _library_is_cbz(self) -> PoolSpec:
        if self.dest == "library" and self.format != "cbz":
            raise ValueError(LIBRARY_FORMAT_PROBLEM.format(fmt=self.format))
        return self

    def dedupe_key(self) -> str:
        key = f"pool:{self.site}:{self.pool_id}:{self.format}"
        if self.format == "dataset":
            key += ":" + hashlib.sha256(self.caption.model_dump_json().encode()).hexdigest()[:12]
        if self.dest == "library":
            key += ":library"
        return key

    def title(self) -> str:
        return f"{self.site} pool {self.pool_id}"

    def public_fields(self) -> dict[str, Any]:
        return {"site": self.site, "pool_id": self.pool_id}

    def log_site(self) -> str:
        return self.site


class PoolRunner:
    def __init__(self, settings: Settings, sites: Mapping[str, BooruSite], pools: ImagePools) -> None:
        self.settings = settings
        self.sites = sites
        self.pools = pools

    def _site(self, name: str) -> BooruSite:
        site = self.sites.get(name)
        if site is None:  # queued before the server's sites changed
            raise unknown_site(name, self.sites)
        pool_site(site, self.sites)
        return site

    async def run(self, ctx: RunContext[PoolSpec]) -> RunOutput:
        spec = ctx.spec
        site = self._site(spec.site)
        if spec.format == "dataset":
            return await self._dataset(ctx, spec, site)

        def on_progress(done: int, total: int, nbytes: int) -> None:
            snap = ctx.progress.snapshot()
            ctx.progress.update(done=done - snap.done, total=total, nbytes=nbytes - snap.bytes)

        pool = await download_pool(site, spec.pool_id, ctx.work_dir, files=self.pools.files,
                                   workers=self.settings.download_workers, on_progress=on_progress)
        ctx.progress.update(title=pool.pool.name)
        book = await pool_book(site, pool)
        skipped = [s.public() for s in pool.skipped]
        pages = len(pool.pages)
        message = f"{pool.pool.name}: {pages} {'page' if pages == 1 else 'pages'}"
        if skipped:
            message += f"; {len(skipped)} {'post was' if len(skipped) == 1 else 'posts were'} skipped (no file to fetch)"
        label = safe_component(pool.pool.name, fallback=f"pool {spec.pool_id}", max_length=120)
        stem = f"{spec.site}-pool-{spec.pool_id}"
        if spec.dest == "library":
            path = pool_path(site.info.name, pool.pool.name, spec.pool_id)
            return RunOutput(entries=[], format="cbz", title=pool.pool.name, file_stem=stem, download_name="",
                             library=[LibraryBook(path, ArchiveContent(pool.pages, book))], skipped=skipped,
                             message=message + "; filed in the library.")
        extension = {"cbz": ".cbz", "zip": ".zip", "pdf": ".pdf"}[spec.format]
        return RunOutput(entries=pool.pages, book=book, format=spec.format, title=pool.pool.name, file_stem=stem,
                         download_name=f"{label} [{spec.site} pool {spec.pool_id}]{extension}", skipped=skipped,
                         message=message + ".")

    async def _dataset(self, ctx: RunContext[PoolSpec], spec: PoolSpec, site: BooruSite) -> RunOutput:
        pools = pool_site(site, self.sites)
        pool = await pools.pool(spec.pool_id)
        ctx.progress.update(title=pool.name, total=pool.post_count)

        def on_progress(p: DatasetProgress) -> None:
            snap = ctx.progress.snapshot()
            ctx.progress.update(done=p.done - snap.done, total=p.total, nbytes=p.bytes - snap.bytes)

        tag = POOL_TAG.get(site.info.family, "pool")
        result = await download_dataset(site, f"{tag}:{spec.pool_id}", ctx.work_dir,
                                        max_images=max(1, pool.post_count or len(pool.post_ids)),
                                        caption=spec.caption, workers=self.settings.download_workers,
                                        on_progress=on_progress, pools=self.pools)
        entries = await self.pools.files.run(dataset_entries, ctx.work_dir)
        skipped = [{"post_id": f.post_id, "reason": f.error or "the post has no file"}
                   for f in result.files if f.status in ("unavailable", "failed")]
        kept = result.downloaded + result.skipped
        message = f"{pool.name}: {kept} images with captions are ready."
        if skipped:
            message += f" {len(skipped)} {'post was' if len(skipped) == 1 else 'posts were'} skipped."
        label = safe_component(pool.name, fallback=f"pool {spec.pool_id}", max_length=120)
        return RunOutput(entries=entries, title=pool.name, file_stem=f"{spec.site}-pool-{spec.pool_id}-dataset",
                         download_name=f"{label} [{spec.site} pool {spec.pool_id}] dataset.zip", skipped=skipped,
                         message=message)
