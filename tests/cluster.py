"""Run a scale-out cluster for tests: redis-server, API processes and workers as real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from tests import tools
from tests.conftest import free_port, wait_serving, wait_until

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
        self.proc = proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)

        def pinged() -> bool:
            assert proc.poll() is None, f"redis-server exited ({proc.returncode}) on port {self.port}"
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                return False

        try:
            wait_until(pinged, timeout=10, message=f"redis-server on port {self.port} did not answer PING")
        finally:
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
        """Every API process answers its health check, and every worker waits on the job queue."""
        for port, proc in zip(self.api_ports, self.api_procs, strict=True):
            wait_serving(f"http://127.0.0.1:{port}", proc, log=self.logs, timeout=timeout)
        wait_until(self._workers_listening, timeout=timeout, interval=0.1,
                   message=lambda: f"the workers did not all wait on the job queue:\n{self.logs()}")

    def _workers_listening(self) -> bool:
        """Whether as many clients as there are workers are blocked in BRPOP on Redis (an idle
        worker's wait for a job). A Redis that is away has no such clients to show: a worker started
        before Redis waits for it, so that counts as ready (the tests of outages check the rest)."""
        for proc in self.worker_procs:
            assert proc.poll() is None, f"a worker exited:\n{self.logs()}"
        if not self.worker_procs:
            return True
        client = redis.Redis.from_url(self.env["JMBOORU_REDIS_URL"])
        try:
            clients = client.client_list()
        except redis.ConnectionError:
            return True
        finally:
            client.close()
        waiting = [c for c in clients if c.get("cmd") == "brpop" and "b" in c.get("flags", "")]
        return len(waiting) >= len(self.worker_procs)

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
