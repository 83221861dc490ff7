"""Opening our SQLite files in WAL mode, also on a full disk.

WAL needs a shared-memory file next to the database, which a full disk cannot hold, so a plain
open fails and the server would not start. With exclusive locking (one process owns the data
folder in the embedded mode anyway) SQLite keeps that index in memory: what is stored reads as
usual, and writes work again once there is space.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

log = logging.getLogger("jmbooru")


def connect_wal(path: Path, **options: Any) -> sqlite3.Connection:
    """A connection in WAL mode; exclusive locking when the disk has no room for the WAL index."""
    db = sqlite3.connect(path, check_same_thread=False, **options)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        return db
    except sqlite3.OperationalError as exc:
        db.close()
        log.warning("database %s opened in exclusive mode (%s); is the disk full? free: %s",
                    path, exc, free_space(path.parent))
    db = sqlite3.connect(path, check_same_thread=False, **options)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA journal_mode=WAL")
    except BaseException:
        db.close()
        raise
    return db


def is_new(path: Path) -> bool:
    """True when the database holds nothing yet (missing or empty): safe to create later."""
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True


def free_space(folder: Path) -> str:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return "unknown"
    return f"{stat.f_bavail * stat.f_frsize // 1024} KB"
