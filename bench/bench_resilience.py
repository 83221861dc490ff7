"""Hardening figures (measured, not asserted):

1. ``/v1/health`` latency while 5,000 idle connections are open, against the same server with
   none open (alternating runs, medians), and how long the idle flood takes to clear by itself.
2. Scale-out: the time from Redis coming back (after a restart) to the first job completing, and
   to the first POST answered 202.

    .venv/bin/python bench/bench_resilience.py [--idle 5000] [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    PYTHON,
    REPO,
    DoubleProcess,
    ServerProcess,
    answers,
    arg_parser,
    clean_env,
    environment_md,
    follow_job,
    free_port,
    jm_env,
    machine,
    median,
    percentile,
    publish,
    raise_nofile,
    save_raw,
    wait_until,
)


def health_latencies(url: str, count: int) -> list[float]:
    """``count`` sequential requests on one keep-alive connection, in ms."""
    out = []
    with httpx.Client(base_url=url, timeout=10) as http:
        http.get("/v1/health")
        for _ in range(count):
            start = time.perf_counter()
            assert http.get("/v1/health").status_code == 200
            out.append((time.perf_counter() - start) * 1000)
    return out


def open_idle(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(True)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def still_open(socks: list[socket.socket]) -> int:
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(1)
            alive += 0 if data == b"" else 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def idle_flood(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile(args.idle + 1024)
    baseline: list[float] = []
    flooded: list[float] = []
    clear_times: list[float] = []
    open_during: list[int] = []
    with DoubleProcess() as double:
        # A long head timeout here, so the 5,000 stay open while latency is measured.
        env = jm_env(double.host, JMBOORU_HEADER_TIMEOUT_SECONDS="60")
        with ServerProcess(env) as server:
            for _ in range(args.runs):
                baseline += [percentile(health_latencies(server.url, args.requests), 99)]
                socks = open_idle(server.port, args.idle)
                try:
                    time.sleep(0.5)
                    flooded += [percentile(health_latencies(server.url, args.requests), 99)]
                    open_during.append(still_open(socks))
                finally:
                    for s in socks:
                        s.close()
        # The default head timeout (10 s): how long until the server has closed the whole flood.
        with ServerProcess(jm_env(double.host)) as server:
            for _ in range(max(1, args.runs // 2)):
                socks = open_idle(server.port, args.idle)
                start = time.monotonic()
                while still_open(socks) and time.monotonic() - start < 60:
                    time.sleep(0.25)
                clear_times.append(time.monotonic() - start)
                for s in socks:
                    s.close()
    return {"baseline_p99": baseline, "flood_p99": flooded, "open_during": open_during, "clear_s": clear_times}


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is needed (apt-get install redis-server)")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "yes", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: answers(self.port, b"PING\r\n", b"+PONG", 0.2), "redis did not start", 10, 0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


async def run_job(url: str, ws_url: str, album: str) -> tuple[float, float]:
    """POST until accepted (Redis may be coming up), then follow to the end: (t_202, t_ready)."""
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while True:
            resp = await http.post(f"/v1/download/album/{album}")
            if resp.status_code == 202:
                break
            await asyncio.sleep(0.05)
    accepted = time.perf_counter() - start
    frame = await follow_job(ws_url, resp.json()["job_id"])
    assert frame["event"] == "download_ready", frame
    return accepted, time.perf_counter() - start


def redis_recovery(args: argparse.Namespace) -> dict[str, Any]:
    accepted: list[float] = []
    ready: list[float] = []
    albums = [f"{190900 + i}" for i in range(args.runs + 1)]
    with tempfile.TemporaryDirectory(prefix="jmbooru-bench-") as tmp, \
            DoubleProcess([f"big:{a}:3:0" for a in albums]) as double:
        redis = Redis(Path(tmp))
        redis.start()
        env = jm_env(double.host, JMBOORU_REDIS_URL=redis.url, JMBOORU_DATA_DIR=f"{tmp}/data")
        worker = subprocess.Popen([PYTHON, "-m", "app.cli", "worker", "--log-level", "warning"], cwd=REPO,
                                  env=clean_env(env))
        try:
            with ServerProcess(env, data_dir=Path(tmp) / "data") as server:
                asyncio.run(run_job(server.url, server.ws_url, albums[0]))  # warm
                for album in albums[1:]:
                    redis.stop()
                    time.sleep(2.0)  # Redis stays away a while
                    redis.start()
                    a, r = asyncio.run(run_job(server.url, server.ws_url, album))
                    accepted.append(a)
                    ready.append(r)
        finally:
            worker.terminate()
            worker.wait(timeout=20)
            redis.stop()
    return {"accepted_s": accepted, "ready_s": ready}


def report(flood: dict[str, Any], recovery: dict[str, Any], args: argparse.Namespace) -> str:
    m = machine()
    lines = [
        "## Resilience (`bench/bench_resilience.py`)",
        "",
        environment_md(m, [
            "Server: `uvicorn app.main:app` (the connection guard of `app/serving.py` active), one process",
            f"Idle flood: {args.idle:,} TCP connections that send nothing; `/v1/health` p99 of {args.requests} "
            f"sequential requests, {args.runs} runs alternating with no flood; medians",
            "Redis: restarted (stopped 2 s, started again with its append-only file) under a running API "
            f"process and `jmbooru worker`; {args.runs} restarts; the job is a 3-page album",
        ]),
        "",
        "| figure | measured (median) | notes |",
        "|---|---|---|",
        f"| `/v1/health` p99, no idle connections | {median(flood['baseline_p99']):.2f} ms | |",
        f"| `/v1/health` p99, {args.idle:,} idle connections open | {median(flood['flood_p99']):.2f} ms | "
        f"{median(flood['open_during']):,.0f} of them open during the measurement |",
        f"| time until the server closed all {args.idle:,} idle connections by itself | "
        f"{median(flood['clear_s']):.1f} s | default `JMBOORU_HEADER_TIMEOUT_SECONDS` 10 |",
        f"| Redis back → first POST answered 202 | {median(recovery['accepted_s']) * 1000:.0f} ms | "
        f"max {max(recovery['accepted_s']) * 1000:.0f} ms |",
        f"| Redis back → first job completed | {median(recovery['ready_s']):.2f} s | "
        f"max {max(recovery['ready_s']):.2f} s (the worker's listener retries every second at most) |",
    ]
    return "\n".join(lines)


def main() -> None:
    args = arg_parser(__doc__, idle=5000, requests=300, runs=5).parse_args()
    flood = idle_flood(args)
    recovery = redis_recovery(args)
    save_raw("resilience", {"flood": flood, "recovery": recovery})
    publish("resilience", report(flood, recovery, args), args)


if __name__ == "__main__":
    main()
