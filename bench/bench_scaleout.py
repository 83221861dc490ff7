"""Scale-out: album jobs per minute with 1, 2 and 4 ``jmbooru worker`` processes.

    .venv/bin/python bench/bench_scaleout.py [--workers 1,2,4] [--runs 3] [--pages 10] [--apis 2]
                                             [--concurrency 2] [--scenarios 0.1:0.05:48,0.3:0.1:24]

For every run: a fresh redis-server on a free loopback port and fresh data folder (so no job is
joined from an earlier run), ``--apis`` uvicorn API processes and N ``jmbooru worker`` processes
(``python -m app.cli worker``, JMBOORU_MAX_CONCURRENT_JOBS=--concurrency), spawned with the
helpers of tests/cluster.py. The JM double (tests/fakes/jm.py) runs in a process of its own
(bench/_double_proc.py) with one-chapter albums of ``--pages`` plain pages (ids below
220980, so jmcomic saves them without descrambling), every page rendered before the clock starts.
A scenario ``image_latency:api_latency:albums`` sets the double's delay per image and per API
request and the number of albums submitted; by default 0.1 s per image (the brief's range) and,
to show what latency-bound jobs do once CPU is not the cap, 0.3 s per image.

The clock starts when the first POST /v1/download/album/{id} is sent (all albums submitted at
once, round-robin over the API processes, one client_id) and stops when the last download_ready
frame arrives on that client's /ws/notifications WebSocket (opened before the first submission).
CPU of every process (workers, API processes, redis-server, the double) is read from /proc.

Writes its section of docs/benchmarks.md. Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import (
    DoubleProcess,
    arg_parser,
    jm_env,
    machine,
    machine_busy,
    median_of,
    process_cpu,
    publish,
    run_albums,
    wait_until,
)
from _common import package_version as version

FIRST_ALBUM = 190500  # below 220980: plain pages
WARM_UP_ALBUM = 199000  # one warm-up job per slot, before the clock
CLIENT_ID = "bench-scaleout"
TARGET_SCALING = {2: 1.8, 4: 3.2}  # latency-bound jobs should scale near-linearly: 90% and 80% of ideal


@dataclass(frozen=True)
class Scenario:
    image_latency: float
    api_latency: float
    albums: int

    @classmethod
    def parse(cls, text: str) -> Scenario:
        image, api, albums = text.split(":")
        return cls(float(image), float(api), int(albums))

    def __str__(self) -> str:
        return f"{self.image_latency:g} s per image, {self.api_latency:g} s per API request, {self.albums} albums"


# --------------------------------------------------------------------------------------------
# the double and the cluster
# --------------------------------------------------------------------------------------------


def start_double(args: argparse.Namespace) -> DoubleProcess:
    """The JM double with the albums of the biggest scenario and one warm-up album per job slot."""
    ids = [FIRST_ALBUM + i for i in range(max(sc.albums for sc in args.scenarios))]
    ids += [WARM_UP_ALBUM + i for i in range(max(args.worker_counts) * args.concurrency)]
    return DoubleProcess([f"single:{aid}:{args.pages}" for aid in ids]).start()


def set_latency(double: DoubleProcess, sc: Scenario) -> None:
    double.set_latency(sc.api_latency)
    double.set_latency(sc.image_latency, "/media/photos")


def take_hits(double: DoubleProcess) -> dict[str, int]:
    """The requests the double saw since the last call: images and all."""
    hits = {"images": double.hits("/media/photos"), "all": double.hits()}
    double.reset_hits()
    return hits


async def drive(cluster: Any, albums: list[str]) -> dict[str, Any]:
    """Submit every album at once; wait for each download_ready on the client's WebSocket."""
    from websockets.asyncio.client import connect

    submitted: dict[str, float] = {}
    started: dict[str, float] = {}
    ready: dict[str, float] = {}
    job_album: dict[str, Any] = {}
    failed: list[dict[str, Any]] = []
    frames = 0

    async with connect(f"{cluster.ws(0)}/ws/notifications/{CLIENT_ID}?progress=1", compression=None,
                       max_size=None, open_timeout=30) as ws:
        await asyncio.sleep(0.2)  # the subscription is in place
        clients = [httpx.AsyncClient(base_url=cluster.url(i), timeout=60) for i in range(len(cluster.api_ports))]
        try:
            t0 = time.perf_counter()

            async def submit(i: int, aid: str) -> None:
                resp = await clients[i % len(clients)].post(f"/v1/download/album/{aid}", json={"client_id": CLIENT_ID})
                resp.raise_for_status()
                body = resp.json()
                if body.get("joined"):
                    raise RuntimeError(f"album {aid} joined an existing job; the run is not fresh")
                submitted[body["job_id"]] = time.perf_counter() - t0
                job_album[body["job_id"]] = aid

            submitting = asyncio.gather(*(submit(i, aid) for i, aid in enumerate(albums)))
            async with asyncio.timeout(600):
                async for message in ws:
                    frame = json.loads(message)
                    frames += 1
                    now = time.perf_counter() - t0
                    job_id = frame.get("job_id", "")
                    event = frame.get("event")
                    if event == "started":
                        started.setdefault(job_id, now)
                    elif event == "download_ready":
                        ready.setdefault(job_id, now)
                    elif event in ("failed", "cancelled", "expired"):
                        failed.append(frame)
                    if len(ready) + len(failed) >= len(albums):
                        break
            await submitting
            elapsed = max(ready.values()) if ready else 0.0
            states = [(await clients[0].get(f"/v1/jobs/{job_id}")).json() for job_id in submitted]
        finally:
            for client in clients:
                await client.aclose()
    if failed or len(ready) != len(albums) or any(s["state"] != "ready" for s in states):
        raise RuntimeError(f"not every job ended ready: {len(ready)} ready, failures {failed[:2]}")
    if any(s["done"] != s["total"] or not s["total"] for s in states):
        raise RuntimeError("a ready job has missing pages")
    per_job = [ready[j] - started.get(j, submitted[j]) for j in ready]
    waits = [started[j] - submitted[j] for j in ready if j in started]
    return {"elapsed": elapsed, "per_job": statistics.median(per_job), "per_job_max": max(per_job),
            "wait": statistics.median(waits) if waits else 0.0, "frames": frames,
            "submit": max(submitted.values()), "first_start": min(started.values()) if started else 0.0,
            "last_start": max(started.values()) if started else 0.0}


