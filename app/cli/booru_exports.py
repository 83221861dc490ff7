"""The trainer-ready dataset flags of ``jmbooru booru``/``gelbooru`` (exports, de-duplication, variants)
and of ``jmbooru check --exports``, and what they do after a download or on an existing folder.

Building the flags imports nothing heavy; the work (Pillow, imagehash) loads only when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.outputs.dataset_finish import FinishResult
    from app.outputs.exports.options import TrainerOptions
    from app.outputs.exports.records import PostInfo
    from app.sources.booru.base import BooruSite
    from app.sources.booru.files import ImagePools
    from app.sources.captions import CaptionOptions
    from app.sources.dataset import DatasetResult

_EXPORT_NAMES = "metadata_jsonl,json_captions,kohya_toml,tag_frequency,buckets"


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_export_option_flags(group: argparse._ArgumentGroup, *, trigger: bool) -> None:
    group.add_argument("--exports", type=_names, metavar="LIST",
                       help=f"extra files, comma-separated: {_EXPORT_NAMES}")
    if trigger:
        group.add_argument("--trigger", help="a word put first in every caption (no comma)")
    group.add_argument("--resolution", type=int, metavar="N", help="kohya's training resolution (default 1024)")
    group.add_argument("--num-repeats", type=int, metavar="N", help="kohya's num_repeats (default 1)")
    group.add_argument("--keep-tokens", type=int, metavar="N",
                       help="caption items kohya never shuffles (default 1 with --trigger, else 0)")
    group.add_argument("--image-dir", metavar="PATH",
                       help="the folder the trainer reads, in dataset_config.toml (default: this folder's absolute path)")


def add_trainer_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("trainer-ready datasets")
    _add_export_option_flags(g, trigger=True)
    g.add_argument("--dedupe", action="store_true",
                   help="drop near-duplicate images (dHash and pHash) from the whole folder; see dupes.json")
    g.add_argument("--dedupe-dhash", type=int, metavar="N", help="dHash distance that still counts (default 8)")
    g.add_argument("--dedupe-phash", type=int, metavar="N", help="pHash distance that still counts (default 10)")
    g.add_argument("--dedupe-keep", metavar="RULE", help="which copy stays: largest (default), highest_score, first")
    g.add_argument("--skip-variants", default="none", metavar="WHICH",
                   help="none (default); children: skip posts with a parent; parents: skip posts with children")


def add_check_export_flags(p: argparse.ArgumentParser) -> None:
    _add_export_option_flags(p.add_argument_group("exports (rewritten from the captions as they are now)"),
                             trigger=False)


def trainer_options(args: argparse.Namespace) -> TrainerOptions:
    """The flags as the server's request keys; raises pydantic's ValidationError (exit 2) on a bad value."""
    from app.outputs.exports.options import TrainerOptions

    export_options = {key: value for key in ("trigger", "resolution", "num_repeats", "keep_tokens", "image_dir")
                      if (value := getattr(args, key, None)) is not None}
    dedupe: Any = None
    thresholds = {"dhash": args.dedupe_dhash, "phash": args.dedupe_phash, "keep": args.dedupe_keep}
    if getattr(args, "dedupe", False) or any(v is not None for v in thresholds.values()):
        dedupe = {k: v for k, v in thresholds.items() if v is not None}
    return TrainerOptions.model_validate({"exports": args.exports or [], "export_options": export_options,
                                          "dedupe": dedupe, "skip_variants": args.skip_variants})


def _metadata_posts(folder: Path) -> dict[str, PostInfo]:
    """Post fields and tag categories from the folder's own metadata.jsonl, by md5."""
    from app.outputs.exports.records import PostInfo

    posts: dict[str, PostInfo] = {}
    try:
        lines = (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return posts
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("post_id") is not None:
            info = PostInfo.from_metadata(data)
            posts[info.md5 or str(data.get("file_name", "")).partition(".")[0]] = info
    return posts


def _request(trainer: TrainerOptions, folder: Path, separator: str, trigger: str | None) -> Any:
    from app.outputs.dataset_finish import FinishRequest
    from app.outputs.exports.plan import dataset_name

    options = trainer.export_options
    return FinishRequest(exports=trainer.exports, options=options, dedupe=trainer.dedupe,
                         image_dir=options.image_dir or str(folder.resolve()),
                         name=dataset_name(options, folder.resolve().name), separator=separator, trigger=trigger)


def inspector(out: str, trainer: TrainerOptions, caption: CaptionOptions, site: str) -> Any:
    """The download's hook that measures each image (and writes its <md5>.json) as it lands; None when
    there is nothing to finish."""
    if not trainer.exports and trainer.dedupe is None:  # FinishRequest.active, without loading Pillow
        return None
    from app.outputs.dataset_finish import published_inspector

    request = _request(trainer, Path(out), caption.separator, trainer.export_options.trigger)
    return published_inspector(request, site, caption) if request.active else None


async def finish_download(out: str, trainer: TrainerOptions, caption: CaptionOptions, result: DatasetResult,
                          site: str, pools: ImagePools) -> FinishResult:
    """After ``jmbooru booru``: de-duplicate every image in the folder, then write the exports."""
    from app.outputs.dataset_finish import finish_dataset
    from app.outputs.exports.records import PostInfo

    folder = Path(out)
    posts = await pools.files.run(_metadata_posts, folder)  # images of earlier runs keep what the last run knew
    present = [o for o in result.files if o.status in ("downloaded", "skipped") and o.post is not None]
    posts.update({o.md5: PostInfo.from_post(o.post, site, o.categories, caption) for o in present if o.post})
    facts = {o.file: o.facts for o in present if o.facts is not None}
    request = _request(trainer, folder, caption.separator, trainer.export_options.trigger)
    prewritten = frozenset(f"{o.md5}.json" for o in present if o.facts is not None)
    return await finish_dataset(folder, request, posts, facts, {o.md5: o.order for o in present}, prewritten,
                                pools=pools)


async def rewrite_exports(folder_name: str, trainer: TrainerOptions, site: BooruSite,
                          pools: ImagePools) -> tuple[FinishResult, int]:
    """``jmbooru check DIR --exports``: the exports again, from the captions as they are now.
    Returns the result and how many posts were looked up on the site."""
    from app.errors import AppError
    from app.outputs.dataset_finish import dataset_images, finish_dataset
    from app.outputs.exports.records import PostInfo

    folder = Path(folder_name)
    posts = await pools.files.run(_metadata_posts, folder)
    looked_up = 0
    for name in await pools.files.run(dataset_images, folder):
        md5 = name.partition(".")[0]
        if md5 in posts:
            continue
        looked_up += 1
        try:
            post = await site.find_md5(md5)
            if post is not None:
                categories = post.categories or await site.tag_categories(post.tags)
                posts[md5] = PostInfo.from_post(post, site.info.site, categories)
        except AppError as exc:
            print(f"{name}: could not look it up on {site.info.name}: {exc.detail}", file=sys.stderr)
    result = await finish_dataset(folder, _request(trainer, folder, ",", None), posts, pools=pools)
    return result, looked_up


def print_finish(result: FinishResult) -> None:
    for name in result.missing_posts[:20]:
        print(f"{name}: no post found for it; its export line has null post fields", file=sys.stderr)
    if result.dropped:
        print(f"dropped {len(result.dropped)} near-duplicate images (see dupes.json)")
    per_image = [n for n in result.written if n.endswith(".json") and len(n) == 37]  # <md5>.json
    exports = sorted(set(result.written) - set(per_image)) + ([f"{len(per_image)} <md5>.json"] if per_image else [])
    if exports:
        print(f"wrote {', '.join(exports)} for {result.images} images")
