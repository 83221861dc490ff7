"""The last step of a trainer-ready dataset: de-duplicate the folder's images, then write the exports.

Used by booru dataset jobs (on the job's folder, before zipping), by ``jmbooru booru`` (on the whole
output folder, after the download) and by ``jmbooru check --exports`` (exports only). Images are
``<md5>.<ext>`` files; their captions are the ``.txt`` files as they are now.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.files import write_text_atomic
from app.outputs.dedupe import Candidate, Dropped, ImageFacts, dupes_report, find_duplicates, inspect_image
from app.outputs.exports import write_exports
from app.outputs.exports.json_captions import write_image_json
from app.outputs.exports.options import DedupeOptions, ExportOptions
from app.outputs.exports.plan import ExportPlan
from app.outputs.exports.records import ImageRecord, PostInfo, caption_items, categorise
from app.sources.booru.files import ImagePools
from app.sources.captions import CaptionOptions
from app.sources.dataset import FileOutcome
from app.sources.selection import MD5_RE

log = logging.getLogger("jmbooru.exports")

DUPES_FILE = "dupes.json"
CAPTION_EXTS = (".txt", ".json")


@dataclass(slots=True)
class FinishRequest:
    exports: tuple[str, ...] = ()
    options: ExportOptions = field(default_factory=ExportOptions)
    dedupe: DedupeOptions | None = None
    image_dir: str = "."
    name: str = "dataset"
    separator: str = ","  # how caption items are split for tag_categories
    trigger: str | None = None  # the caption's first item that belongs to no category

    @property
    def active(self) -> bool:
        return bool(self.exports) or self.dedupe is not None


@dataclass(slots=True)
class FinishResult:
    images: int = 0
    dropped: list[Dropped] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    missing_posts: list[str] = field(default_factory=list)  # images whose post is not known


def dataset_images(folder: Path) -> list[str]:
    """The ``<md5>.<ext>`` files of a dataset folder (not captions, exports or partial files)."""
    names = []
    for name in os.listdir(folder):
        stem, dot, ext = name.partition(".")
        if dot and MD5_RE.fullmatch(stem) and "." not in ext and f".{ext}" not in CAPTION_EXTS \
                and (folder / name).is_file():
            names.append(name)
    return sorted(names)


def _remove_dropped(folder: Path, dropped: list[Dropped]) -> None:
    for d in dropped:
        for name in (d.image.file, f"{d.image.md5}.txt", f"{d.image.md5}.json"):
            (folder / name).unlink(missing_ok=True)


def _read_caption(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError:
        return ""


def image_record(folder: Path, name: str, facts: ImageFacts, post: PostInfo | None,
                 request: FinishRequest) -> ImageRecord:
    md5 = name.partition(".")[0]
    caption = _read_caption(folder / f"{md5}.txt")
    grouped = categorise(caption_items(caption, request.separator), post, request.trigger)
    return ImageRecord(file=name, md5=md5, caption=caption, width=facts.width, height=facts.height,
                       post=post, tag_categories=grouped)


def _write_exports(folder: Path, names: list[str], facts: Mapping[str, ImageFacts],
                   posts: Mapping[str, PostInfo], request: FinishRequest, prewritten: frozenset[str]) -> list[str]:
    # Videos (webm, mp4) and files Pillow cannot open are not images to a trainer: HF imagefolder and
    # kohya skip them, so the exports do not list them either.
    records = [image_record(folder, n, facts[n], posts.get(n.partition(".")[0]), request)
               for n in names if facts[n].decoded]
    plan = ExportPlan(folder=folder, records=records, options=request.options, image_dir=request.image_dir,
                      name=request.name, prewritten=prewritten)
    return write_exports(plan, request.exports)


def published_inspector(request: FinishRequest, site: str,
                        caption: CaptionOptions) -> Callable[[Path, FileOutcome], ImageFacts]:
    """The download's ``inspect`` hook: measure each image as it lands and, for ``json_captions``, write its
    ``<md5>.json`` then, while the other images still download (creating hundreds of small files at the
    end would add seconds on a slow disk). ``finish_dataset`` skips the ones written here."""
    hashes = request.dedupe is not None
    per_image = "json_captions" in request.exports

    def inspect(path: Path, outcome: FileOutcome) -> ImageFacts:
        facts = inspect_image(path, hashes)
        if per_image and outcome.post is not None and facts.decoded:
            post = PostInfo.from_post(outcome.post, site, outcome.categories, caption)
            write_image_json(path.parent, image_record(path.parent, path.name, facts, post, request))
        return facts

    return inspect


async def finish_dataset(folder: Path, request: FinishRequest, posts: Mapping[str, PostInfo],
                         facts: Mapping[str, ImageFacts] | None = None,
                         order: Mapping[str, int] | None = None,
                         prewritten: frozenset[str] = frozenset(), *, pools: ImagePools) -> FinishResult:
    """De-duplicate (when asked) and write the exports. ``facts`` holds what was measured while
    downloading (by file name); the rest is measured here, in the measuring pool, two images at a time.
    ``prewritten``: the ``<md5>.json`` files ``published_inspector`` already wrote."""
    result = FinishResult()
    names = await pools.files.run(dataset_images, folder)
    known = dict(facts or {})
    hashes = request.dedupe is not None
    todo = [n for n in names if n not in known or (hashes and known[n].dhash is None and known[n].decoded)]
    measured = await asyncio.gather(*(pools.measure.run(inspect_image, folder / n, hashes) for n in todo))
    known.update(zip(todo, measured, strict=True))
    if request.dedupe is not None:
        order = order or {}
        candidates = [
            Candidate(file=n, md5=n.partition(".")[0], post_id=(p.post_id if (p := posts.get(n.partition(".")[0])) else None),
                      score=(p.score or 0) if p else 0, order=order.get(n.partition(".")[0], len(order) + i),
                      facts=known[n])
            for i, n in enumerate(names)
        ]
        result.dropped = find_duplicates(candidates, request.dedupe)
        report = json.dumps(dupes_report(result.dropped, request.dedupe), indent=1) + "\n"
        await pools.files.run(_remove_dropped, folder, result.dropped)
        await pools.files.run(write_text_atomic, folder / DUPES_FILE, report)
        result.written.append(DUPES_FILE)
        gone = {d.image.file for d in result.dropped}
        names = [n for n in names if n not in gone]
    result.images = sum(known[n].decoded for n in names)
    result.missing_posts = [n for n in names if known[n].decoded and n.partition(".")[0] not in posts]
    if request.exports:
        result.written += await pools.files.run(_write_exports, folder, names, known, posts, request, prewritten)
    return result
