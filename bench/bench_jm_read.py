"""JM read API: cached req/s on one core, and /v1/health latency while the upstream is slow.

    .venv/bin/python bench/bench_jm_read.py [--runs 5] [--duration 5] [--no-write] [--no-profile]

1. ``uvicorn app.main:app`` (one worker process) pinned to CPU 0 with ``taskset -c 0``; the
   load generator (``wrk`` when installed, else a Python keep-alive generator), the JM double and
   this script on CPU 1. ``GET /v1/rank/day`` and ``GET /v1/info/100001`` are requested once
   (so they are cached), then hammered with 64 keep-alive connections; the double counts its
   requests to prove that the runs were served from the cache. Besides req/s the server's own
   CPU time per request is read from /proc/<pid>/stat: on this shared machine the server often
   gets less than its whole core, and "1e6 / CPU µs per request" is what one whole core would
   serve.
2. ``JMBOORU_CACHE_TTL_SECONDS=0`` and a 2 s delay on the double's ``/search``: 50 distinct
   searches are kept in flight (a new one starts when one ends) while another process sends 200
   sequential ``GET /v1/health`` 20 ms apart over one keep-alive connection.
3. When a cached endpoint misses its target and py-spy is available, the server is profiled
   under load and the event-loop thread's samples are broken down.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from typing import Any

from _common import (
    BENCH,
    CLIENT_CPU,
    SERVER_CPU,
    DoubleProcess,
    ServerProcess,
    arg_parser,
    environment_md,
    jm_env,
    machine,
    median,
    percentile,
    pin_self,
    probe_result,
    publish,
    run_load,
    save_raw,
    start_probe,
    verdict,
    wait_until,
)

TARGET_RPS = 2500
TARGET_HEALTH_P99_MS = 50.0
ENDPOINTS = ("/v1/rank/day", "/v1/info/100001")
PYSPY_CANDIDATES = ("py-spy", "/tmp/pyspy/bin/py-spy", str(BENCH.parent / ".venv" / "bin" / "py-spy"))


def warm(server: ServerProcess) -> None:
    conn = http.client.HTTPConnection(f"127.0.0.1:{server.port}", timeout=60)
    for path in ENDPOINTS:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path} answered {resp.status}: {body[:200]!r}")
    conn.close()


# --------------------------------------------------------------------------------------------
# slow upstream: 50 uncached requests in flight
# --------------------------------------------------------------------------------------------


class SlowLoad:
    """Keeps ``width`` distinct uncached searches in flight against the server, in a thread."""

    def __init__(self, base_url: str, width: int) -> None:
        self.base_url = base_url
        self.width = width
        self.in_flight = 0
        self.min_in_flight_while_probing: int | None = None
        self.completed: Counter[int] = Counter()
        self.durations: list[float] = []
        self._next = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.probing = False

    def start(self) -> SlowLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _main(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.width + 10, max_keepalive_connections=self.width + 10)
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=120) as client:
            async def one() -> None:
                while not self._stop.is_set():
                    self._next += 1
                    page = self._next
                    self.in_flight += 1
                    start = time.perf_counter()
                    try:
                        resp = await client.get(f"/v1/search/filler/{page}")
                        self.completed[resp.status_code] += 1
                    except Exception:
                        self.completed[-1] += 1
                    finally:
                        self.in_flight -= 1
                    self.durations.append(time.perf_counter() - start)

            async def watch() -> None:
                while not self._stop.is_set():
                    if self.probing:
                        low = self.min_in_flight_while_probing
                        self.min_in_flight_while_probing = self.in_flight if low is None else min(low, self.in_flight)
                    await asyncio.sleep(0.005)

            tasks = [asyncio.create_task(one()) for _ in range(self.width)] + [asyncio.create_task(watch())]
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# --------------------------------------------------------------------------------------------
# profiling
# --------------------------------------------------------------------------------------------


def find_pyspy() -> str | None:
    for candidate in PYSPY_CANDIDATES:
        path = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
        if path:
            return path
    return None


def profile(server: ServerProcess, path: str, connections: int, seconds: float) -> list[tuple[str, float]] | None:
    """py-spy the server's event-loop thread under load: the share of its samples in a few frames."""
    pyspy = find_pyspy()
    if pyspy is None:
        return None
    raw = BENCH / "out" / "jm_read_profile.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen([pyspy, "record", "-p", str(server.pid), "-d", str(int(seconds) + 1), "-r", "250",
                            "-f", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    run_load(server.url + path, connections, seconds)
    spy.wait(timeout=60)
    if not raw.exists():
        return None
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or "Runner.run (asyncio/runners.py" not in stack:  # the event-loop thread only
            continue
        n = int(count)
        total += n
        frames = [frame.rsplit(":", 1)[0] for frame in stack.split(";")]  # function (file), no line
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n

    def share(prefix: str, counter: Counter[str] = inclusive) -> float:
        return max((c for f, c in counter.items() if f.startswith(prefix)), default=0) / max(1, total)

    return [
        ("inside the ASGI app (`FastAPI.__call__`: middleware, routing, endpoint)", share("FastAPI.__call__ ")),
        ("routing and the endpoint (`Router.__call__`)", share("Router.__call__ ")),
        ("dependency solving (`solve_dependencies`)", share("solve_dependencies ")),
        ("handing plain-`def` dependencies to the thread pool (`run_in_threadpool`)", share("run_in_threadpool ")),
        ("the endpoint functions themselves (`rank`/`info` in app/api/jm.py)",
         share("rank (app/api/jm.py") + share("info (app/api/jm.py")),
        ("validating and encoding the answer (`serialize_response`)", share("serialize_response ")),
        ("writing the response (`Response.__call__`)", share("Response.__call__ ")),
        ("no Python frame: uvloop's C code, the kernel's sockets, waiting for the GIL (`Runner.run` itself)",
         share("Runner.run ", own)),
    ]


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------