def wait_for_workers(port: int, workers: int) -> None:
    """Until every worker is blocked in BRPOP on the queue (taskiq's listener), i.e. takes jobs."""
    import redis

    client = redis.Redis(port=port)
    try:
        wait_until(lambda: sum(c.get("cmd") == "brpop" for c in client.client_list()) >= workers,
                   "the workers did not start listening on the queue")
    finally:
        client.close()


def warm_up(cluster: Any, albums: list[str]) -> None:
    """One job per slot before the clock starts: a fresh worker's first job pays for jmcomic's
    set-up (imports, the /setting request, first sessions), which a running cluster has behind it."""
    with httpx.Client(base_url=cluster.url(0), timeout=60) as http:
        run_albums(http, albums, interval=0.1, timeout=120)


def one_run(args: argparse.Namespace, double: DoubleProcess, sc: Scenario, workers: int, tmp: Path) -> dict[str, Any]:
    from tests.cluster import Cluster, RedisServer

    class BenchCluster(Cluster):
        def wait_ready(self, timeout: float = 60) -> None:
            try:
                super().wait_ready(timeout)
            except BaseException:
                self.stop()  # __init__ raises before anyone holds the cluster: stop what it spawned
                raise

    albums = [str(FIRST_ALBUM + i) for i in range(sc.albums)]
    redis = RedisServer(tmp)
    env = jm_env(double.host, JMBOORU_REDIS_URL=redis.url, JMBOORU_DATA_DIR=str(tmp / "data"),
                 JMBOORU_JM_RETRY_TIMES="0", JMBOORU_MAX_CONCURRENT_JOBS=str(args.concurrency),
                 JMBOORU_ALBUM_IMAGE_THREADS=str(args.image_threads), JMBOORU_LOG_LEVEL="warning")
    cluster = None
    try:
        cluster = BenchCluster(tmp, env, apis=args.apis, workers=workers)
        wait_for_workers(redis.port, workers)
        set_latency(double, sc)
        warm_up(cluster, [str(WARM_UP_ALBUM + i) for i in range(workers * args.concurrency)])
        double.reset_hits()
        pids = {
            "workers": [p.pid for p in cluster.worker_procs],
            "apis": [p.pid for p in cluster.api_procs],
            "redis": [redis.proc.pid],
            "double": [double.pid],
        }
        cpu0 = {k: sum(process_cpu(p) for p in v) for k, v in pids.items()}
        busy0, mine0 = machine_busy(), time.process_time()
        wall0 = time.perf_counter()
        result = asyncio.run(drive(cluster, albums))
        wall = time.perf_counter() - wall0
        result["cpu"] = {k: sum(process_cpu(p) for p in v) - cpu0[k] for k, v in pids.items()}
        result["cpu"]["bench"] = time.process_time() - mine0
        result["machine_cores"] = (machine_busy() - busy0) / wall
        result["other_cores"] = max(0.0, result["machine_cores"] - sum(result["cpu"].values()) / wall)
        result["hits"] = take_hits(double)
        result["jobs_per_min"] = sc.albums / result["elapsed"] * 60
        return result
    except BaseException:
        if cluster is not None:
            print(cluster.logs()[-4000:], file=sys.stderr)
        raise
    finally:
        if cluster is not None:
            cluster.stop()
        redis.stop()


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def redis_version() -> str:
    binary = shutil.which("redis-server")
    if not binary:
        return "unknown"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return next((w.split("=", 1)[1] for w in out.split() if w.startswith("v=")), out.strip())


