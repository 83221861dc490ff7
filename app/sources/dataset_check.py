"""Check a dataset folder: every image must decode and, when named ``<md5>.<ext>``, match that md5;
every image needs its ``.txt`` caption, and every caption its image.

Modes: ``report`` lists problems and changes nothing. ``fix`` repairs what it can and removes what
it cannot, saying which: a broken image is fetched again by its md5 from a booru site (with its
credentials, where the site needs them); a missing caption is written again from the site's tags
(default caption options); a truncated image that has no md5 name (so cannot be fetched) is
re-saved from the part Pillow can read; anything else that stays broken is removed with its
caption, and a caption without an image is removed. ``delete`` removes every image with a problem,
with its caption, and every caption without an image. Left-over ``.part``/``.tmp`` files from an
interrupted download are reported, and removed by ``fix`` and ``delete``.

Disk work runs in the file pool of the caller's ``ImagePools`` and Pillow work in its measuring
pool, one file at a time: this is a command-line tool, and one file at a time keeps Pillow's
process-wide ``LOAD_TRUNCATED_IMAGES`` switch (needed for re-saving) safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image, ImageFile

from app.blocking import BlockingPool
from app.errors import AppError, NotFound, Unprocessable
from app.files import atomic_output, file_md5, temp_beside, write_text_atomic
from app.sources.booru.base import BooruSite
from app.sources.booru.files import ImagePools
from app.sources.captions import CaptionOptions, build_caption
from app.sources.dataset import MD5_RE, image_extension

log = logging.getLogger("jmbooru.check")

Mode = Literal["report", "fix", "delete"]
MODES: tuple[str, ...] = ("report", "fix", "delete")
IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"})
OTHER_MEDIA_EXTS = frozenset({"mp4", "webm", "mkv", "mov", "avi", "swf", "zip"})  # md5 check only
_truncated_lock = threading.Lock()


@dataclass(slots=True)
class CheckProblem:
    file: str
    problem: Literal["empty", "truncated", "undecodable", "md5_mismatch", "partial_file", "missing_caption",
                     "orphan_caption"]
    action: Literal["reported", "refetched", "resaved", "recaptioned", "deleted", "unfixed"] = "reported"
    detail: str = ""


@dataclass(slots=True)
class CheckResult:
    folder: Path
    mode: str
    checked: int = 0
    ok: int = 0
    problems: list[CheckProblem] = field(default_factory=list)

    @property
    def fixed(self) -> int:
        return sum(p.action in ("refetched", "resaved", "recaptioned") for p in self.problems)

    @property
    def deleted(self) -> int:
        return sum(p.action == "deleted" for p in self.problems)

    @property
    def unresolved(self) -> int:
        return sum(p.action in ("reported", "unfixed") for p in self.problems)

    def summary(self) -> str:
        return (
            f"checked {self.checked}, ok {self.ok}, problems {len(self.problems)}, "
            f"fixed {self.fixed}, deleted {self.deleted}, unresolved {self.unresolved}"
        )


def inspect_file(path: Path) -> tuple[str | None, str]:
    """(problem or None, detail) for one media file. Blocking: call it from a thread."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return "undecodable", f"cannot be read ({exc.strerror})"
    if size == 0:
        return "empty", "the file is empty"
    ext = path.suffix.lstrip(".").lower()
    decode_problem: tuple[str, str] | None = None
    if ext in IMAGE_EXTS:
        try:
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:
                img.load()
        except OSError as exc:
            if "truncated" in str(exc).lower():
                decode_problem = ("truncated", "the image is cut short")
            else:
                decode_problem = ("undecodable", "Pillow cannot decode it")
        except (SyntaxError, ValueError, Image.DecompressionBombError, EOFError):
            decode_problem = ("undecodable", "Pillow cannot decode it")
    if decode_problem:
        return decode_problem
    stem = path.stem.lower()
    if MD5_RE.fullmatch(stem) and file_md5(path) != stem:
        return "md5_mismatch", "the content does not match the md5 in its name"
    return None, ""


def resave_truncated(path: Path) -> None:
    """Re-encode what Pillow can read of a truncated image, in its own format, atomically."""
    with atomic_output(path, temp_beside(path, ".tmp")) as tmp, _truncated_lock:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            with Image.open(path) as img:
                img.load()
                fmt = img.format or "PNG"
                options = {"quality": 95} if fmt == "JPEG" else {}
                img.save(tmp, fmt, **options)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _delete_with_caption(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".txt").unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)  # its json_captions export, if any


async def _refetch(site: BooruSite, files: BlockingPool, path: Path, md5: str) -> tuple[str, Path]:
    """Fetch the image again by md5; returns the detail sentence and the image's path (the
    extension may change). Raises AppError when impossible."""
    name = site.info.name
    post = await site.find_md5(md5)
    if post is None or not site.image_allowed(post.file_url):
        raise NotFound(f"{name} has no post with this md5 any more.")
    target = path.with_name(f"{md5}.{image_extension(post)}")
    part = temp_beside(target)
    try:
        got = await site.download_image(post.file_url, part, files)
        if got.md5 != md5:
            raise AppError(f"{name} sent a different file than its md5 says; try again later.")
        await files.run_to_end(os.replace, part, target)
    finally:
        await files.run_to_end(part.unlink, missing_ok=True)
    if target != path:
        await files.run_to_end(path.unlink, missing_ok=True)
        return f"fetched again from {name} as {target.name}", target
    return f"fetched again from {name}", target


