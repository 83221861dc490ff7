"""jmbooru for scripts: the downloads of the server and the command line, as Python functions.

    import asyncio
    import jmbooru

    async def main() -> None:
        result = await jmbooru.download_dataset("danbooru", "hatsune_miku", "miku/", max_images=50)
        print(result.summary())
        archive = await jmbooru.download_album("350234", "comics/", format="cbz")
        print(archive)
        report = await jmbooru.check_dataset("miku/", mode="report")
        print(report.summary())

    asyncio.run(main())

Settings (booru credentials, JM domains, proxy, ...) come from the same places as for the server:
the environment, ``./.env`` and the user config file; pass ``settings=jmbooru.Settings(...)`` to
choose them in code. Every function is a coroutine; failures raise ``jmbooru.Error`` subclasses
whose ``detail`` is a sentence saying what went wrong and what to do.

Importing this module is cheap: each function loads what it needs when it is first called.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import AppError as Error

if TYPE_CHECKING:
    from app.config import Settings
    from app.sources.booru.base import BooruSite
    from app.sources.captions import CaptionOptions, PostFilters
    from app.sources.dataset import DatasetResult
    from app.sources.dataset_check import CheckResult

__all__ = [
    "CaptionOptions", "CheckResult", "DatasetResult", "Error", "PostFilters", "Settings", "check_dataset",
    "download_album", "download_dataset", "sites",
]


def __getattr__(name: str) -> Any:
    """The settings and option models, loaded when first used."""
    if name == "Settings":
        from app.config import Settings

        return Settings
    if name in ("CaptionOptions", "PostFilters"):
        from app.sources import captions

        return getattr(captions, name)
    if name == "DatasetResult":
        from app.sources.dataset import DatasetResult

        return DatasetResult
    if name == "CheckResult":
        from app.sources.dataset_check import CheckResult

        return CheckResult
    raise AttributeError(f"module 'jmbooru' has no attribute {name!r}")


def sites() -> list[str]:
    """The booru sites known here: gelbooru, safebooru, danbooru, yandere, konachan."""
    from app.sources.booru.sites import SITES

    return list(SITES)


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from app.config import Settings

    return Settings()


async def download_dataset(
    site: str | BooruSite,
    tags: str,
    out_dir: str | os.PathLike[str],
    max_images: int,
    *,
    caption: CaptionOptions | dict[str, Any] | None = None,
    filters: PostFilters | dict[str, Any] | None = None,
    workers: int | None = None,
    overwrite_captions: bool = False,
    settings: Settings | None = None,
    **site_options: Any,
) -> DatasetResult:
    """Download up to ``max_images`` posts of ``site`` matching ``tags`` into ``out_dir`` as a Stable
    Diffusion dataset: ``<md5>.<ext>`` images, each verified against its md5, and ``<md5>.txt``
    captions.

    ``site`` is a name (``jmbooru.sites()``) or a site object you built. ``caption`` and ``filters``
    take the options of the API (``{"category_order": ["character", "general"], "drop_categories":
    ["metadata"]}``, ``{"rating": ["general"], "min_width": 768}``). A second run into the same folder
    skips images already there and writes only missing captions (``overwrite_captions=True`` rewrites
    them). ``site_options`` override the site's settings: ``url``, ``api_key``, ``user_id``,
    ``login``, ``rate``, ``timeout``. Returns the counts and every file's outcome; raises
    ``jmbooru.Error`` when nothing can be downloaded (no match, refused credentials, unreachable site).
    """
    from app.sources.booru.registry import build_site
    from app.sources.captions import CaptionOptions, PostFilters
    from app.sources.dataset import download_dataset as run

    config = _settings(settings)
    options = caption if isinstance(caption, CaptionOptions) else CaptionOptions.model_validate(caption or {})
    wanted = filters if isinstance(filters, PostFilters) else PostFilters.model_validate(filters or {})
    owned = isinstance(site, str)
    booru = build_site(site, config, **site_options) if isinstance(site, str) else site
    try:
        booru.check_credentials()
        return await run(booru, tags, out_dir, max_images=max_images, caption=options, filters=wanted,
                         workers=workers or config.download_workers, overwrite_captions=overwrite_captions)
    finally:
        if owned:
            await booru.aclose()


async def download_album(
    album_id: str | int,
    out_dir: str | os.PathLike[str],
    *,
    format: str = "zip",  # noqa: A002 - the name the API and the CLI use
    layout: str = "flat",
    chapters: list[str] | None = None,
    settings: Settings | None = None,
) -> Path:
    """Download JM album ``album_id`` into ``out_dir`` as one archive, ``<title> [JM<id>].<ext>``,
    and return its path.

    ``format``: ``zip`` (pages numbered across chapters plus ``cover.jpg``), ``cbz`` (with
    ComicInfo.xml) or ``pdf``; ``layout``: ``flat`` or ``chapters`` (zip only); ``chapters``: chapter
    ids to keep (``/v1/info`` lists them). An archive of the same album and options already in the
    folder is returned as it is. Raises ``jmbooru.Error`` (unknown album, JM unreachable, ...).
    """
    from pydantic import ValidationError

    from app.jobs.kinds.album import AlbumSpec
    from app.jobs.specs import spec_problem
    from app.sources.album_folder import FolderPools, download_to_folder

    try:
        spec = AlbumSpec(album_id=str(album_id).upper().removeprefix("JM"), format=format, layout=layout,
                         chapters=chapters)
    except ValidationError as exc:
        from app.errors import Unprocessable

        raise Unprocessable(spec_problem(exc)) from None
    config = _settings(settings)
    with FolderPools.create(config) as pools:  # this call's, shut down when it ends
        outcome = await download_to_folder(config, [spec], Path(out_dir), pools)
    if outcome.downloaded:
        return outcome.downloaded[0]
    if outcome.skipped:
        return outcome.skipped[0]
    from app.errors import UpstreamError

    raise UpstreamError(outcome.errors.get(spec.album_id, f"Album {spec.album_id} could not be downloaded."))


async def check_dataset(
    folder: str | os.PathLike[str],
    mode: str = "report",
    *,
    site: str | BooruSite | None = None,
    settings: Settings | None = None,
    **site_options: Any,
) -> CheckResult:
    """Check a dataset folder: every image decodes and matches the md5 in its name, every image has
    its caption and every caption its image.

    ``mode``: ``report`` (change nothing), ``fix`` (fetch broken images again and write missing
    captions from ``site``, remove what cannot be repaired) or ``delete`` (remove every problem).
    Returns each problem with what was done about it.
    """
    from app.sources.booru.registry import build_site
    from app.sources.dataset_check import check_dataset as run

    owned = isinstance(site, str)
    booru = build_site(site, _settings(settings), **site_options) if isinstance(site, str) else site
    try:
        return await run(folder, mode, booru)
    finally:
        if owned and booru is not None:
            await booru.aclose()
