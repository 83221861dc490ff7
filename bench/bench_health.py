"""``/v1/health`` beside a bare FastAPI app, measured the way issue 26 asks.

Both servers run under the same uvicorn flags (``--no-access-log``, the default loop and parser),
pinned to CPU 0, with ``wrk -t1 -c64`` pinned to CPU 1; they alternate (bare, jmbooru, bare, ...)
and every figure is reported as the median of the paired ratios jmbooru ÷ bare: requests per
second, CPU time per request (from /proc, the server process only) and p99 latency.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from _common import (
    CLIENT_CPU,
    SERVER_CPU,
    ServerProcess,
    arg_parser,
    environment_md,
    jm_env,
    machine,
    median,
    paired,
    publish,
    run_load,
    run_wrk,
    save_raw,
    verdict,
)

ROUNDS = 5
SECONDS = 5
KEYS = ("rps", "cpu_us_per_req", "p99_ms")


def measure(server: ServerProcess, header: str = "") -> dict[str, float]:
    url = f"{server.url}/v1/health"
    run_wrk(url, 64, 1, cpus=CLIENT_CPU)  # warm-up
    return run_load(url, 64, SECONDS, pid=server.pid, cpus=CLIENT_CPU, header=header)


def main() -> None:
    args = arg_parser(__doc__, rounds=ROUNDS).parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_health needs wrk (apt-get install wrk)")
    # "routed": a browser's request (with Origin) is not answered at the edge; it pays for CORS,
    # routing and the body guard, like every other endpoint does.
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "jmbooru": [], "routed": []}
    for _ in range(args.rounds):
        for name, target in (("bare", "bench._bare_app:app"), ("jmbooru", "app.main:app")):
            # No upstream is reached: the JM domains point at a closed loopback port.
            with ServerProcess(jm_env("127.0.0.1:9"), cpus=SERVER_CPU, target=target) as server:
                time.sleep(0.5)  # start-up work (the JM client) settles first
                runs[name].append(measure(server))
                if name == "jmbooru":
                    runs["routed"].append(measure(server, "Origin: https://app.example"))
    save_raw("health", runs)
    ratio, routed = ({key: median(paired([b[key] for b in runs["bare"]], [r[key] for r in runs[name]])) for key in KEYS}
                     for name in ("jmbooru", "routed"))
    med = {name: {key: median(r[key] for r in rs) for key in KEYS} for name, rs in runs.items()}
    pairs = list(zip(runs["bare"], runs["jmbooru"], strict=True))
    rows = [
        f"| requests/s | {med['bare']['rps']:,.0f} | {med['jmbooru']['rps']:,.0f} | {ratio['rps']:.2f}× | ≥ 0.85× "
        f"| {verdict(ratio['rps'] >= 0.85)} |",
        f"| CPU per request | {med['bare']['cpu_us_per_req']:.0f} µs | {med['jmbooru']['cpu_us_per_req']:.0f} µs | "
        f"{ratio['cpu_us_per_req']:.2f}× | | |",
        f"| p99 latency | {med['bare']['p99_ms']:.1f} ms | {med['jmbooru']['p99_ms']:.1f} ms | {ratio['p99_ms']:.2f}× "
        f"| ≤ 2× | {verdict(ratio['p99_ms'] <= 2.0)} |",
        f"| routed (with `Origin`): requests/s | | {med['routed']['rps']:,.0f} | {routed['rps']:.2f}× | | |",
        f"| routed: CPU per request | | {med['routed']['cpu_us_per_req']:.0f} µs | {routed['cpu_us_per_req']:.2f}× | | |",
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
    publish("health", markdown, args)


if __name__ == "__main__":
    main()
