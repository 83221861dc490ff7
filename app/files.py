"""Files on disk, the one way: an md5 read in chunks, and writes that appear whole or not at all.

Every function here blocks; callers on the event loop run them in one of the Engine's pools.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    """The md5 of the file's bytes (hex), read 1 MiB at a time; raises OSError."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def temp_beside(path: Path, suffix: str = ".part") -> Path:
    """A hidden, unique name next to ``path`` (``.<name>.<random>.part``): never listed as a dataset
    file or a page, and what ``jmbooru check`` reports and removes as left over (``.part``/``.tmp``)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")


@contextlib.contextmanager
def atomic_output(dest: Path, part: Path | None = None) -> Iterator[Path]:
    """Yield a temporary file to write (``part``, by default ``<dest>.part``); it becomes ``dest``
    only when the block completes.

    Whatever goes wrong (including cancellation), the partial file is removed, so nobody is ever
    served half a file. The archive folder's clean-up knows an archive being written by its
    ``<name>.part``. No fsync: the rename already guarantees that against a crash of the process;
    against a crash of the machine an archive is a cache of what upstream has (it expires in 30
    minutes anyway), and waiting for the disk cost every job several milliseconds.
    """
    part = part if part is not None else dest.with_name(dest.name + ".part")
    try:
        yield part
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` (UTF-8) as ``path``, written under a hidden ``.tmp`` name and renamed into place."""
    with atomic_output(path, temp_beside(path, ".tmp")) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` as ``path``, written under a hidden ``.part`` name and renamed into place."""
    with atomic_output(path, temp_beside(path)) as tmp:
        tmp.write_bytes(data)
