"""The harness every benchmark script uses: the repo on sys.path, machine facts, the server and the
doubles in processes of their own, CPU and load measurements, statistics, and the docs/benchmarks.md
section writer. Scripts import it as ``from _common import ...`` (they run as ``python bench/<script>.py``).

Benchmarks talk to the loopback test doubles only (tests/fakes); nothing leaves 127.0.0.1.

    python bench/_common.py --loadgen URL CONNECTIONS SECONDS   (the load generator when wrk is missing)
    python bench/_common.py --probe URL GAP COUNT SECONDS       (sequential GETs over one connection)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BENCH = REPO / "bench"
PYTHON = sys.executable
DOCS = REPO / "docs" / "benchmarks.md"
OUT = BENCH / "out"  # raw results (git-ignored)
ASGI_TARGET = "app.main:app"
SERVER_CPU = {0}  # the server under test, where a script pins it
CLIENT_CPU = {1}  # load generators, clients and doubles
TICK = os.sysconf("SC_CLK_TCK")
FINAL_EVENTS = ("download_ready", "failed", "cancelled", "expired")
TAGS = "1girl"  # the tag every dataset benchmark asks for
GDL = "/tmp/gdl-venv/bin/gallery-dl"  # gallery-dl, in a venv of its own (never a project dependency)
GELBOORU_CREDENTIALS = {"api_key": "testkey", "user_id": "12345"}  # what the Gelbooru double accepts

LIBRARIES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "websockets", "jmcomic",
             "curl_cffi", "httpx", "pydantic", "Pillow")


# --------------------------------------------------------------------------------------------
# the command line, machine and versions
# --------------------------------------------------------------------------------------------


def arg_parser(doc: str | None, **defaults: Any) -> argparse.ArgumentParser:
    """An argument parser with the options every script has (``--no-write``, ``--out``) and ``--<name>`` for
    each of ``defaults``, of its default's type: a bool is a switch, a tuple a comma-separated list."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    parser.add_argument("--out", type=Path, help="write the section to this file instead of docs/benchmarks.md")
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            is_list = isinstance(default, tuple)
            kind = (lambda text: tuple(text.split(","))) if is_list else type(default)
            parser.add_argument(flag, type=kind, default=default,
                                help=f"default {','.join(default) if is_list else default}")
    return parser


def package_version(name: str, missing: str = "not installed") -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return missing


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 1024 / 1024
    commit = "unknown"
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "app"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
        if dirty:
            commit += " (+ uncommitted changes in app/)"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(ram_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {name: package_version(name, "-") for name in LIBRARIES},
        "commit": commit,
    }


def environment_md(m: dict[str, Any], extra: Sequence[str] = ()) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        f"- Run: {m['date']}, app at commit {m['commit']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Linux {m['kernel']}; "
        "shared and noisy, so figures move by ±10–20 % between runs",
        f"- Python {m['python']}; {libs}",
    ]
    lines += [f"- {line}" for line in extra]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def median_of(rows: Iterable[dict[str, Any]], key: str) -> float:
    return median(row[key] for row in rows)


def paired(first: Iterable[float], second: Iterable[float]) -> list[float]:
    """The ratios second ÷ first of runs taken in pairs (A/B alternating); their median is the figure."""
    return [b / a for a, b in zip(first, second, strict=True)]


def joined(values: Iterable[float], spec: str = ".2f", scale: float = 1.0) -> str:
    """``1.23, 4.56``: every run of a figure, for the line under a table."""
    return ", ".join(format(v * scale, spec) for v in values)


def listed(rows: Iterable[dict[str, Any]], key: str, scale: float = 1.0, spec: str = ".2f") -> str:
    """Every run's ``key``, joined."""
    return joined((row[key] for row in rows), spec, scale)


def verdict(ok: bool) -> str:
    return "**pass**" if ok else "**MISS**"


def mb(nbytes: float) -> str:
    return f"{nbytes / 1024 / 1024:.1f} MB"


# --------------------------------------------------------------------------------------------
# processes: CPUs, ports, CPU time, waiting
# --------------------------------------------------------------------------------------------


