"""Archives in ``<JMBOORU_DATA_DIR>/archives``, as they always were: built in place, served as files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiofiles

from app.archive_store.base import SignedLink, StorageMode
from app.blocking import BlockingPool
from app.storage import Storage

READ_CHUNK = 256 * 1024


class LocalArchiveStore:
    mode: StorageMode = "local"

    def __init__(self, storage: Storage, files_pool: BlockingPool) -> None:
        self.storage = storage
        self.files_pool = files_pool

    async def check(self) -> None:
        return None

    def build_path(self, file_name: str, work_dir: Path) -> Path:
        return self.storage.archive_root / file_name

    async def put(self, file_name: str, built: Path, media_type: str, size: int) -> int:
        return size  # built in its final place already: nothing to move, nothing to ask the disk

    def local_path(self, file_name: str) -> Path | None:
        path = self.storage.archive_path(file_name)
        return path if path is not None and path.is_file() else None

    async def size(self, file_name: str) -> int | None:
        path = self.local_path(file_name)
        return None if path is None else (await self.files_pool.run(path.stat)).st_size

    async def read(self, file_name: str, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        path = self.storage.archive_path(file_name)
        if path is None:
            return
        async with aiofiles.open(path, "rb") as f:
            await f.seek(start)
            left = end - start
            while left > 0:
                chunk = await f.read(min(READ_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    async def missing(self, file_names: list[str]) -> set[str]:
        return await self.files_pool.run(self.storage.missing_archives, file_names)

    async def delete(self, file_name: str) -> None:
        await self.files_pool.run(self.storage.remove_archive, file_name)

    async def sign(self, file_name: str, ttl_seconds: float) -> SignedLink | None:
        return None

    async def usage(self) -> tuple[int, int]:
        return await self.files_pool.run(self.storage.archive_usage)

    async def close(self) -> None:
        return None
