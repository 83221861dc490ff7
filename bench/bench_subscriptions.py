"""Subscriptions: the scheduler's tick over many idle subscriptions, and many due checks at once.

1. 10,000 idle subscriptions (not due) in the embedded store (and in Redis when redis-server is
   installed): the time one tick takes (``SubscriptionService.run_due``), median and p99 of 200 ticks.
   Target: < 5 ms a tick.
2. 100 due ``jm_album`` checks, the JM double answering ``/album`` after 1 s: the time from the tick
   to the last recorded check, and the most ``/album`` requests the double saw at once (the
   politeness bound, ``JMBOORU_SUBSCRIPTION_CONCURRENCY``). Target: ≤ 3 s, bounded.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import (
    arg_parser,
    environment_md,
    jm_settings,
    machine,
    median,
    percentile,
    publish,
    save_raw,
    verdict,
)

from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.wiring import Engine
from app.sources import jm as jm_source
from app.subscriptions.models import Subscription
from app.subscriptions.store import SqliteSubscriptionStore
from tests.fakes.jm import FakeAlbum, FakeChapter, JmDouble

DUE = 100


def settings_for(data: Path, jm: JmDouble | None = None, **extra: Any) -> Settings:
    return jm_settings(data, jm.host if jm else "127.0.0.1:9", subscription_min_interval_seconds=1,
                       subscription_tick_seconds=3600, **extra)  # type: ignore[no-any-return]


def idle(i: int) -> Subscription:
    now = time.time()
    return Subscription(id=f"idle{i:05d}", kind="jm_album", target={"album_id": str(100000 + i)}, name=f"idle {i}",
                        interval_minutes=360, last_checked_at=now, next_check_at=now + 3600 + i,
                        seen={"chapters": [str(100000 + i)]})


async def tick_times(store: Any, engine: Engine, idles: int, ticks: int) -> list[float]:
    await store.open()
    for start in range(0, idles, 500):
        await asyncio.gather(*(store.put(idle(i)) for i in range(start, min(idles, start + 500))))
    engine.subscriptions.store = store
    times = []
    for _ in range(ticks):
        t0 = time.perf_counter()
        await engine.subscriptions.run_due()
        times.append(time.perf_counter() - t0)
    return times


async def idle_ticks(tmp: Path, idles: int, ticks: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    engine = Engine(settings_for(tmp / "sqlite"))
    engine.storage.prepare()
    pool = BlockingPool(2, "bench-subs")
    results["SQLite (embedded)"] = await tick_times(SqliteSubscriptionStore(tmp / "subs.db", pool), engine, idles, ticks)
    pool.shutdown(wait=False)
    if shutil.which("redis-server"):
        from app.jobs.redis.store import connect
        from app.subscriptions.redis_store import RedisSubscriptionStore
        from tests.cluster import RedisServer

        server = RedisServer(tmp)
        try:
            results["Redis (scale-out)"] = await tick_times(RedisSubscriptionStore(connect(server.url)), engine, idles, ticks)
        finally:
            server.stop()
    return results


class ConcurrencyProbe:
    """Wraps the double's request handling to count ``/album`` requests in flight."""

    def __init__(self, jm: JmDouble) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        original = jm._handle  # type: ignore[attr-defined]

        def handle(h: Any) -> None:
            counted = h.path.startswith("/album")
            if counted:
                with self.lock:
                    self.now += 1
                    self.peak = max(self.peak, self.now)
            try:
                original(h)
            finally:
                if counted:
                    with self.lock:
                        self.now -= 1

        jm._handle = handle  # type: ignore[attr-defined]


async def due_checks(tmp: Path, concurrency: int) -> dict[str, float]:
    albums = [FakeAlbum(str(700000 + i), f"Due {i}", [FakeChapter(str(700000 + i), "1", 1)]) for i in range(DUE)]
    with JmDouble(albums) as jm:
        probe = ConcurrencyProbe(jm)
        engine = Engine(settings_for(tmp / "due", jm, subscription_concurrency=concurrency))
        engine.storage.prepare()
        await engine.subscriptions.store.open()
        now = time.time()
        for i in range(DUE):
            sub = Subscription(id=f"due{i:03d}", kind="jm_album", target={"album_id": str(700000 + i)},
                               name=f"due {i}", interval_minutes=360, last_checked_at=now - 3600,
                               next_check_at=now - 1, seen={"chapters": [str(700000 + i)]})
            await engine.subscriptions.store.put(sub)
        jm_source.apply_module_settings(engine.settings)
        await engine.jm.client()
        jm.set_latency(1.0, "/album")
        t0 = time.perf_counter()
        started = await engine.subscriptions.run_due()
        await asyncio.gather(*list(engine.subscriptions._running.values()))
        elapsed = time.perf_counter() - t0
        checked = sum(1 for s in await engine.subscriptions.store.all() if s.last_checked_at and s.last_checked_at > now)
        await engine.subscriptions.store.close()
        engine.jm_pool.shutdown(wait=False)
        return {"started": started, "checked": checked, "seconds": elapsed, "peak": probe.peak}


def main() -> None:
    args = arg_parser(__doc__, idle=10_000, ticks=200).parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-subs-"))
    try:
        ticks = asyncio.run(idle_ticks(tmp, args.idle, args.ticks))
        due = asyncio.run(due_checks(tmp, Settings.model_fields["subscription_concurrency"].default))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_raw("subscriptions", {"ticks": ticks, "due": due})
    rows = []
    for store, times in ticks.items():
        med, p99 = median(times) * 1000, percentile(times, 99) * 1000
        rows.append(f"| tick over {args.idle:,} idle subscriptions, {store} | median {med:.2f} ms, p99 {p99:.2f} ms "
                    f"| < 5 ms | {verdict(p99 < 5)} |")
    rows.append(f"| {DUE} due `jm_album` checks, `/album` 1 s: tick to last check recorded | {due['seconds']:.2f} s "
                f"({int(due['checked'])} checked) | ≤ 3 s | {verdict(due['seconds'] <= 3 and due['checked'] == DUE)} |")
    rows.append(f"| most `/album` requests at once | {int(due['peak'])} (JMBOORU_SUBSCRIPTION_CONCURRENCY = "
                f"{Settings.model_fields['subscription_concurrency'].default}) | bounded | "
                f"{verdict(due['peak'] <= Settings.model_fields['subscription_concurrency'].default)} |")
    markdown = "\n".join([
        "## Subscriptions (`bench/bench_subscriptions.py`)", "",
        environment_md(machine(), [
            f"Idle: {args.idle:,} subscriptions not due, {args.ticks} calls of the scheduler's tick (`run_due`), in one process",
            f"Due: {DUE} `jm_album` subscriptions overdue, the JM double answering `/album` after 1 s; real jmcomic"]),
        "", "| figure | measured | target | result |", "|---|---|---|---|", *rows])
    publish("subscriptions", markdown, args)


if __name__ == "__main__":
    main()