async def check_dataset(
    folder: str | os.PathLike[str], mode: str = "report", site: BooruSite | None = None, *,
    pools: ImagePools | None = None,
) -> CheckResult:
    """Check every image and caption in ``folder`` (not recursive); see the module doc for the modes.
    ``pools``: the caller's (a command's); without them the call makes its own and shuts them down
    when it ends."""
    if mode not in MODES:
        raise Unprocessable(f"Unknown check mode '{mode[:20]}'; use report, fix or delete.")
    with contextlib.ExitStack() as owned:
        if pools is None:
            pools = owned.enter_context(ImagePools.create())
        return await _check(Path(folder), mode, site, pools)


def _listing(root: Path) -> list[Path] | None:
    """The folder's files, sorted; None when there is no folder."""
    if not root.is_dir():
        return None
    return sorted(p for p in root.iterdir() if p.is_file())


async def _check(root: Path, mode: str, site: BooruSite | None, pools: ImagePools) -> CheckResult:
    run = pools.files.run_to_end
    files = await run(_listing, root)
    if files is None:
        raise NotFound(f"There is no folder at {root}.")
    result = CheckResult(folder=root, mode=mode)
    fetch_refusal = ""
    if site is not None:
        try:
            site.check_credentials()
        except AppError as exc:
            fetch_refusal = exc.detail.rstrip(".")
    stems_with_media = {p.stem for p in files if _is_media(p)}

    for path in files:
        name = path.name
        if name.startswith(".") and name.endswith((".part", ".tmp")):
            problem = CheckProblem(name, "partial_file", detail="left over from an interrupted download")
            if mode != "report":
                await run(path.unlink, missing_ok=True)
                problem.action = "deleted"
            result.problems.append(problem)
            continue
        if path.suffix.lower() == ".txt" and not name.startswith("."):
            if path.stem not in stems_with_media:
                problem = CheckProblem(name, "orphan_caption", detail="a caption without its image")
                if mode != "report":
                    await run(path.unlink, missing_ok=True)
                    problem.action = "deleted"
                result.problems.append(problem)
            continue
        if not _is_media(path):
            continue
        result.checked += 1
        kind, detail = await pools.measure.run_to_end(inspect_file, path)
        if kind is not None:
            problem = CheckProblem(name, kind, detail=detail)  # type: ignore[arg-type]
            result.problems.append(problem)
            if mode == "delete":
                await run(_delete_with_caption, path)
                problem.action = "deleted"
                continue
            if mode == "fix":
                path = await _fix(problem, path, site, pools, fetch_refusal)
                if problem.action == "deleted":
                    continue
        caption = path.with_suffix(".txt")
        if not await run(caption.exists):
            missing = CheckProblem(path.name, "missing_caption", detail="an image without its .txt caption")
            result.problems.append(missing)
            if mode == "delete":
                await run(_delete_with_caption, path)
                missing.action = "deleted"
            elif mode == "fix":
                await _fix_caption(missing, path, site, pools.files, fetch_refusal)
            continue
        if kind is None:
            result.ok += 1
    return result


def _is_media(path: Path) -> bool:
    ext = path.suffix.lstrip(".").lower()
    return not path.name.startswith(".") and (ext in IMAGE_EXTS or ext in OTHER_MEDIA_EXTS)


async def _fix(problem: CheckProblem, path: Path, site: BooruSite | None, pools: ImagePools,
               fetch_refusal: str) -> Path:
    """Repair one broken image, or remove it; returns where the image is now."""
    md5 = path.stem.lower()
    reasons = []
    if site is not None and not fetch_refusal and MD5_RE.fullmatch(md5):
        try:
            problem.detail, target = await _refetch(site, pools.files, path, md5)
            problem.action = "refetched"
            return target
        except AppError as exc:
            log.warning("refetch failed file=%s: %s", path.name, exc.detail)
            reasons.append(exc.detail.rstrip("."))
    elif MD5_RE.fullmatch(md5):
        reasons.append(f"it cannot be fetched again: {fetch_refusal}" if fetch_refusal
                       else "it cannot be fetched again without a booru site to fetch it from")
    if problem.problem == "truncated" and not MD5_RE.fullmatch(md5):
        # Not a booru download (no md5 to fetch it by): the readable part is the best there is.
        try:
            await pools.measure.run_to_end(resave_truncated, path)
        except (OSError, SyntaxError, ValueError) as exc:
            reasons.append(f"re-saving failed ({type(exc).__name__})")
        else:
            problem.action = "resaved"
            problem.detail = "re-saved from the readable part"
            return path
    await pools.files.run_to_end(_delete_with_caption, path)
    problem.action = "deleted"
    problem.detail = f"{problem.detail}; removed with its caption: " + ("; ".join(reasons) or "nothing can repair it")
    return path


async def _fix_caption(problem: CheckProblem, path: Path, site: BooruSite | None, files: BlockingPool,
                       fetch_refusal: str) -> None:
    """Write a missing caption from the site's tags, or remove the image (a dataset image needs one)."""
    md5 = path.stem.lower()
    if not MD5_RE.fullmatch(md5):
        reason = "it has no md5 name, so its tags cannot be looked up"
    elif site is None:
        reason = "no booru site was given to look its tags up on"
    elif fetch_refusal:
        reason = fetch_refusal
    else:
        try:
            post = await site.find_md5(md5)
        except AppError as exc:
            post, reason = None, exc.detail.rstrip(".")
        else:
            reason = f"{site.info.name} has no post with this md5 any more"
        if post is not None:
            text = build_caption(post.tags, CaptionOptions())
            await files.run_to_end(write_text_atomic, path.with_suffix(".txt"), text)
            problem.action = "recaptioned"
            problem.detail = f"caption written from {site.info.name}'s tags (default caption options)"
            return
    await files.run_to_end(_delete_with_caption, path)
    problem.action = "deleted"
    problem.detail = f"image removed: no caption, and none could be written ({reason})"
