"""Run a scale-out cluster for tests: redis-server, API processes and workers as real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from tests import tools
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


class RedisServer:
    """A redis-server of the test's own on a free port; it can be killed and started again on the
    same port, with or without persistence (append-only file)."""

    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        self.binary = tools.require("redis-server")  # skipped with a reason where missing; failed in CI
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        assert self.binary is not None
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL: what is not on disk is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Cluster:
    """N API processes (uvicorn) and M workers (``jmbooru worker``) sharing Redis and a data folder."""

    def __init__(self, tmp: Path, env: dict[str, str], apis: int, workers: int) -> None:
        self.tmp = tmp
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.api_ports: list[int] = []
        self.api_procs: list[subprocess.Popen[bytes]] = []
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        for _ in range(apis):
            self.add_api()
        for _ in range(workers):
            self.add_worker()
        self.wait_ready()

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([sys.executable, *args], env=self.env, cwd=ROOT, stdout=log, stderr=log)

    def add_api(self) -> None:
        port = free_port()
        self.api_ports.append(port)
        self.api_procs.append(self._spawn(f"api-{port}", [
            "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--ws-per-message-deflate", "false",
        ]))

    def add_worker(self) -> None:
        index = len(self.worker_procs)
        self.worker_procs.append(self._spawn(f"worker-{index}", ["-m", "app.cli", "worker", "--log-level", "warning"]))

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.api_ports[i % len(self.api_ports)]}"

    def ws(self, i: int) -> str:
        return f"ws://127.0.0.1:{self.api_ports[i % len(self.api_ports)]}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for port, proc in zip(self.api_ports, self.api_procs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"API process on {port} exited:\n{self.logs()}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"API process on {port} did not start:\n{self.logs()}")
                time.sleep(0.1)
        time.sleep(1.0)  # workers connect to the broker
        for proc in self.worker_procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited:\n{self.logs()}")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None:
            print(self.logs())  # what the processes said, next to the failure
        self.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log"))

    def stop(self) -> None:
        for proc in self.api_procs + self.worker_procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        hung = []
        for proc in self.api_procs + self.worker_procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                hung.append(proc.args)
        # A process that ignores SIGTERM would hang a deployment's shutdown: fail loudly.
        assert not hung, f"did not stop on SIGTERM: {hung}\n{self.logs()}"
