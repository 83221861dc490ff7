"""Reads side by side with a seed-shaped baseline, and /v1/health under load (issue 14).

    .venv/bin/python bench/bench_reads.py [--runs 5] [--no-write]

1. Burst: 50 distinct, uncached searches sent at once while the JM double takes 1 s per
   ``/search``. jmbooru (``JMBOORU_CACHE_TTL_SECONDS=0``) against ``bench/_seed_like_app.py``
   (the seed's shape: a plain-``def`` endpoint in Starlette's 40-thread pool calling jmcomic's sync
   client), alternating, ``--runs`` each; the figure is when the last answer arrived. Meanwhile
   a second process sends ``GET /v1/health`` to jmbooru every 20 ms (p99).
2. ``/v1/health`` p99 under wrk with 64 keep-alive connections, the server pinned to one core,
   with the start-up heap frozen out of garbage collection (the default) and without
   (``JMBOORU_GC_FREEZE=false``), alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from typing import Any

import httpx
from _common import (
    SERVER_CPU,
    DoubleProcess,
    ServerProcess,
    arg_parser,
    environment_md,
    jm_env,
    joined,
    machine,
    median,
    median_of,
    percentile,
    probe_result,
    publish,
    run_load,
    save_raw,
    start_probe,
    verdict,
)

BURST = 50
UPSTREAM_SECONDS = 1.0
TARGET_LAST_S = 1.3
TARGET_HEALTH_BURST_MS = 20.0
TARGET_HEALTH_WRK_MS = 15.0


async def burst(url: str, tag: str) -> float:
    """Send BURST distinct searches at once; seconds until the last answer."""
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 limits=httpx.Limits(max_connections=BURST + 5)) as http:
        start = time.perf_counter()

        async def one(i: int) -> None:
            resp = await http.get(f"/v1/search/{tag}-{i}/1")
            resp.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(BURST)))
        return time.perf_counter() - start


def burst_runs(args: argparse.Namespace) -> dict[str, Any]:
    ours: list[float] = []
    seed: list[float] = []
    health: list[float] = []
    with DoubleProcess() as double:
        double.set_latency(UPSTREAM_SECONDS, "/search")
        env = jm_env(double.host, JMBOORU_CACHE_TTL_SECONDS="0")
        with ServerProcess(env) as server, ServerProcess(env, target="bench._seed_like_app:app") as baseline:
            asyncio.run(burst(server.url, "warm"))
            asyncio.run(burst(baseline.url, "warm"))
            for run in range(args.runs):
                prober = start_probe(server.url + "/v1/health", 0.02, seconds=UPSTREAM_SECONDS * 2.5)
                time.sleep(0.2)
                ours.append(asyncio.run(burst(server.url, f"ours{run}")))
                health.append(percentile(probe_result(prober), 99))
                seed.append(asyncio.run(burst(baseline.url, f"seed{run}")))
    return {"ours_last_s": ours, "seed_last_s": seed, "health_p99_ms": health}


def health_runs(args: argparse.Namespace) -> dict[str, Any]:
    frozen: list[dict[str, Any]] = []
    thawed: list[dict[str, Any]] = []
    with DoubleProcess() as double:
        with ServerProcess(jm_env(double.host), cpus=SERVER_CPU) as on, \
                ServerProcess(jm_env(double.host, JMBOORU_GC_FREEZE="false"), cpus=SERVER_CPU) as off:
            for server in (on, off):  # warm
                run_load(server.url + "/v1/health", 64, 1)
            for _ in range(args.runs):
                frozen.append(run_load(on.url + "/v1/health", 64, args.duration))
                thawed.append(run_load(off.url + "/v1/health", 64, args.duration))
    return {"frozen": frozen, "thawed": thawed, "loadgen": "wrk" if shutil.which("wrk") else "python"}


def report(b: dict[str, Any], h: dict[str, Any], args: argparse.Namespace) -> str:
    m = machine()
    ours, seed = median(b["ours_last_s"]), median(b["seed_last_s"])
    health = median(b["health_p99_ms"])
    frozen_p99, thawed_p99 = median_of(h["frozen"], "p99_ms"), median_of(h["thawed"], "p99_ms")
    lines = [
        "## Reads beside the seed (`bench/bench_reads.py`)",
        "",
        environment_md(m, [
            f"Burst: {BURST} distinct uncached searches at once, the JM double {UPSTREAM_SECONDS:.0f} s per "
            f"`/search`; jmbooru (`JMBOORU_CACHE_TTL_SECONDS=0`) and `bench/_seed_like_app.py` (the seed's "
            f"shape: a plain-`def` endpoint in Starlette's 40-thread pool calling jmcomic) alternating, "
            f"{args.runs} runs each, medians",
            f"Health under load: {h['loadgen']}, 64 keep-alive connections, {args.duration:.0f} s runs, server "
            "pinned to CPU 0, alternating frozen / not frozen start-up heap",
        ]),
        "",
        "| figure | jmbooru | baseline | target | result |",
        "|---|---|---|---|---|",
        f"| {BURST} uncached searches on a 1 s upstream: last answer | {ours:.2f} s | {seed:.2f} s (40-thread pool) "
        f"| ≤ {TARGET_LAST_S} s | {verdict(ours <= TARGET_LAST_S)} |",
        f"| `/v1/health` p99 during that burst | {health:.1f} ms | | < {TARGET_HEALTH_BURST_MS:.0f} ms "
        f"| {verdict(health < TARGET_HEALTH_BURST_MS)} |",
        f"| `/v1/health` p99, 64 connections, one core | {frozen_p99:.1f} ms (start-up heap frozen) "
        f"| {thawed_p99:.1f} ms (`JMBOORU_GC_FREEZE=false`) | < {TARGET_HEALTH_WRK_MS:.0f} ms "
        f"| {verdict(frozen_p99 < TARGET_HEALTH_WRK_MS)} |",
        "",
        f"Runs (last answer, s): jmbooru {joined(b['ours_last_s'])}; baseline {joined(b['seed_last_s'])}. Health "
        f"p99 under wrk (ms): frozen {joined((r['p99_ms'] for r in h['frozen']), '.1f')}; not frozen "
        f"{joined((r['p99_ms'] for r in h['thawed']), '.1f')}.",
    ]
    return "\n".join(lines)


def main() -> None:
    args = arg_parser(__doc__, runs=5, duration=5.0).parse_args()
    b = burst_runs(args)
    h = health_runs(args)
    save_raw("reads", {"burst": b, "health": h})
    publish("reads", report(b, h, args), args)


if __name__ == "__main__":
    main()
