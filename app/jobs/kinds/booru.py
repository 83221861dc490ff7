"""The booru dataset kind: a search of any registered site as images plus same-named captions (and the
trainer exports), in one zip. Its spec and its runner."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from app.archives import archive_file_name, archive_format
from app.config import Settings
from app.errors import UpstreamError
from app.jobs.runner import RunContext, RunOutput
from app.jobs.specs import JobSpec
from app.outputs.dataset_finish import FinishRequest, FinishResult, finish_dataset, published_inspector
from app.outputs.exports.options import ExportOptions, TrainerOptions
from app.outputs.exports.plan import dataset_name
from app.outputs.exports.records import PostInfo
from app.sources.booru.base import BooruSite
from app.sources.booru.files import ImagePools
from app.sources.booru.registry import unknown_site
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.dataset import DatasetProgress, DatasetResult, dataset_entries, download_dataset
from app.storage import safe_component
from app.text import count


class BooruSpec(JobSpec, TrainerOptions):
    kind: ClassVar[str] = "booru"

    site: str
    tags: str
    max_images: int = Field(ge=1)
    caption: CaptionOptions = Field(default_factory=CaptionOptions)
    filters: PostFilters = Field(default_factory=PostFilters)
    def dedupe_key(self) -> str:
        fields = self.model_dump(mode="json", exclude_defaults=False)
        for key, default in (("exports", []), ("export_options", ExportOptions().model_dump(mode="json")),
                             ("dedupe", None), ("skip_variants", "none")):
            if fields[key] == default:  # trainer options left at their defaults: keys of jobs that existed before these options stay the same
                del fields[key]
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
        return f"booru:{self.site}:{digest}"

    def title(self) -> str:
        return f"{self.site}: {self.tags}"

    def log_site(self) -> str:
        return self.site


class BooruRunner:
    def __init__(self, settings: Settings, sites: Mapping[str, BooruSite], pools: ImagePools) -> None:
        self.settings = settings
        self.sites = sites
        self.pools = pools

    async def run(self, ctx: RunContext[BooruSpec]) -> RunOutput:
        spec = ctx.spec
        name, tags = spec.site, spec.tags
        site = self.sites.get(name)
        if site is None:  # queued before the server's sites changed
            raise unknown_site(name, self.sites)

        def on_progress(p: DatasetProgress) -> None:
            snap = ctx.progress.snapshot()
            ctx.progress.update(done=p.done - snap.done, total=p.total, nbytes=p.bytes - snap.bytes)

        def on_wait(notice: str | None) -> None:
            ctx.progress.update(message=notice or "Downloading.")

        trainer: TrainerOptions = spec  # a booru spec carries the trainer options itself
        caption = spec.caption
        # tag_frequency.json names the dataset after the archive's file_name, which the service gives it
        archive = archive_file_name(f"{name}-dataset", ctx.job.job_id, archive_format("zip"))
        request = _finish_request(trainer, caption, archive.removesuffix(".zip"))
        ctx.progress.update(total=0, title=f"{name}: {tags}")
        result = await download_dataset(
            site,
            tags,
            ctx.work_dir,
            max_images=spec.max_images,
            caption=caption,
            filters=spec.filters,
            workers=self.settings.download_workers,
            on_progress=on_progress,
            on_wait=on_wait,
            trigger=trainer.export_options.trigger,
            want_categories=bool({"metadata_jsonl", "json_captions"} & set(trainer.exports)),
            # sizes (and hashes) are measured as each image lands, while the others still download
            inspect=published_inspector(request, name, caption) if request.active else None,
            skip_variants=trainer.skip_variants,
            pools=self.pools,
        )
        kept = result.downloaded + result.skipped
        if kept == 0:
            if result.failed:
                raise UpstreamError(
                    f"None of the {count(result.failed, 'image')} could be downloaded intact from {site.info.name}; "
                    "try again later."
                )
            raise UpstreamError(
                f"None of the {count(result.unavailable, f'selected {site.info.name} post')} has a file jmbooru may download "
                f"(restricted, deleted, or on a host outside {site.info.settings_prefix}_IMAGE_HOSTS)."
            )
        label = safe_component(tags, fallback="dataset", max_length=100)
        download_name = f"{name} {label}.zip"
        dropped = 0
        if request.active:
            ctx.progress.update(message="Writing the exports." if not trainer.dedupe else "Removing duplicates.")
            finished = await _finish(ctx.work_dir, request, caption, result, name, self.pools)
            dropped = len(finished.dropped)
        entries = await self.pools.files.run(dataset_entries, ctx.work_dir)  # thousands of files: off the loop
        shown = kept - dropped
        message = f"{count(shown, 'image')} with captions {'is' if shown == 1 else 'are'} ready."
        if trainer.dedupe is not None:
            message += f" {dropped} near-duplicate{'s were' if dropped != 1 else ' was'} dropped (see dupes.json)."
        if result.skipped_variants:
            message += f" {result.skipped_variants} posts with a parent or children were skipped (skip_variants)."
        if result.failed:
            message += f" {count(result.failed, 'image')} could not be downloaded intact and {'was' if result.failed == 1 else 'were'} left out."
        if result.unavailable:
            message += f" {count(result.unavailable, 'post')} had no file to fetch (restricted, deleted, on another host, or not a usable address)."
        return RunOutput(
            entries=entries,
            title=f"{name}: {tags}",
            file_stem=f"{name}-dataset",  # the archive_file_name above
            download_name=download_name,
            message=message,
        )


def _finish_request(trainer: TrainerOptions, caption: CaptionOptions, archive_stem: str) -> FinishRequest:
    options = trainer.export_options
    return FinishRequest(exports=trainer.exports, options=options, dedupe=trainer.dedupe,
                         image_dir=options.image_dir or ".", name=dataset_name(options, archive_stem),
                         separator=caption.separator, trigger=options.trigger)


async def _finish(folder: Path, request: FinishRequest, caption: CaptionOptions, result: DatasetResult,
                  site: str, pools: ImagePools) -> FinishResult:
    """De-duplicate and write the exports into the job's folder, before it is zipped."""
    present = [o for o in result.files if o.status in ("downloaded", "skipped") and o.post is not None]
    posts = {o.md5: PostInfo.from_post(o.post, site, o.categories, caption) for o in present if o.post}
    facts: dict[str, Any] = {o.file: o.facts for o in present if o.facts is not None}
    prewritten = frozenset(f"{o.md5}.json" for o in present if o.facts is not None)
    return await finish_dataset(folder, request, posts, facts, {o.md5: o.order for o in present}, prewritten,
                                pools=pools)
