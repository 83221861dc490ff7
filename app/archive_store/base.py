"""Where finished archives live: one small interface, a folder today and a bucket for several hosts.

The job service puts each finished archive here, the sweep deletes expired ones, and the file
endpoints serve them; none of them knows which implementation the ``Engine`` chose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from app.errors import AppError

StorageMode = Literal["local", "s3"]


class ArchiveStoreUnavailable(AppError):
    """The archive store (the bucket) cannot be reached or refused the operation: never a missing file."""

    status_code = 503
    default_detail = "The archive storage is unreachable right now; try again in a moment."


class ArchiveStoreSetupError(Exception):
    """The store cannot be used at all (no bucket, refused credentials, a missing setting): start-up stops
    with this one sentence (``jmbooru serve`` and ``worker`` exit with status 2)."""


@dataclass(frozen=True)
class SignedLink:
    url: str
    expires_at: float  # when the URL stops working (seconds since the epoch)


class ArchiveStore(Protocol):
    mode: StorageMode

    async def check(self) -> None:
        """Raise ``ArchiveStoreSetupError`` with a sentence if this store cannot be used."""

    def build_path(self, file_name: str, work_dir: Path) -> Path:
        """Where the archive is built: its final place for a folder, the job's scratch folder for a bucket."""

    async def put(self, file_name: str, built: Path, media_type: str, size: int) -> int:
        """Store the archive built at ``build_path`` (``size`` bytes, as its builder reported); returns its
        stored size. For a bucket, returns only once the upload completed (the scratch copy is then removed)."""

    def local_path(self, file_name: str) -> Path | None:
        """The archive as a file on this host (served with sendfile), or None when it lives elsewhere."""

    async def size(self, file_name: str) -> int | None:
        """The stored size, or None when there is no such archive (raises when the store is unreachable)."""

    def read(self, file_name: str, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        """Bytes ``start`` up to ``end`` (exclusive), streamed: a ranged read, never the whole object."""

    async def missing(self, file_names: list[str]) -> set[str]:
        """The names that have no stored archive (raises when the store is unreachable)."""

    async def delete(self, file_name: str) -> None:
        """Remove the archive; a missing one is not an error."""

    async def sign(self, file_name: str, ttl_seconds: float) -> SignedLink | None:
        """A presigned GET URL valid at most ``ttl_seconds``; None when this store has no such links."""

    async def usage(self) -> tuple[int, int]:
        """How many archives are stored and their bytes (for /metrics)."""

    async def close(self) -> None: ...
