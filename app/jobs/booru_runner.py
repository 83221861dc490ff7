"""Runs a booru dataset job on any registered site: images plus same-named caption files, then one zip."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from app.config import Settings
from app.errors import UpstreamError
from app.jobs.runner import RunContext, RunOutput
from app.sources.booru.base import BooruSite
from app.sources.booru.registry import unknown_site
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.dataset import DatasetProgress, download_dataset
from app.storage import safe_component
from app.text import count


class BooruRunner:
    def __init__(self, settings: Settings, sites: Mapping[str, BooruSite]) -> None:
        self.settings = settings
        self.sites = sites

    async def run(self, ctx: RunContext) -> RunOutput:
        params = ctx.job.params
        name, tags = str(params["site"]), str(params["tags"])
        site = self.sites.get(name)
        if site is None:  # queued before the server's sites changed
            raise unknown_site(name, self.sites)

        def on_progress(p: DatasetProgress) -> None:
            snap = ctx.progress.snapshot()
            ctx.progress.update(done=p.done - snap.done, total=p.total, nbytes=p.bytes - snap.bytes)

        def on_wait(notice: str | None) -> None:
            ctx.progress.update(message=notice or "Downloading.")

        ctx.progress.update(total=0, title=f"{name}: {tags}")
        result = await download_dataset(
            site,
            tags,
            ctx.work_dir,
            max_images=int(params["max_images"]),
            caption=CaptionOptions.model_validate(params.get("caption") or {}),
            filters=PostFilters.model_validate(params.get("filters") or {}),
            workers=self.settings.download_workers,
            on_progress=on_progress,
            on_wait=on_wait,
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
        entries = await asyncio.to_thread(_dataset_entries, ctx.work_dir)  # thousands of files: off the loop
        message = f"{count(kept, 'image')} with captions {'is' if kept == 1 else 'are'} ready."
        if result.failed:
            message += f" {count(result.failed, 'image')} could not be downloaded intact and {'was' if result.failed == 1 else 'were'} left out."
        if result.unavailable:
            message += f" {count(result.unavailable, 'post')} had no file to fetch (restricted, deleted or on another host)."
        label = safe_component(tags, fallback="dataset", max_length=100)
        return RunOutput(
            entries=entries,
            title=f"{name}: {tags}",
            file_stem=f"{name}-dataset",
            download_name=f"{name} {label}.zip",
            message=message,
        )


def _is_dataset_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and not path.name.endswith(".part")


def _dataset_entries(folder: Path) -> list[tuple[str, Path]]:
    return [(p.name, p) for p in sorted(folder.iterdir()) if _is_dataset_file(p)]
