"""The job kinds: ``KINDS`` is the only place a kind is registered.

A kind is its typed spec (what a request asks for, its dedupe key and title) and its runner (how
it is downloaded), both in the kind's own module. A new kind is one module plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.jobs.kinds.album import AlbumRunner, AlbumSpec
from app.jobs.kinds.booru import BooruRunner, BooruSpec
from app.jobs.kinds.pool import PoolRunner, PoolSpec
from app.jobs.specs import JobSpec

if TYPE_CHECKING:
    from app.blocking import BlockingPool
    from app.config import Settings
    from app.jobs.runner import Runner
    from app.sources.booru.base import BooruSite
    from app.sources.booru.files import ImagePools
    from app.sources.jm_pages import PageFetching


@dataclass(frozen=True)
class RunnerParts:
    """What runners may need from the Engine that builds them."""

    settings: Settings
    album_pool: BlockingPool
    pages: PageFetching
    booru_sites: Mapping[str, BooruSite]
    image_pools: ImagePools  # booru images' writes and measuring (files, measure)
    # jmcomic's album detail from the process's recent look-ups (JmSource.recent_album_detail), or None.
    album_details: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class Kind:
    spec: type[JobSpec]
    runner: Callable[[RunnerParts], Runner[Any]]


KINDS: dict[str, Kind] = {
    AlbumSpec.kind: Kind(AlbumSpec, lambda p: AlbumRunner(p.settings, p.album_pool, p.pages, p.album_details)),
    BooruSpec.kind: Kind(BooruSpec, lambda p: BooruRunner(p.settings, p.booru_sites, p.image_pools)),
    PoolSpec.kind: Kind(PoolSpec, lambda p: PoolRunner(p.settings, p.booru_sites, p.image_pools)),
}


def build_runners(parts: RunnerParts) -> dict[str, Runner[Any]]:
    """The runner of each kind, by ``JobSpec.kind``."""
    return {name: kind.runner(parts) for name, kind in KINDS.items()}
