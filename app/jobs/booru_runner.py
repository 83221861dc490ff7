"""Runs a booru dataset job: images plus same-named caption files, then one zip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import UpstreamError
from app.jobs.runner import RunContext, RunOutput
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.dataset import DatasetProgress, download_dataset
from app.storage import safe_component


class BooruRunner:
    def __init__(self, settings: Settings, clients: dict[str, Any]) -> None:
        self.settings = settings
        self.clients = clients

    async def run(self, ctx: RunContext) -> RunOutput:
        params = ctx.job.params
        site, tags = str(params["site"]), str(params["tags"])
        client = self.clients[site]

        def on_progress(p: DatasetProgress) -> None:
            snap = ctx.progress.snapshot()
            ctx.progress.update(done=p.done - snap.done, total=p.total, nbytes=p.bytes - snap.bytes)

        ctx.progress.update(total=0, title=f"{site}: {tags}")
        result = await download_dataset(
            client,
            tags,
            ctx.work_dir,
            max_images=int(params["max_images"]),
            caption=CaptionOptions.model_validate(params.get("caption") or {}),
            filters=PostFilters.model_validate(params.get("filters") or {}),
            workers=self.settings.download_workers,
            on_progress=on_progress,
        )
        kept = result.downloaded + result.skipped
        if kept == 0:
            raise UpstreamError(
                f"None of the {result.failed} images could be downloaded intact from {site}; try again later."
            )
        entries = [(p.name, p) for p in sorted(ctx.work_dir.iterdir()) if _is_dataset_file(p)]
        message = f"{kept} images with captions are ready."
        if result.failed:
            message += f" {result.failed} could not be downloaded intact and were left out."
        label = safe_component(tags, fallback="dataset", max_length=100)
        return RunOutput(
            entries=entries,
            title=f"{site}: {tags}",
            file_stem=f"{site}-dataset",
            download_name=f"{site} {label}.zip",
            message=message,
        )


def _is_dataset_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and not path.name.endswith(".part")
