"""Where subscriptions live: the ``SubscriptionStore`` protocol and its embedded SQLite implementation.

The Redis implementation is in ``app.subscriptions.redis_store``. Both keep each subscription as one
JSON document plus its next due time, indexed, so a tick over thousands of idle subscriptions is one
indexed query.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from app.blocking import BlockingPool
from app.sqlite_wal import connect_wal, free_space, is_new
from app.subscriptions.models import Subscription

log = logging.getLogger("jmbooru.subscriptions")
T = TypeVar("T")


class SubscriptionStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def get(self, sub_id: str) -> Subscription | None: ...
    async def all(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        ...
    async def put(self, sub: Subscription) -> None: ...
    async def delete(self, sub_id: str) -> bool: ...
    async def due(self, now: float, limit: int = 1000) -> list[str]:
        """Ids of enabled subscriptions whose next check is at or before ``now``."""
        ...
    async def claim(self, sub_id: str, due_at: float, ttl_seconds: float) -> bool:
        """True for exactly one caller per subscription and due time, across every process."""
        ...


class SqliteSubscriptionStore:
    """Subscriptions in ``subscriptions.db`` in the data folder (the archive sweep never looks there)."""

    def __init__(self, path: Path, pool: BlockingPool) -> None:
        self.path = path
        self.pool = pool
        self._db: sqlite3.Connection | None = None
        self._claims: dict[str, float] = {}  # one process: an in-memory claim is exactly-once
        self._lock = asyncio.Lock()
        # One connection, used from the pool's threads one at a time: sqlite3 objects must never be
        # used by two threads at once (closing one mid-query crashes the process).
        self._db_lock = threading.Lock()
        self._closed = False

    async def open(self) -> None:
        try:
            self._db = await self.pool.run(self._connect)
        except sqlite3.OperationalError as exc:
            if not is_new(self.path):
                raise
            # A new data folder on a full disk: nothing to read yet; created by the first use that fits.
            log.warning("subscription database %s not created yet (%s); is the disk full? free: %s",
                        self.path, exc, free_space(self.path.parent))

    def _connect(self) -> sqlite3.Connection:
        db = connect_wal(self.path, isolation_level=None)
        try:
            db.execute("CREATE TABLE IF NOT EXISTS subscriptions (id TEXT PRIMARY KEY, created REAL NOT NULL, "
                       "next_check REAL, data TEXT NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS subscriptions_due ON subscriptions(next_check)")
        except BaseException:
            db.close()
            raise
        return db

    async def close(self) -> None:
        self._closed = True
        if self._db is not None:
            db, self._db = self._db, None

            def close() -> None:
                with self._db_lock:
                    db.close()

            await self.pool.run(close)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self._closed:
                raise RuntimeError("the subscription store is not open")
            self._db = self._connect()  # not created at start (a full disk): try again now
        return self._db

    async def _run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._db_lock:
                return call(self._conn())

        return await self.pool.run(locked)

    async def get(self, sub_id: str) -> Subscription | None:
        row = await self._run(
            lambda db: db.execute("SELECT data FROM subscriptions WHERE id = ?", (sub_id,)).fetchone())
        return Subscription.model_validate_json(row[0]) if row else None

    async def all(self) -> list[Subscription]:
        rows = await self._run(lambda db: db.execute("SELECT data FROM subscriptions ORDER BY created, id").fetchall())
        return [Subscription.model_validate_json(r[0]) for r in rows]

    async def put(self, sub: Subscription) -> None:
        data = sub.model_dump_json()
        next_check = sub.next_check_at if sub.enabled else None
        async with self._lock:
            await self._run(lambda db: db.execute(
                "INSERT INTO subscriptions (id, created, next_check, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET next_check = excluded.next_check, data = excluded.data",
                (sub.id, sub.created_at, next_check, data)))

    async def delete(self, sub_id: str) -> bool:
        async with self._lock:
            cursor = await self._run(lambda db: db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,)))
        return bool(cursor.rowcount)

    async def due(self, now: float, limit: int = 1000) -> list[str]:
        rows = await self._run(lambda db: db.execute(
            "SELECT id FROM subscriptions WHERE next_check IS NOT NULL AND next_check <= ? "
            "ORDER BY next_check LIMIT ?", (now, limit)).fetchall())
        return [r[0] for r in rows]

    async def claim(self, sub_id: str, due_at: float, ttl_seconds: float) -> bool:
        now = time.monotonic()
        key = f"{sub_id}:{due_at!r}"
        self._claims = {k: t for k, t in self._claims.items() if t > now}
        if key in self._claims:
            return False
        self._claims[key] = now + ttl_seconds
        return True
