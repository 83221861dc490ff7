"""Images on their way to disk: written and hashed in one pass, off the event loop when large."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from app.blocking import BlockingPool


@dataclass(frozen=True)
class ImagePools:
    """The pools booru images go through on their way to disk and into a dataset's exports.

    Owned by whoever runs the downloads: the Engine in a server or worker (shut down when it
    stops), one pair per command on the command line and per call of the Python API. Nothing
    builds them at import.
    """

    # File writes and hashing get a small pool of their own, so the event loop never blocks on disk.
    files: BlockingPool
    # Measuring landed images for a dataset's exports (decode, hashes, <md5>.json) has a pool of its own:
    # sharing the file pool made downloads wait behind it for their writes on a busy machine.
    measure: BlockingPool

    @classmethod
    def create(cls) -> ImagePools:
        return cls(files=BlockingPool(4, "booru-files"), measure=BlockingPool(2, "booru-measure"))

    def shutdown(self) -> None:
        self.files.shutdown(wait=False)
        self.measure.shutdown(wait=False)

    def __enter__(self) -> ImagePools:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.shutdown()


class HashingWriter:
    """Buffers a download and writes and hashes it 1 MiB at a time in the file pool.

    Never on the event loop: creating a file costs ~0.4 ms of kernel time on a slow disk, and with
    16 images in flight those stalls added up to a quarter of a 250-image download (measured by
    bench/bench_cli_dataset.py). A small image is one hop to a thread: open, hash, write, close.
    """

    FLUSH = 1 << 20

    def __init__(self, path: Path, pool: BlockingPool) -> None:
        self.path = path
        self.pool = pool  # the file pool of ImagePools
        self.md5 = hashlib.md5()
        self.size = 0
        self._file: IO[bytes] | None = None
        self._buf: list[bytes] = []
        self._buffered = 0

    async def write(self, chunk: bytes) -> None:
        self._buf.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= self.FLUSH:
            await self._flush(final=False)

    async def close(self) -> None:
        await self._flush(final=True)

    async def _flush(self, final: bool) -> None:
        data = b"".join(self._buf)
        self._buf, self._buffered = [], 0
        await self.pool.run_to_end(self._flush_sync, data, final)

    def _flush_sync(self, data: bytes, final: bool) -> None:
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in final/abort
        self.md5.update(data)
        self._file.write(data)
        self.size += len(data)
        if final:
            self._file.close()

    def abort(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