def cached_runs(server: ServerProcess, runs: int, duration: float, connections: int) -> dict[str, list[dict]]:
    for path in ENDPOINTS:  # warm-up: the first seconds of a fresh process are slower
        run_load(server.url + path, connections, 2)
    results: dict[str, list[dict]] = {path: [] for path in ENDPOINTS}
    for _ in range(runs):
        for path in ENDPOINTS:
            results[path].append(run_load(server.url + path, connections, duration, pid=server.pid))
    return results


def summarise(results: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    summary = {}
    for path, rows in results.items():
        summary[path] = {
            "rps": median([r["rps"] for r in rows]),
            "rps_min": min(r["rps"] for r in rows),
            "rps_max": max(r["rps"] for r in rows),
            "p50_ms": median([r.get("p50_ms", float("nan")) for r in rows]),
            "p99_ms": median([r.get("p99_ms", float("nan")) for r in rows]),
            "cpu_us": median([r["cpu_us_per_req"] for r in rows]),
            "cpu_share": median([r["cpu_share"] for r in rows]),
            "errors": sum(r["errors"] for r in rows),
        }
        summary[path]["capacity"] = 1e6 / summary[path]["cpu_us"]
    return summary


def main() -> None:
    args = arg_parser(__doc__, runs=5, duration=5.0, connections=64, probes=200, no_profile=False).parse_args()

    pin_self(CLIENT_CPU)  # this script, the double, wrk and the health prober share CPU 1
    info = machine()
    loadgen = "wrk " + subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1] \
        if shutil.which("wrk") else "Python asyncio keep-alive generator (wrk not installed)"
    print(f"load generator: {loadgen}")
    raw: dict[str, Any] = {"machine": info, "loadgen": loadgen}

    with DoubleProcess() as double:
        # ---- 1. cached req/s ------------------------------------------------------------------
        with ServerProcess(jm_env(double.host), cpus=SERVER_CPU) as server:
            target = server.target
            warm(server)
            hits_before = double.hits()
            results = cached_runs(server, args.runs, args.duration, args.connections)
            upstream_hits = double.hits() - hits_before
            summary = summarise(results)
            for path, s in summary.items():
                print(f"{path}: {s['rps']:.0f} req/s median of {args.runs} (min {s['rps_min']:.0f}, max "
                      f"{s['rps_max']:.0f}), p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
                      f"{s['cpu_us']:.0f} µs CPU/request (capacity of a whole core {s['capacity']:.0f} req/s), "
                      f"server had {s['cpu_share']:.0%} of its core, errors {s['errors']}")
            print(f"upstream requests during the cached runs: {upstream_hits}")
            prof = None
            missed = any(s["rps"] < TARGET_RPS for s in summary.values())
            if not args.no_profile and missed:
                prof = profile(server, ENDPOINTS[0], args.connections, 6)
                if prof:
                    print("py-spy, event-loop thread, inclusive share under GET /v1/rank/day:")
                    for name, share in prof:
                        print(f"  {share:6.1%}  {name}")
        raw.update(cached=results, summary=summary, upstream_hits=upstream_hits, profile=prof, target=target)

        # ---- 2. health while 50 uncached requests wait on a slow upstream ---------------------
        env = jm_env(double.host, JMBOORU_CACHE_TTL_SECONDS="0")
        with ServerProcess(env, cpus=SERVER_CPU) as server:
            warm(server)  # creates jmcomic's client (its /setting call) before the upstream slows down
            idle_health = probe_result(start_probe(server.url + "/v1/health", 0.02, args.probes))
            double.set_latency(2.0, "/search")
            try:
                load = SlowLoad(server.url, 50).start()
                wait_until(lambda: load.in_flight >= 50 and double.hits("/search") >= 8,
                           "the slow requests did not get going", 30, 0.05)
                time.sleep(0.5)
                load.probing = True
                busy_health = probe_result(start_probe(server.url + "/v1/health", 0.02, args.probes))
                load.probing = False
                searches_done = sum(load.completed.values())
                slow_status = dict(load.completed)
                min_in_flight = load.min_in_flight_while_probing
                load.stop()
            finally:
                double.set_latency(0, "/search")
        slow_durations = sorted(load.durations)
        health = {"idle_p50": percentile(idle_health, 50), "idle_p99": percentile(idle_health, 99),
                  "busy_p50": percentile(busy_health, 50), "busy_p99": percentile(busy_health, 99),
                  "busy_max": max(busy_health), "min_in_flight": min_in_flight,
                  "searches_done": searches_done, "slow_status": slow_status,
                  "slow_median_s": median(slow_durations)}
        print(f"health while 50 slow requests are in flight: p50 {health['busy_p50']:.2f} ms, p99 "
              f"{health['busy_p99']:.2f} ms, max {health['busy_max']:.1f} ms (idle: p50 {health['idle_p50']:.2f}, "
              f"p99 {health['idle_p99']:.2f}); in flight during probing >= {min_in_flight}; "
              f"slow requests answered: {slow_status}, median {health['slow_median_s']:.1f} s")
        raw.update(health=health, idle_health=idle_health, busy_health=busy_health)


    save_raw("jm_read", raw)
    publish("jm_read", render(info, loadgen, args, raw), args)


