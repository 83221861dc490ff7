"""Where finished archives live, chosen once from ``JMBOORU_STORAGE`` (see ``base.ArchiveStore``)."""

from __future__ import annotations

import importlib.util

from app.archive_store.base import (
    ArchiveStore,
    ArchiveStoreSetupError,
    ArchiveStoreUnavailable,
    SignedLink,
    StorageMode,
)
from app.archive_store.local import LocalArchiveStore
from app.blocking import BlockingPool
from app.config import Settings
from app.storage import Storage

__all__ = ["ArchiveStore", "ArchiveStoreSetupError", "ArchiveStoreUnavailable", "LocalArchiveStore", "SignedLink",
           "StorageMode", "build_archive_store", "missing_s3_extra"]

S3_EXTRA_HINT = 'pip install "jmbooru[s3]"'


def missing_s3_extra() -> str | None:
    """The sentence to print when S3 storage is asked for but obstore is not installed."""
    try:
        found = importlib.util.find_spec("obstore") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return f"JMBOORU_STORAGE=s3 needs the S3 extra (obstore), which this installation lacks: {S3_EXTRA_HINT}."


def build_archive_store(settings: Settings, storage: Storage, files_pool: BlockingPool) -> ArchiveStore:
    if settings.storage == "local":
        return LocalArchiveStore(storage, files_pool)
    if problem := missing_s3_extra():
        raise ArchiveStoreSetupError(problem)
    from app.archive_store.s3 import S3ArchiveStore

    return S3ArchiveStore(settings, files_pool)
