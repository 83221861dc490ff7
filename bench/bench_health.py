"""``/v1/health`` beside a bare FastAPI app, measured the way issue 26 asks.

Both servers run under the same uvicorn flags (``--no-access-log``, the default loop and parser),
pinned to CPU 0, with ``wrk -t1 -c64`` pinned to CPU 1; they alternate (bare, jmbooru, bare, ...)
and every figure is reported as the median of the paired ratios jmbooru ÷ bare: requests per
second, CPU time per request (from /proc, the server process only) and p99 latency.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import ServerProcess, environment_md, machine, median, publish, save_raw, verdict

ROUNDS = 5
SECONDS = 5
TICK = 100  # clock ticks per second of /proc/<pid>/stat (Linux's USER_HZ)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wrk(url: str, header: str = "") -> dict[str, float]:
    extra = ["-H", header] if header else []
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{SECONDS}s", "--latency", *extra, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]
    return {"rps": rps, "requests": requests, "p99_ms": p99}


def measure(server: ServerProcess, header: str = "") -> dict[str, float]:
    url = f"{server.url}/v1/health"
    wrk_warm = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", "-d1s", url], capture_output=True)
    assert wrk_warm.returncode == 0
    before = cpu_ticks(server.pid)
    result = wrk(url, header)
    result["cpu_us"] = (cpu_ticks(server.pid) - before) / TICK / result["requests"] * 1e6
    return result


def env() -> dict[str, str]:
    # No upstream is reached: the JM domains point at a closed loopback port.
    return {"JMBOORU_JM_API_DOMAINS": "127.0.0.1:9", "JMBOORU_JM_IMAGE_DOMAINS": "127.0.0.1:9",
            "JMBOORU_JM_SCHEME": "http"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_health needs wrk (apt-get install wrk)")
    # "routed": a browser's request (with Origin) is not answered at the edge; it pays for CORS,
    # routing and the body guard, like every other endpoint does.
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "jmbooru": [], "routed": []}
    for _ in range(args.rounds):
        for name, target in (("bare", "bench._bare_app:app"), ("jmbooru", "app.main:app")):
            with ServerProcess(env(), cpus={0}, target=target) as server:
                time.sleep(0.5)  # start-up work (the JM client) settles first
                runs[name].append(measure(server))
                if name == "jmbooru":
                    runs["routed"].append(measure(server, "Origin: https://app.example"))
    save_raw("health", runs)
    pairs = list(zip(runs["bare"], runs["jmbooru"], strict=True))
    ratio = {key: median([j[key] / b[key] for b, j in pairs]) for key in ("rps", "cpu_us", "p99_ms")}
    routed = {key: median([r[key] / b[key] for b, r in zip(runs["bare"], runs["routed"], strict=True)])
              for key in ("rps", "cpu_us", "p99_ms")}
    med = {name: {key: median([r[key] for r in rs]) for key in ("rps", "cpu_us", "p99_ms")} for name, rs in runs.items()}
    rows = [
        f"| requests/s | {med['bare']['rps']:,.0f} | {med['jmbooru']['rps']:,.0f} | {ratio['rps']:.2f}× | ≥ 0.85× "
        f"| {verdict(ratio['rps'] >= 0.85)} |",
        f"| CPU per request | {med['bare']['cpu_us']:.0f} µs | {med['jmbooru']['cpu_us']:.0f} µs | "
        f"{ratio['cpu_us']:.2f}× | | |",
        f"| p99 latency | {med['bare']['p99_ms']:.1f} ms | {med['jmbooru']['p99_ms']:.1f} ms | {ratio['p99_ms']:.2f}× "
        f"| ≤ 2× | {verdict(ratio['p99_ms'] <= 2.0)} |",
        f"| routed (with `Origin`): requests/s | | {med['routed']['rps']:,.0f} | {routed['rps']:.2f}× | | |",
        f"| routed: CPU per request | | {med['routed']['cpu_us']:.0f} µs | {routed['cpu_us']:.2f}× | | |",
        f"| routed: p99 latency | | {med['routed']['p99_ms']:.1f} ms | {routed['p99_ms']:.2f}× | | |",
    ]
    markdown = "\n".join([
        "## `/v1/health` beside a bare FastAPI app (`bench/bench_health.py`)", "",
        environment_md(machine(), [
            f"Both under `uvicorn --no-access-log` (same flags), pinned to CPU 0; `wrk -t1 -c64 -d{SECONDS}s --latency` "
            f"pinned to CPU 1; {args.rounds} alternating rounds (bare, jmbooru), ratios are medians of the paired "
            "ratios; CPU time is the server process's own (utime + stime from /proc)",
            "A monitor's `GET /v1/health` (no `Origin`, no body) is answered by the outermost middleware (`Edge`) "
            "with the route's bytes; \"routed\" is a browser's request with `Origin`, which goes through CORS, "
            "routing and the body guard like any endpoint (measured on the same jmbooru server, right after)"]),
        "", "| figure | bare FastAPI | jmbooru | jmbooru ÷ bare | target | result |", "|---|---|---|---|---|---|",
        *rows, "",
        "Rounds (req/s, bare / jmbooru): " + ", ".join(f"{b['rps']:,.0f} / {j['rps']:,.0f}" for b, j in pairs) + "."])
    publish("health", markdown, args.out, args.no_write)


if __name__ == "__main__":
    main()