def render(info: dict[str, Any], loadgen: str, args: argparse.Namespace, raw: dict[str, Any]) -> str:
    summary, health = raw["summary"], raw["health"]
    rows = []
    for path, s in summary.items():
        rows.append(f"| cached `GET {path}` | {s['rps']:,.0f} req/s (min {s['rps_min']:,.0f}, max {s['rps_max']:,.0f}) "
                    f"| {s['rps'] / TARGET_RPS:.2f} | {s['cpu_us']:.0f} µs → {s['capacity']:,.0f} req/s "
                    f"| {s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms | ≥ {TARGET_RPS:,} req/s | {verdict(s['rps'] >= TARGET_RPS)} |")
    health_ok = health["busy_p99"] < TARGET_HEALTH_P99_MS
    lines = [
        "## 1. JM read API (`bench/bench_jm_read.py`)",
        "",
        environment_md(info, [
            f"Server: `uvicorn {raw['target']}`, one worker process pinned to CPU 0 (`taskset -c 0`), "
            "uvloop + httptools, `--log-level warning --no-access-log`",
            f"Load: {loadgen}, {args.connections} keep-alive connections, pinned to CPU 1 with the JM double; "
            f"{args.runs} runs of {args.duration:g} s per endpoint after a warm-up, endpoints alternating; medians",
        ]),
        "",
        "Ratio = measured / target. *CPU per request* is the server's own CPU time (utime + stime from "
        "/proc) divided by the requests served; 1e6 / that is what the server would serve with a whole "
        f"core to itself (in these runs it got a median of {median([s['cpu_share'] for s in summary.values()]):.0%} of CPU 0).",
        "",
        "| figure | measured (median) | ratio | CPU per request → capacity of one core | p50 / p99 latency | target | result |",
        "|---|---|---|---|---|---|---|",
        *rows,
        f"| `GET /v1/health` p99 with 50 uncached requests waiting 2 s on the upstream | {health['busy_p99']:.2f} ms "
        f"(p50 {health['busy_p50']:.2f} ms, max {health['busy_max']:.1f} ms) | {health['busy_p99'] / TARGET_HEALTH_P99_MS:.2f} "
        f"| | same server, nothing in flight: {health['idle_p50']:.2f} / {health['idle_p99']:.2f} ms "
        f"| < {TARGET_HEALTH_P99_MS:g} ms "
        f"| {verdict(health_ok)} |",
        "",
        f"The cached runs made {raw['upstream_hits']} requests to the JM double (all answers came from the "
        f"cache); {sum(s['errors'] for s in summary.values())} non-200 answers or socket errors.",
        f"Health was probed {args.probes} times, 20 ms apart, over one keep-alive connection from another "
        f"process, while at least {health['min_in_flight']} searches were in flight (8 at the upstream, as "
        "many as `JMBOORU_JM_THREADS`, the rest queued for the pool); the slow searches answered "
        f"{health['slow_status']} in a median {health['slow_median_s']:.1f} s.",
    ]
    if raw.get("profile"):
        lines += ["", "Where the event loop's time goes under cached `GET /v1/rank/day` (py-spy at 250 Hz, share "
                  "of the event-loop thread's busy samples; time spent in anyio's worker threads and in thread "
                  "switches is not in these samples):", "",
                  "| where | share |", "|---|---|"]
        lines += [f"| {name} | {share:.0%} |" for name, share in raw["profile"]]
    lines += ["", findings(raw)]
    return "\n".join(lines)