def cpu_per_job(rs: list[dict[str, Any]], n: int, key: str | None = None) -> float:
    return statistics.median(
        (sum(r["cpu"].values()) - r["cpu"]["bench"] if key is None else r["cpu"][key]) / n for r in rs
    )


def scenario_section(args: argparse.Namespace, m: dict[str, Any], sc: Scenario,
                     runs: dict[int, list[dict[str, Any]]]) -> tuple[list[str], dict[str, Any]]:
    counts = sorted(runs)
    base = counts[0]
    jpm = {w: median_of(runs[w], "jobs_per_min") for w in counts}
    n, pages = sc.albums, args.pages
    ref = runs[base]
    api_requests = statistics.median((r["hits"]["all"] - r["hits"]["images"]) / n for r in ref)
    image_rounds = -(-pages // args.image_threads)
    job_floor = api_requests * sc.api_latency + image_rounds * sc.image_latency
    per_job_1 = median_of(ref, "per_job")
    lines = [
        f"### {sc}",
        "",
        f"Job floor: {api_requests:.0f} API requests (counted at the double) × {sc.api_latency:g} s + "
        f"ceil({pages}/{args.image_threads}) × {sc.image_latency:g} s = {job_floor:.2f} s; measured per-job time "
        f"with {base} worker: {per_job_1:.2f} s. Latency-bound rate: slots × 60 / per-job time = "
        + ", ".join(f"{w * args.concurrency * 60 / per_job_1:.0f} (N={w})" for w in counts) + " jobs/min.",
        "",
        "| workers (job slots) | jobs/min (median) | runs | elapsed s | per-job s (median / max) | queue wait s "
        "| first job started at s | scaling vs 1 | target | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = {}
    for w in counts:
        rs = runs[w]
        ratio = jpm[w] / jpm[base]
        target = TARGET_SCALING.get(w // base) if w != base else None
        verdict = "–" if target is None else ("pass" if ratio >= target else "miss")
        verdicts[w] = (ratio, target, verdict)
        lines.append(
            f"| {w} ({w * args.concurrency}) | **{jpm[w]:.0f}** | "
            f"{', '.join(format(r['jobs_per_min'], '.0f') for r in rs)} | "
            f"{median_of(rs, 'elapsed'):.2f} | "
            f"{median_of(rs, 'per_job'):.2f} / {median_of(rs, 'per_job_max'):.2f} | "
            f"{median_of(rs, 'wait'):.2f} | "
            f"{median_of(rs, 'first_start'):.2f} | "
            f"{'–' if w == base else f'**{ratio:.2f}**'} | {'–' if target is None else f'≥ {target}'} | "
            f"{verdict if target is None else f'**{verdict}**'} |"
        )
    lines += [
        "",
        "| workers | CPU s per job: all | workers | API processes | redis-server | JM double | machine busy "
        f"(of {m['nproc']} cores) | of which other processes | ratio in the quietest run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in counts:
        rs = runs[w]
        quiet = min(rs, key=lambda r: r["other_cores"])
        quiet_base = min(runs[base], key=lambda r: r["other_cores"])
        lines.append(
            f"| {w} | {cpu_per_job(rs, n):.3f} | {cpu_per_job(rs, n, 'workers'):.3f} | "
            f"{cpu_per_job(rs, n, 'apis'):.3f} | {cpu_per_job(rs, n, 'redis'):.3f} | "
            f"{cpu_per_job(rs, n, 'double'):.3f} | {median_of(rs, 'machine_cores'):.2f} | "
            f"{median_of(rs, 'other_cores'):.2f} | "
            + ("–" if w == base else f"{quiet['jobs_per_min'] / quiet_base['jobs_per_min']:.2f} "
               f"(other processes {quiet['other_cores']:.2f} cores)")
            + " |"
        )
    cpu_job = statistics.median(cpu_per_job(runs[w], n) for w in counts)
    waves = {w: -(-n // (w * args.concurrency)) for w in counts}
    overhead = {w: statistics.median(r["elapsed"] - waves[w] * r["per_job"] for r in runs[w]) for w in counts}
    facts = {"jpm": jpm, "per_job_1": per_job_1, "waves": waves, "overhead": overhead,
             "first_start": {w: median_of(runs[w], "first_start") for w in counts}, "cpu_job": cpu_job, "verdicts": verdicts,
             "per_job": {w: median_of(runs[w], "per_job") for w in counts},
             "other": {w: median_of(runs[w], "other_cores") for w in counts}}
    return lines, facts


def report(args: argparse.Namespace, m: dict[str, Any], mean_bytes: float,
           results: dict[Scenario, dict[int, list[dict[str, Any]]]]) -> str:
    counts = sorted(next(iter(results.values())))
    lines = [
        "## 5. Scale-out: album jobs per minute (`bench/bench_scaleout.py`)",
        "",
        f"- Machine: nproc {m['nproc']}, {m['cpu']}, {m['ram_gb']} GiB RAM, Linux {m['kernel']} (shared VM: other "
        "processes' CPU during each configuration is listed below)",
        f"- Date: {m['date']}; jmbooru commit {m['commit']}",
        f"- Versions: Python {m['python']}, redis-server {redis_version()}, redis-py {version('redis')}, "
        f"taskiq {version('taskiq')}, taskiq-redis {version('taskiq-redis')}, uvicorn {version('uvicorn')}, "
        f"jmcomic {version('jmcomic')}, curl_cffi {version('curl_cffi')}",
        f"- Command: `.venv/bin/python bench/bench_scaleout.py` (--runs {args.runs}); about "
        f"{args.elapsed / 60:.0f} minutes",
        "",
        f"**Method.** One-chapter albums (`FakeAlbum.single`, {args.pages} plain WebP pages each, mean "
        f"{mean_bytes / 1000:.0f} kB, ids from {FIRST_ALBUM}) on the JM double in its own process. Each run starts a "
        f"fresh redis-server (free loopback port, no persistence) and data folder, {args.apis} uvicorn API processes "
        f"and N `jmbooru worker` processes (`JMBOORU_MAX_CONCURRENT_JOBS={args.concurrency}`, "
        f"`JMBOORU_ALBUM_IMAGE_THREADS={args.image_threads}` image threads per job) with tests/cluster.py, waits "
        "until every worker listens on the queue (BRPOP in `CLIENT LIST`) and runs one warm-up album per job slot "
        "(a fresh worker's first job pays about 0.3 s for jmcomic's set-up). All albums are submitted at once "
        "(round-robin over the API processes, one client_id); the clock runs from the first POST to the last "
        "`download_ready` frame on that client's `/ws/notifications` WebSocket; every job is then checked to be "
        "`ready` with all its pages. Jobs/min = albums / elapsed × 60; per-job time = `started` → "
        "`download_ready`; queue wait = POST → `started`. CPU of every process is read from /proc. Runs are "
        f"interleaved ({args.runs} rounds of every scenario × N = {', '.join(map(str, counts))}); medians reported, "
        "every run listed.",
        "",
        f"**Targets.** Latency-bound jobs are I/O bound, so N workers (N × {args.concurrency} job slots) should "
        f"give nearly N times the jobs/min: scaling ≥ {TARGET_SCALING[2]} with 2 workers and ≥ {TARGET_SCALING[4]} "
        "with 4 (90% and 80% of linear).",
        "",
    ]
    facts = {}
    for sc, runs in results.items():
        section, facts[sc] = scenario_section(args, m, sc, runs)
        lines += section + [""]
    lines += ["**What limits scaling.**", ""]
    nproc = int(m["nproc"])
    for sc, f in facts.items():
        base, top = counts[0], counts[-1]
        cap = nproc * 60 / f["cpu_job"]
        demand = top * args.concurrency * 60 / f["per_job_1"]
        need = demand * f["cpu_job"] / 60
        free = nproc - f["other"][top]
        ratio = f["verdicts"][top][0]
        pj1, pjt = f["per_job_1"], f["per_job"][top]
        w1, wt = f["waves"][base], f["waves"][top]
        oh1, oht = f["overhead"][base], f["overhead"][top]
        same_per_job = (w1 * pj1 + oh1) / (wt * pj1 + oht)
        no_fixed = (w1 * pj1) / (wt * pjt)
        lines.append(
            f"- {sc}: {top} workers give {ratio:.2f}× the jobs/min of {base} (ideal {top / base:.0f}×). (1) CPU: a job "
            f"costs {f['cpu_job']:.3f} CPU-seconds across the cluster (workers, API processes, Redis, the double), "
            f"so {nproc} idle cores cap the cluster at about {cap:.0f} jobs/min; the latency-bound rate with {top} "
            f"workers ({demand:.0f} jobs/min) would need {need:.2f} cores, and other processes left {free:.2f}. "
            f"Per-job time goes from {pj1:.2f} s to {pjt:.2f} s ({(pjt / pj1 - 1) * 100:+.0f}%) as jobs "
            f"{'queue for a core' if pjt > 1.05 * pj1 else 'barely compete for the cores'}; with per-job time as "
            f"with {base} worker the ratio would be {same_per_job:.2f}. (2) A fixed cost per run: elapsed − waves × "
            "per-job time is " + ", ".join(f"{f['overhead'][w]:.2f} s with {w} ({f['waves'][w]} waves)" for w in counts)
            + " (the first job starts " + ", ".join(f"{f['first_start'][w]:.2f} s" for w in counts)
            + " after the first POST, while the burst of POSTs is still being handled, and each wave adds the "
            f"hand-over from one job to the next); it weighs more when more workers leave fewer waves. Without it "
            f"the ratio would be {no_fixed:.2f}."
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def main() -> None:
    # --workers: worker counts; --scenarios: image_latency:api_latency:albums; --concurrency:
    # JMBOORU_MAX_CONCURRENT_JOBS per worker; --image-threads: JMBOORU_ALBUM_IMAGE_THREADS
    args = arg_parser(__doc__, workers="1,2,4", runs=3, pages=10, scenarios="0.1:0.05:48,0.3:0.1:24", apis=2,
                      concurrency=2, image_threads=8).parse_args()
    args.scenarios = [Scenario.parse(x) for x in args.scenarios.split(",")]
    args.worker_counts = [int(x) for x in args.workers.split(",")]
    if FIRST_ALBUM + max(sc.albums for sc in args.scenarios) > 220980:
        raise SystemExit("too many albums: ids must stay below 220980 (plain pages)")

    started = time.perf_counter()
    m = machine()
    print(f"machine: {m}", flush=True)
    double = start_double(args)
    print(f"double ready at {double.host} in {time.perf_counter() - started:.1f} s "
          f"(mean page {double.mean_bytes / 1000:.0f} kB)", flush=True)
    counts = args.worker_counts
    results: dict[Scenario, dict[int, list[dict[str, Any]]]] = {sc: {w: [] for w in counts} for sc in args.scenarios}
    try:
        for i in range(args.runs):
            for sc in args.scenarios:
                for w in counts:
                    tmp = Path(tempfile.mkdtemp(prefix=f"bench-scaleout-{w}w-"))
                    try:
                        r = one_run(args, double, sc, w, tmp)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                    results[sc][w].append(r)
                    cpu = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu"].items())
                    print(f"round {i + 1}, {sc}, {w} worker(s): {r['jobs_per_min']:.0f} jobs/min, elapsed "
                          f"{r['elapsed']:.2f} s, per job {r['per_job']:.2f} s (max {r['per_job_max']:.2f}), wait "
                          f"{r['wait']:.2f} s, CPU s: {cpu}; machine {r['machine_cores']:.2f} cores (other "
                          f"{r['other_cores']:.2f}); hits {r['hits']}, frames {r['frames']}", flush=True)
    finally:
        double.stop()
    args.elapsed = time.perf_counter() - started
    text = report(args, m, double.mean_bytes, results)
    publish("scaleout", text, args)


if __name__ == "__main__":
    main()
