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
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    PYTHON,
    DoubleProcess,
    ServerProcess,
    environment_md,
    jm_env,
    machine,
    median,
    percentile,
    publish,
    save_raw,
    verdict,
)
from bench.bench_jm_read import run_load  # noqa: E402

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


def probe_health(url: str, seconds: float) -> subprocess.Popen[str]:
    code = (
        "import http.client, json, sys, time\n"
        f"c = http.client.HTTPConnection('{url.removeprefix('http://')}', timeout=30)\n"
        f"end = time.monotonic() + {seconds}; out = []\n"
        "while time.monotonic() < end:\n"
        "    s = time.perf_counter(); c.request('GET', '/v1/health'); r = c.getresponse(); r.read()\n"
        "    out.append((time.perf_counter() - s) * 1000); time.sleep(0.02)\n"
        "print(json.dumps(out))\n"
    )
    return subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, text=True)


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
                prober = probe_health(server.url, UPSTREAM_SECONDS * 2.5)
                time.sleep(0.2)
                ours.append(asyncio.run(burst(server.url, f"ours{run}")))
                out, _ = prober.communicate(timeout=60)
                health.append(percentile(json.loads(out), 99))
                seed.append(asyncio.run(burst(baseline.url, f"seed{run}")))
    return {"ours_last_s": ours, "seed_last_s": seed, "health_p99_ms": health}


def health_runs(args: argparse.Namespace) -> dict[str, Any]:
    frozen: list[dict[str, Any]] = []
    thawed: list[dict[str, Any]] = []
    with DoubleProcess() as double:
        with ServerProcess(jm_env(double.host), cpus={0}) as on, \
                ServerProcess(jm_env(double.host, JMBOORU_GC_FREEZE="false"), cpus={0}) as off:
            for server in (on, off):  # warm
                run_load(server.url + "/v1/health", 64, 1)
            for _ in range(args.runs):
                frozen.append(run_load(on.url + "/v1/health", 64, args.duration))
                thawed.append(run_load(off.url + "/v1/health", 64, args.duration))
    return {"frozen": frozen, "thawed": thawed, "loadgen": "wrk" if shutil.which("wrk") else "python"}


def _join(values: Any) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def report(b: dict[str, Any], h: dict[str, Any], args: argparse.Namespace) -> str:
    m = machine()
    ours, seed = median(b["ours_last_s"]), median(b["seed_last_s"])
    health = median(b["health_p99_ms"])
    frozen_p99 = median([r["p99_ms"] for r in h["frozen"]])
    thawed_p99 = median([r["p99_ms"] for r in h["thawed"]])
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
        f"Runs (last answer, s): jmbooru {', '.join(f'{v:.2f}' for v in b['ours_last_s'])}; baseline "
        f"{', '.join(f'{v:.2f}' for v in b['seed_last_s'])}. Health p99 under wrk (ms): frozen "
        f"{_join(r['p99_ms'] for r in h['frozen'])}; not frozen {_join(r['p99_ms'] for r in h['thawed'])}.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    b = burst_runs(args)
    h = health_runs(args)
    save_raw("reads", {"burst": b, "health": h})
    publish("reads", report(b, h, args), args.out, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