def findings(raw: dict[str, Any]) -> str:
    summary, health = raw["summary"], raw["health"]
    out = ["Findings:", ""]
    if any(s["rps"] < TARGET_RPS for s in summary.values()):
        out.append(
            "- **Miss.** A cached answer costs the server "
            + " and ".join(f"{s['cpu_us']:.0f} µs" for s in summary.values())
            + " of CPU (rank, info); the profile above shows where the event loop spends it. Things that "
            "cost a thread round trip or a full pass through routing, dependency solving, validation and "
            "JSON encoding on every cached request are the usual suspects: plain-`def` dependencies (FastAPI "
            "runs them in its thread pool) and answers that are re-encoded instead of replayed.")
    else:
        out.append(
            "- Both cached endpoints meet the target on one core"
            + (" even though the server got only part of CPU 0" if min(s["cpu_share"] for s in summary.values()) < 0.9
               else "")
            + "; the CPU per request says how much headroom a whole core leaves ("
            + ", ".join(f"{s['capacity']:,.0f} req/s" for s in summary.values()) + ").")
    if health["busy_p99"] < TARGET_HEALTH_P99_MS:
        out.append("- `/v1/health` stays fast while the upstream is slow: jmcomic's blocking calls run in the "
                   "`jm` pool (`app/blocking.py`), never on the event loop, so the waiting requests cost the "
                   "loop nothing.")
    else:
        out.append("- **Miss.** `/v1/health` slows down while upstream requests wait: something blocks the "
                   "event loop while they are in flight.")
    return "\n".join(out)


if __name__ == "__main__":
    main()