def raise_nofile(wanted: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else wanted
    target = max(soft, min(target, wanted)) if hard == resource.RLIM_INFINITY else target
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_self(cpus: set[int]) -> None:
    available = os.sched_getaffinity(0)
    chosen = cpus & available or available
    os.sched_setaffinity(0, chosen)


def cpu_list(cpus: set[int] | None) -> list[str]:
    """A ``taskset -c`` prefix, or nothing when pinning is impossible (one CPU, no taskset)."""
    if not cpus or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM, ...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far, from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sys_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


class CpuMeter:
    """CPU used by the whole machine, this process and the double over an interval, in cores."""

    def __init__(self, double_pid: int) -> None:
        self.double_pid = double_pid

    def __enter__(self) -> CpuMeter:
        self.t0, self.busy0, self.self0, self.double0 = (time.perf_counter(), machine_busy(), cpu_seconds(),
                                                         process_cpu(self.double_pid))
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t0
        self.machine_cores = (machine_busy() - self.busy0) / wall
        self.self_cores = (cpu_seconds() - self.self0) / wall
        self.double_cores = (process_cpu(self.double_pid) - self.double0) / wall
        self.other_cores = max(0.0, self.machine_cores - self.self_cores - self.double_cores)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Call ``check`` until it returns something true (returned) or ``timeout`` passes (RuntimeError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def answers(port: int, request: bytes, expected: bytes, timeout: float = 1.0) -> bool:
    """Whether a new connection to ``port`` that sends ``request`` gets an answer starting with ``expected``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(request)
            return s.recv(64).startswith(expected)
    except OSError:
        return False


def end(proc: subprocess.Popen[Any], timeout: float) -> None:
    """Wait for a process told to stop; kill it when it takes longer than ``timeout`` s."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its ``JMBOORU_*`` settings, plus ``env`` and the repo on PYTHONPATH.

    Without ``PYTHONDONTWRITEBYTECODE`` too (some shells and containers set it): a user's install has
    its modules compiled once, while a run that may not keep them compiles every module it imports
    again (~0.15 s of the command line's start-up here), which is not what users wait for.
    """
    out = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_") and k != "PYTHONDONTWRITEBYTECODE"}
    out.update(env or {})
    out["PYTHONPATH"] = str(REPO)
    return out


def jm_env(host: str, **extra: str) -> dict[str, str]:
    """Settings (environment) that point jmbooru at the JM double on ``host``."""
    env = {"JMBOORU_JM_API_DOMAINS": host, "JMBOORU_JM_IMAGE_DOMAINS": host, "JMBOORU_JM_SCHEME": "http"}
    env.update(extra)
    return env


def jm_settings(data_dir: Path, host: str = "127.0.0.1:9", **extra: Any) -> Any:
    """``Settings`` for an in-process app or engine against the JM double on ``host``."""
    from app.config import Settings

    values: dict[str, Any] = {"data_dir": data_dir, "jm_scheme": "http", "jm_api_domains": [host],
                              "jm_image_domains": [host], "jm_retry_times": 0, "gc_freeze": False}
    return Settings(_env_file=None, **{**values, **extra})  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------------
# the server and helper processes
# --------------------------------------------------------------------------------------------


class ServerProcess:
    """``uvicorn app.main:app`` in its own process (optionally pinned), configured by environment."""

    def __init__(self, env: dict[str, str], *, cpus: set[int] | None = None, data_dir: Path | None = None,
                 extra_args: Sequence[str] = (), target: str = ASGI_TARGET) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="jmbooru-bench-")
        self.data_dir = data_dir or Path(self._tmp.name) / "data"  # type: ignore[union-attr]
        self.port = free_port()
        self.target = target
        self.env = clean_env({"JMBOORU_DATA_DIR": str(self.data_dir), "JMBOORU_LOG_LEVEL": "warning", **env})
        self.cmd = [*cpu_list(cpus), PYTHON, "-m", "uvicorn", self.target, "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "warning", "--no-access-log", *extra_args]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the server exited with {self.proc.returncode}: {' '.join(self.cmd)}")
        return answers(self.port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200")

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env)
        wait_until(self._healthy, "the server did not start", timeout)
        return self

    def rss(self) -> int:
        return proc_status(self.pid, "VmRSS")

    def hwm(self) -> int:
        return proc_status(self.pid, "VmHWM")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            end(self.proc, 15)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LineProcess:
    """A helper process that prints ``READY <words>`` when it is up, then answers lines on stdin:
    the doubles (bench/_double_proc.py), the direct jmcomic runner, the WebSocket clients."""

    what = "helper process"
    quit_command = "quit"

    def __init__(self, cmd: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.cmd = list(cmd)
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.ready: list[str] = []

    def start(self) -> LineProcess:
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, env=self.env)
        assert self.proc.stdout is not None
        self.ready = self.proc.stdout.readline().split()
        if not self.ready or self.ready[0] != "READY":
            self.stop()
            raise RuntimeError(f"the {self.what} did not start: {self.ready}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tell(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, line: str) -> str:
        """Send a command and return its one-line answer."""
        self.tell(line)
        assert self.proc is not None and self.proc.stdout is not None
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the {self.what} died")
        return answer.strip()

    def stop(self, timeout: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.tell(self.quit_command)
            end(self.proc, timeout)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DoubleProcess(LineProcess):
    """The JM double (tests/fakes/jm.py) in its own process (bench/_double_proc.py).

    ``albums`` are specs: ``big:<id>:<pages>:<scrambled 0|1>``, ``huge:<id>:<pages>:<MB per page>`` or
    ``single:<id>:<pages>``; every page is rendered before it is ready. ``mean_bytes``: the mean page.
    """

    what = "JM double"

    def __init__(self, albums: Sequence[str] = (), *, cpus: set[int] | None = None) -> None:
        super().__init__([*cpu_list(cpus), PYTHON, str(BENCH / "_double_proc.py"), *albums],
                         {**os.environ, "PYTHONPATH": str(REPO)})
        self.host = ""
        self.mean_bytes = 0.0

    def start(self) -> DoubleProcess:
        super().start()
        self.host, self.mean_bytes = self.ready[1], float(self.ready[2])
        return self

    def set_latency(self, seconds: float, prefix: str = "") -> None:
        self.ask(f"latency {seconds} {prefix or '-'}")

    def hits(self, prefix: str = "") -> int:
        return int(self.ask(f"hits {prefix or '-'}"))

    def reset_hits(self) -> None:
        self.ask("reset")


class BooruDoubleProcess(LineProcess):
    """A booru family's double (tests/fakes) with ``make_posts(images, image_bytes=kb * 1000)`` in its own
    process (bench/_double_proc.py), every answer ``latency`` seconds late. ``hits()`` returns the counters
    (post, tag, image, all) and resets them."""

    what = "booru double"

    def __init__(self, site: str, images: int, kb: int, latency: float) -> None:
        super().__init__([PYTHON, str(BENCH / "_double_proc.py"), f"booru:{site}:{images}:{kb}"])
        self.latency = latency
        self.base_url = ""
        self.mean_bytes = 0.0

    def start(self) -> BooruDoubleProcess:
        super().start()
        self.base_url, self.mean_bytes = self.ready[1], float(self.ready[2])
        self.ask(f"latency {self.latency}")
        return self

    def hits(self) -> dict[str, int]:
        return dict(json.loads(self.ask("hits")))


# --------------------------------------------------------------------------------------------
# jobs through the API
# --------------------------------------------------------------------------------------------


def wait_jobs(http: Any, job_ids: Sequence[str], *, interval: float = 0.2, timeout: float = 300.0,
              each: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Ask ``GET /v1/jobs/{id}`` of every job (``http``: an ``httpx.Client`` on the server) every
    ``interval`` s until all are ready; a job that ends otherwise, or the timeout, raises."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = [http.get(f"/v1/jobs/{job_id}").json() for job_id in job_ids]
        if each is not None:
            each(jobs)
        states = [job["state"] for job in jobs]
        if all(state == "ready" for state in states):
            return jobs
        if any(state in ("failed", "cancelled", "expired") for state in states) or time.monotonic() > deadline:
            raise RuntimeError(f"the jobs did not all end ready: {jobs if len(jobs) < 3 else states}")
        time.sleep(interval)


def run_albums(http: Any, album_ids: Sequence[object], client_id: str = "", *, interval: float = 0.2,
               timeout: float = 300.0) -> list[dict[str, Any]]:
    """``POST /v1/download/album/{id}`` for every album (for ``client_id``), then :func:`wait_jobs`."""
    body = {"client_id": client_id} if client_id else None
    ids = [http.post(f"/v1/download/album/{aid}", json=body).raise_for_status().json()["job_id"] for aid in album_ids]
    return wait_jobs(http, ids, interval=interval, timeout=timeout)


async def follow_job(ws_url: str, job_id: str,
                     on_frame: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Follow ``/ws/jobs/{job_id}`` to its final frame (``download_ready`` or an end) and return it."""
    from websockets.asyncio.client import connect

    async with connect(f"{ws_url}/ws/jobs/{job_id}", compression=None, max_size=None) as ws:
        async for message in ws:
            frame = json.loads(message)
            if on_frame is not None:
                on_frame(frame)
            if frame.get("event") in FINAL_EVENTS:
                return dict(frame)
    raise RuntimeError(f"/ws/jobs/{job_id} closed before the job ended")


# --------------------------------------------------------------------------------------------
# HTTP load (wrk, or a Python generator) and latency probes
# --------------------------------------------------------------------------------------------


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, connections: int, duration: float, *, cpus: set[int] | None = None,
            header: str = "") -> dict[str, Any]:
    cmd = [*cpu_list(cpus), "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
           *(["-H", header] if header else []), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = {"errors": 0}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(line.split()[1])
        elif m := re.match(r"(\d+) requests in", line):
            result["requests"] = int(m.group(1))
        elif m := re.match(r"(50|99)%\s+(\S+)", line):
            result[f"p{m.group(1)}_ms"] = _ms(m.group(2))
        elif line.startswith("Non-2xx or 3xx responses:"):
            result["errors"] += int(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            result["errors"] += sum(int(n) for n in re.findall(r"\d+", line))
    return result


async def _python_load(url: str, connections: int, duration: float) -> dict[str, Any]:
    """A keep-alive HTTP/1.1 load generator on raw asyncio streams (when wrk is missing)."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    request = f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                latencies.append((time.perf_counter() - start) * 1000)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {"rps": len(latencies) / elapsed, "requests": len(latencies), "errors": errors,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


def run_load(url: str, connections: int, duration: float, *, pid: int | None = None, cpus: set[int] | None = None,
             header: str = "") -> dict[str, Any]:
    """GET ``url`` over ``connections`` keep-alive connections for ``duration`` s: req/s, p50/p99, errors
    (wrk when installed, else a Python generator in a process of its own). With the server's ``pid``, also
    its CPU: ``cpu_share`` (cores) and ``cpu_us_per_req`` (its own CPU time per request served)."""
    cpu0, t0 = (process_cpu(pid), time.monotonic()) if pid else (0.0, 0.0)
    if shutil.which("wrk"):
        result = run_wrk(url, connections, duration, cpus=cpus, header=header)
    else:
        result = json.loads(subprocess.run([*cpu_list(cpus), PYTHON, __file__, "--loadgen", url, str(connections),
                                            str(duration)], capture_output=True, text=True, check=True).stdout)
    if pid:
        cpu = process_cpu(pid) - cpu0
        result["cpu_share"] = cpu / (time.monotonic() - t0)
        result["cpu_us_per_req"] = cpu / max(1, result["requests"]) * 1e6
    return result


def probe(url: str, gap: float, count: int = 0, seconds: float = 0.0) -> list[float]:
    """Sequential GETs of ``url`` over one keep-alive connection, ``gap`` s apart, ``count`` of them or for
    ``seconds``; latencies in ms."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    conn = http.client.HTTPConnection(host_port, timeout=30)
    end = time.monotonic() + seconds
    latencies: list[float] = []
    while (count and len(latencies) < count) or (not count and time.monotonic() < end):
        start = time.perf_counter()
        conn.request("GET", "/" + path)
        resp = conn.getresponse()
        resp.read()
        latencies.append((time.perf_counter() - start) * 1000)
        if resp.status != 200:
            raise RuntimeError(f"{path} answered {resp.status}")
        time.sleep(gap)
    conn.close()
    return latencies


def start_probe(url: str, gap: float, count: int = 0, seconds: float = 0.0) -> subprocess.Popen[str]:
    """:func:`probe` in a process of its own; ``probe_result`` collects its latencies."""
    return subprocess.Popen([PYTHON, __file__, "--probe", url, str(gap), str(count), str(seconds)],
                            stdout=subprocess.PIPE, text=True)


def probe_result(prober: subprocess.Popen[str]) -> list[float]:
    out, _ = prober.communicate(timeout=300)
    if prober.returncode:
        raise RuntimeError(f"the probe failed ({prober.returncode})")
    return list(json.loads(out))


# --------------------------------------------------------------------------------------------
# booru datasets: jmbooru in this process, gallery-dl in its own
# --------------------------------------------------------------------------------------------


async def dataset_run(site: str, base_url: str, out: Path, images: int, workers: int,
                      rate: float) -> dict[str, float]:
    """``download_dataset(build_site(site, url=double, rate=rate), TAGS, out, ...)`` with default captions;
    wall time and this process's CPU (user+sys, and sys alone) around that call only."""
    from app.sources.booru.registry import build_site
    from app.sources.dataset import DatasetProgress, download_dataset

    first_page: list[float] = []

    def on_progress(p: DatasetProgress) -> None:
        if p.done == 0 and not first_page:  # called once the posts are selected, before any image
            first_page.append(time.perf_counter())

    credentials = GELBOORU_CREDENTIALS if site == "gelbooru" else {}
    client = build_site(site, url=base_url, rate=rate, **credentials)
    try:
        sys0, cpu0, t0 = sys_seconds(), cpu_seconds(), time.perf_counter()
        result = await download_dataset(client, TAGS, out, max_images=images, workers=workers, on_progress=on_progress)
        t1, cpu1, sys1 = time.perf_counter(), cpu_seconds(), sys_seconds()
    finally:
        await client.aclose()
    if result.downloaded != images or result.failed:
        raise RuntimeError(f"{site}: jmbooru run incomplete: {result.summary()}")
    files = sum(1 for p in out.iterdir() if not p.name.endswith(".txt"))
    if files != images:
        raise RuntimeError(f"{site}: expected {images} images in {out}, found {files}")
    return {"wall": t1 - t0, "listing": first_page[0] - t0, "cpu": cpu1 - cpu0, "sys": sys1 - sys0, "bytes": result.bytes}


def gdl_config(path: Path, category: str, root: str, **site_options: Any) -> Path:
    """A gallery-dl configuration with the double as the custom instance ``benchdouble`` of ``category``."""
    path.write_text(json.dumps({
        "extractor": {category: {"benchdouble": {"root": root}}, "benchdouble": site_options,
                      "directory": [], "filename": "{md5}.{extension}"},
        "output": {"mode": "null", "progress": False},
    }))
    return path


def gelbooru_gdl(base_url: str, folder: Path) -> tuple[Path, str]:
    """gallery-dl pointed at the Gelbooru double: its ``gelbooru_v02`` extractor (the same ``dapi`` API, read as
    XML; its ``gelbooru`` one only knows gelbooru.com). The configuration's path and the URL to download."""
    config = gdl_config(folder / "gallery-dl.json", "gelbooru_v02", base_url,
                        **{"api-key": GELBOORU_CREDENTIALS["api_key"], "user-id": GELBOORU_CREDENTIALS["user_id"]})
    return config, f"{base_url}/index.php?page=post&s=list&tags={TAGS}"


def gdl_run(gdl: str, config: Path, url: str, out: Path, images: int, *, shards: int = 1,
            ranged: bool = False) -> dict[str, float]:
    """One gallery-dl download of ``url``: wall time and CPU (user+sys, from wait4). ``shards`` > 1 splits
    it with ``--range`` over that many processes at once (gallery-dl downloads one file at a time);
    ``ranged`` asks one process for ``--range 1-<images>``."""
    per = math.ceil(images / shards)
    t0 = time.perf_counter()
    procs = []
    for k in range(shards):
        cmd = [gdl, "--config-ignore", "--config-json", str(config), "-q", "-D", str(out), "--no-mtime"]
        if shards > 1 or ranged:
            cmd += ["--range", f"{k * per + 1}-{min(images, (k + 1) * per)}"]
        procs.append(subprocess.Popen([*cmd, url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    cpu = 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
    wall = time.perf_counter() - t0
    errors = [p.stderr.read().decode(errors="replace")[-500:] for p in procs if p.stderr and p.returncode]
    if errors:
        raise RuntimeError(f"gallery-dl failed on {url}: {errors[0]}")
    files = sum(1 for p in out.iterdir() if not p.name.endswith(".part"))
    if files != images:
        raise RuntimeError(f"gallery-dl: expected {images} files in {out}, found {files}")
    return {"wall": wall, "cpu": cpu}


# --------------------------------------------------------------------------------------------
# docs/benchmarks.md and raw results
# --------------------------------------------------------------------------------------------

_INTRO = """# Benchmarks

Figures for the targets in the issues, measured against the loopback test doubles.
"""


def write_section(name: str, markdown: str) -> None:
    """Replace the ``name`` section of docs/benchmarks.md (between its markers), or append it."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else _INTRO
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text, encoding="utf-8")
    print(f"updated the '{name}' section of {DOCS.relative_to(REPO)}")


def publish(name: str, markdown: str, args: argparse.Namespace, *, complete: bool = True) -> None:
    """Print a section, then write it to ``args.out`` or (unless ``args.no_write``, or the run is not
    ``complete``) into docs/benchmarks.md."""
    print("\n" + markdown)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown)
    elif complete and not args.no_write:
        write_section(name, markdown)


def save_raw(name: str, data: Any) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return path


if __name__ == "__main__":
    if sys.argv[1] == "--probe":
        print(json.dumps(probe(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))))
    elif sys.argv[1] == "--loadgen":
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        print(json.dumps(asyncio.run(_python_load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))))
