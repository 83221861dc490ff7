"""What every benchmark script shares: the repo on sys.path, machine facts, server and double
processes, statistics, and the docs/benchmarks.md section writer.

Benchmarks talk to the loopback test doubles only (tests/fakes); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PYTHON = sys.executable
DOCS = REPO / "docs" / "benchmarks.md"
OUT = REPO / "bench" / "out"  # raw results (git-ignored)

LIBRARIES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "websockets", "jmcomic",
             "curl_cffi", "httpx", "pydantic", "Pillow")


# --------------------------------------------------------------------------------------------
# machine and versions
# --------------------------------------------------------------------------------------------


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
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
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
        "versions": versions,
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


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "**pass**" if ok else "**MISS**"


# --------------------------------------------------------------------------------------------
# processes
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


def asgi_target() -> str:
    return "app.main:app"


class ServerProcess:
    """``uvicorn app.main:app`` in its own process (optionally pinned), configured by environment."""

    def __init__(self, env: dict[str, str], *, cpus: set[int] | None = None, data_dir: Path | None = None,
                 extra_args: Sequence[str] = (), target: str | None = None) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="jmbooru-bench-")
        self.data_dir = data_dir or Path(self._tmp.name) / "data"  # type: ignore[union-attr]
        self.port = free_port()
        self.target = target or asgi_target()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
        full_env.update({"JMBOORU_DATA_DIR": str(self.data_dir), "JMBOORU_LOG_LEVEL": "warning",
                         "PYTHONPATH": str(REPO)})
        full_env.update(env)
        self.cmd = [*cpu_list(cpus), PYTHON, "-m", "uvicorn", self.target, "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "warning", "--no-access-log", *extra_args]
        self.env = full_env
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

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {' '.join(self.cmd)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)

    def rss(self) -> int:
        return proc_status(self.pid, "VmRSS")

    def hwm(self) -> int:
        return proc_status(self.pid, "VmHWM")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DoubleProcess:
    """The JM double (tests/fakes/jm.py) in its own process, controlled over stdin.

    ``albums`` are specs understood by bench/_double_proc.py: ``big:<id>:<pages>:<scrambled 0|1>``
    or ``huge:<id>:<pages>:<MB per page>``.
    """

    def __init__(self, albums: Sequence[str] = (), *, cpus: set[int] | None = None) -> None:
        self.cmd = [*cpu_list(cpus), PYTHON, str(REPO / "bench" / "_double_proc.py"), *albums]
        self.proc: subprocess.Popen[str] | None = None
        self.host = ""

    def start(self, timeout: float = 300.0) -> DoubleProcess:
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"the JM double did not start: {line}")
        self.host = line[1]
        return self

    def command(self, *words: object) -> str:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def set_latency(self, seconds: float, prefix: str = "") -> None:
        self.command("latency", seconds, prefix or "-")

    def hits(self, prefix: str = "") -> int:
        return int(self.command("hits", prefix or "-"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.command("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> DoubleProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sys_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


class CpuMeter:
    """CPU seconds used by the whole machine, this process and the double over an interval."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, double_pid: int) -> None:
        self.double_pid = double_pid

    @staticmethod
    def _machine() -> tuple[float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return (sum(fields[:8]) - idle) / CpuMeter.TICK, sum(fields[:8]) / CpuMeter.TICK

    def _pid(self) -> float:
        try:
            fields = Path(f"/proc/{self.double_pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.TICK
        except (OSError, IndexError, ValueError):
            return 0.0

    def __enter__(self) -> CpuMeter:
        self.t0, self.busy0, self.self0, self.double0 = time.perf_counter(), self._machine()[0], cpu_seconds(), self._pid()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t0
        self.machine_cores = (self._machine()[0] - self.busy0) / wall
        self.self_cores = (cpu_seconds() - self.self0) / wall
        self.double_cores = (self._pid() - self.double0) / wall
        self.other_cores = max(0.0, self.machine_cores - self.self_cores - self.double_cores)


class BooruDoubleProcess:
    """A booru double in its own process, started by ``cmd`` (a benchmark script with ``--serve-double``):
    it prints ``READY <base_url> <mean image bytes>``, then answers ``latency <s>``, ``hits`` (one JSON
    line of counters, which it then resets) and ``quit`` on stdin."""

    def __init__(self, cmd: Sequence[str], latency: float, name: str = "booru") -> None:
        self.proc = subprocess.Popen(list(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"the {name} double did not start")
        self.base_url, self.mean_bytes = line[1], float(line[2])
        self.command(f"latency {latency}")

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def hits(self) -> dict[str, int]:
        self.command("hits")
        assert self.proc.stdout is not None
        return dict(json.loads(self.proc.stdout.readline()))

    def stop(self) -> None:
        try:
            self.command("quit")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def jm_env(host: str, **extra: str) -> dict[str, str]:
    env = {"JMBOORU_JM_API_DOMAINS": host, "JMBOORU_JM_IMAGE_DOMAINS": host, "JMBOORU_JM_SCHEME": "http"}
    env.update(extra)
    return env


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# docs/benchmarks.md
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


def publish(name: str, markdown: str, out: Path | None, no_write: bool) -> None:
    """Print a section, then write it to ``out`` or (unless ``no_write``) into docs/benchmarks.md."""
    print("\n" + markdown)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown)
    elif not no_write:
        write_section(name, markdown)


def save_raw(name: str, data: Any) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return path


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def mb(nbytes: float) -> str:
    return f"{nbytes / 1024 / 1024:.1f} MB"
