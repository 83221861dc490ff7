"""1,000 WebSocket clients on one server: event delivery latency and memory per connection.

    .venv/bin/python bench/bench_ws.py [--clients 1000] [--groups 10] [--rounds 10] [--no-write]

The server (``uvicorn app.main:app``, one process) is pinned to CPU 0; the clients (one process,
bench/_ws_clients.py, a minimal asyncio WebSocket client that stamps each frame in
``data_received``), the JM double and this script share CPU 1. The file-descriptor limit is raised
with ``resource.setrlimit`` (inherited by the processes started here).

The 1,000 sockets follow ``/ws/notifications/bench-<k>`` for k = 0..9, 100 per client id, and
stay open through three measurements:

1. Memory per connection: server VmRSS with the 1,000 sockets open and idle, minus VmRSS before
   they connected, divided by 1,000.
2. Fan-out under load: 10 album jobs (100 plain pages each, every image delayed 0.4 s by the
   double, so each job runs for seconds and sends ~10 progress frames a second) are started at
   once, job k for client id ``bench-k``; every frame reaches the 100 sockets of its client id.
   The server's publish moment cannot be seen from outside, so for each frame (job, seq) the
   earliest arrival among its 100 sockets stands in for it: latency = arrival - first arrival.
   This is the fan-out delay, a lower bound of publish-to-arrival.
3. Anchored: with the 10 jobs ready, ``POST /v1/download/album/<id>`` with ``client_id=bench-k``
   joins the ready job, and the server publishes its ``download_ready`` frame to that client id
   from inside the request handler; latency = arrival - the moment the POST was written, an upper
   bound of publish-to-arrival (it includes parsing the request). "Single" rounds send one POST
   (100 frames); "burst" rounds write the 10 POSTs back to back on 10 keep-alive sockets (1,000
   frames at once). ``--rounds`` rounds of each, alternating, 0.5 s apart.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from _common import (
    BENCH,
    CLIENT_CPU,
    PYTHON,
    SERVER_CPU,
    DoubleProcess,
    LineProcess,
    ServerProcess,
    arg_parser,
    cpu_list,
    environment_md,
    jm_env,
    machine,
    mb,
    median,
    percentile,
    pin_self,
    publish,
    raise_nofile,
    run_albums,
    save_raw,
    verdict,
    wait_jobs,
)

TARGET_P99_MS = 100.0
FIRST_ALBUM = 190601


class Clients(LineProcess):
    """bench/_ws_clients.py: the sockets, in a process of their own pinned to CLIENT_CPU."""

    what = "WebSocket clients"
    quit_command = "QUIT"

    def __init__(self, port: int, paths: list[str]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as listing:
            json.dump(paths, listing)
        self.paths = Path(listing.name)
        super().__init__([*cpu_list(CLIENT_CPU), PYTHON, str(BENCH / "_ws_clients.py"), str(port), str(self.paths), "50"])

    def start(self) -> Clients:
        super().start()
        self.connected, self.failed = int(self.ready[1]), int(self.ready[2])
        return self

    def dump(self) -> list[dict[str, Any]]:
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as dump:
            out = Path(dump.name)
        self.ask(f"DUMP {out}")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        out.unlink()
        return rows

    def stop(self, timeout: float = 20) -> None:
        super().stop(timeout)
        self.paths.unlink(missing_ok=True)


def read_response(sock: socket.socket, pending: bytes = b"") -> tuple[int, bytes]:
    data = pending
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), rest[length:]


def post_request(album_id: int, client_id: str) -> bytes:
    body = json.dumps({"client_id": client_id}).encode()
    return (f"POST /v1/download/album/{album_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def summarise(latencies: list[float]) -> dict[str, Any]:
    return {"n": len(latencies), "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else float("nan")}


def scenario(args: argparse.Namespace) -> dict[str, Any]:
    """One server, 1,000 sockets, the three measurements; returns the figures."""
    groups = args.groups
    albums = [FIRST_ALBUM + k for k in range(groups)]
    # ?progress=1: the benchmark measures the fan-out of progress frames as well as finals.
    paths = [f"/ws/notifications/bench-{i % groups}?progress=1" for i in range(args.clients)]
    group_of = [i % groups for i in range(args.clients)]

    with DoubleProcess([f"big:{aid}:{args.pages}:0" for aid in albums]) as double:
        # 100 sockets per client id measure fan-out; the default (16 per client id) would refuse them.
        env = jm_env(double.host, JMBOORU_MAX_CONCURRENT_JOBS=str(groups),
                     JMBOORU_MAX_SOCKETS_PER_CLIENT=str(-(-args.clients // groups)))
        with ServerProcess(env, cpus=SERVER_CPU) as server:
            target = server.target
            # warm-up: one job end to end (jmcomic client, sqlite, zip) for a client nobody follows
            with httpx.Client(base_url=server.url, timeout=60) as http:
                run_albums(http, ["100001"], "warm-up", interval=0.1)
            time.sleep(1.0)
            rss_before = server.rss()

            # ---- 1. memory per idle connection ---------------------------------------------
            with Clients(server.port, paths) as clients:
                if clients.failed:
                    raise RuntimeError(f"{clients.failed} WebSocket connections failed")
                time.sleep(2.0)
                rss_idle = server.rss()
                per_conn = (rss_idle - rss_before) / clients.connected
                clients.dump()  # nothing should have arrived; start clean

                # ---- 2. fan-out while the jobs run -------------------------------------------
                double.set_latency(args.latency, "/media/photos")
                job_ids: dict[int, str] = {}
                with httpx.Client(base_url=server.url, timeout=60) as http:
                    t_start = time.monotonic()
                    for k, aid in enumerate(albums):
                        job_ids[k] = http.post(f"/v1/download/album/{aid}",
                                               json={"client_id": f"bench-{k}"}).json()["job_id"]
                    wait_jobs(http, list(job_ids.values()), interval=0.25, timeout=300)
                jobs_seconds = time.monotonic() - t_start
                time.sleep(2.0)  # let the final frames and their bookkeeping drain
                rss_after_jobs = server.rss()
                fan = clients.dump()
                double.set_latency(0, "/media/photos")

                # ---- 3. anchored publishes: one client id (100 frames), or all at once (1,000) --
                socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(groups)]
                for s in socks:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                requests = [post_request(aid, f"bench-{k}") for k, aid in enumerate(albums)]
                sends: list[tuple[str, int, float, int]] = []  # (kind, group, time written, round)
                post_rtts: dict[str, list[float]] = {"single": [], "burst": []}
                for r in range(2 * args.rounds):
                    kind = "single" if r % 2 == 0 else "burst"
                    chosen = [(r // 2) % groups] if kind == "single" else list(range(groups))
                    written = {}
                    for k in chosen:
                        written[k] = time.monotonic()
                        socks[k].sendall(requests[k])
                        sends.append((kind, k, written[k], r))
                    for k in chosen:
                        status, _ = read_response(socks[k])
                        post_rtts[kind].append((time.monotonic() - written[k]) * 1000)
                        if status != 202:
                            raise RuntimeError(f"POST answered {status}")
                    time.sleep(0.5)
                time.sleep(1.0)
                for s in socks:
                    s.close()
                anchored = clients.dump()
                rss_end = server.rss()
                hwm = server.hwm()

    # ---- analysis ------------------------------------------------------------------------------
    # 2: arrival minus the first arrival of the same frame among the sockets of its client id
    arrivals: dict[tuple[int, str, int], list[float]] = defaultdict(list)
    fan_events: dict[str, int] = defaultdict(int)
    event_of: dict[tuple[int, str, int], str] = {}
    for row in fan:
        if row["event"] == "snapshot":
            continue
        fan_events[row["event"]] += 1
        key = (group_of[row["conn"]], row["job_id"], row["seq"])
        arrivals[key].append(row["t"])
        event_of[key] = row["event"]
    by_event: dict[str, list[float]] = defaultdict(list)
    for key, ts in arrivals.items():
        by_event[event_of[key]] += [(t - min(ts)) * 1000 for t in ts]
    fan_summary = summarise([v for values in by_event.values() for v in values])
    spreads = [(max(ts) - min(ts)) * 1000 for ts in arrivals.values()]
    fan_summary.update(
        frames=len(arrivals), incomplete=sum(1 for ts in arrivals.values() if len(ts) != args.clients // groups),
        spread_p50=percentile(spreads, 50), spread_max=max(spreads) if spreads else float("nan"),
        events=dict(fan_events), jobs_seconds=jobs_seconds,
        by_event={event: summarise(values) for event, values in by_event.items()})

    # 3: arrival minus the moment the POST that caused it was written
    sent_at: dict[int, list[tuple[float, str, int]]] = defaultdict(list)
    for kind, k, t, r in sends:
        sent_at[k].append((t, kind, r))
    anchored_lat: dict[str, list[float]] = {"single": [], "burst": []}
    round_max: dict[int, float] = defaultdict(float)
    round_kind: dict[int, str] = {}
    per_post: dict[tuple[int, int], list[float]] = defaultdict(list)
    unmatched = 0
    for row in anchored:
        before = [sent for sent in sent_at[group_of[row["conn"]]] if sent[0] <= row["t"]]
        if not before or row["event"] != "download_ready":
            unmatched += 1
            continue
        t, kind, r = max(before)
        anchored_lat[kind].append((row["t"] - t) * 1000)
        round_max[r] = max(round_max[r], (row["t"] - t) * 1000)
        round_kind[r] = kind
        per_post[(r, group_of[row["conn"]])].append(row["t"])
    anchored_summary = {}
    for kind, values in anchored_lat.items():
        anchored_summary[kind] = summarise(values)
        anchored_summary[kind].update(
            expected=args.rounds * (args.clients // groups) * (1 if kind == "single" else groups),
            post_p50=percentile(post_rtts[kind], 50), post_p99=percentile(post_rtts[kind], 99),
            worst_per_round_median=median([v for r, v in round_max.items() if round_kind[r] == kind]),
            fanout=summarise([(t - min(ts)) * 1000 for (r, _k), ts in per_post.items() if round_kind[r] == kind
                              for t in ts]))
    memory = {"rss_before": rss_before, "rss_idle": rss_idle, "per_conn": per_conn,
              "rss_after_jobs": rss_after_jobs, "rss_end": rss_end, "hwm": hwm}
    label = "ws"
    print(f"[{label}] {args.clients} idle sockets: server RSS {mb(rss_before)} -> {mb(rss_idle)}, "
          f"{per_conn / 1024:.1f} KB per connection")
    print(f"[{label}] fan-out during {groups} running jobs: {fan_summary['frames']} frames x "
          f"{args.clients // groups} sockets, arrival - first arrival p50 {fan_summary['p50']:.1f} ms, p99 "
          f"{fan_summary['p99']:.1f} ms, max {fan_summary['max']:.1f} ms; by event: "
          + ", ".join(f"{e} p99 {v['p99']:.1f} ms" for e, v in fan_summary["by_event"].items()))
    for kind, a in anchored_summary.items():
        print(f"[{label}] anchored {kind}: {a['n']} of {a['expected']} frames, arrival - POST written p50 "
              f"{a['p50']:.1f} ms, p99 {a['p99']:.1f} ms, max {a['max']:.1f} ms (arrival - first arrival of the "
              f"same POST: p99 {a['fanout']['p99']:.1f} ms); POST round trip p50 {a['post_p50']:.1f} ms, "
              f"p99 {a['post_p99']:.1f} ms")
    print(f"[{label}] worst arrival per anchored round (ms): "
          + " ".join(f"{round_max[r]:.0f}" for r in sorted(round_max)))
    return {"target": target, "memory": memory, "fan_out": fan_summary,
            "anchored": anchored_summary, "unmatched": unmatched,
            "round_max": [round_max[r] for r in sorted(round_max)]}


def main() -> None:
    # --groups: client ids (and jobs), sockets spread evenly; --latency: per page image; --rounds: of each kind
    args = arg_parser(__doc__, clients=1000, groups=10, pages=100, latency=0.4, rounds=10).parse_args()

    nofile = raise_nofile()
    pin_self(CLIENT_CPU)
    info = machine()
    raw: dict[str, Any] = {"machine": info, "args": vars(args), "nofile": nofile, "as_is": scenario(args)}
    save_raw("ws", raw)
    publish("ws", render(info, args, raw), args)


def render(info: dict[str, Any], args: argparse.Namespace, raw: dict[str, Any]) -> str:
    run = raw["as_is"]
    fan, anchored, memory = run["fan_out"], run["anchored"], run["memory"]
    per_socket = args.clients // args.groups
    single, burst = anchored["single"], anchored["burst"]

    def row(label: str, figure: dict[str, Any]) -> str:
        worst = figure.get("worst_per_round_median")
        extra = f"; median of the rounds' slowest arrival {worst:.1f} ms" if worst is not None else ""
        if "fanout" in figure:
            extra += (f"; arrival − first arrival of the same POST's frames (lower bound): p99 "
                      f"{figure['fanout']['p99']:.1f} ms")
        return (f"| {label} | p50 {figure['p50']:.1f} ms, **p99 {figure['p99']:.1f} ms**, max {figure['max']:.1f} ms{extra} "
                f"| {figure['p99'] / TARGET_P99_MS:.2f} | p99 < {TARGET_P99_MS:.0f} ms | "
                f"{verdict(figure['p99'] < TARGET_P99_MS)} |")

    lines = [
        "## 3. WebSockets: 1,000 clients (`bench/bench_ws.py`)",
        "",
        environment_md(info, [
            f"Server: `uvicorn {run['target']}`, one process pinned to CPU 0, default WebSocket settings "
            "(websockets sans-I/O); "
            f"clients: {args.clients} sockets in one separate process (bench/_ws_clients.py, asyncio + uvloop) "
            f"pinned to CPU 1 with the JM double; `RLIMIT_NOFILE` raised to {raw['nofile']}",
            f"Sockets: `/ws/notifications/bench-<k>`, k = 0..{args.groups - 1}, {per_socket} per client id, "
            "open through all three measurements",
        ]),
        "",
        "Method. Arrival = `time.monotonic()` in the client's `data_received`, before any parsing (CLOCK_MONOTONIC "
        "is one clock for every process of the machine). The server's publish moment is not visible from "
        "outside, so it is bracketed two ways:",
        "",
        f"- *Fan-out under load* (a lower bound): {args.groups} album jobs of {args.pages} pages run at once "
        f"(each image delayed {args.latency * 1000:.0f} ms; {fan['jobs_seconds']:.1f} s in all), job k for "
        f"client id `bench-k`; for every frame (job, seq) the earliest arrival among its {per_socket} sockets "
        "stands in for the publish moment: latency = arrival − first arrival.",
        f"- *Anchored* (an upper bound): with the jobs ready, `POST /v1/download/album/<id>` with "
        "`client_id=bench-<k>` joins the ready job and the server publishes its `download_ready` frame to that "
        "client id from inside the request handler: latency = arrival − the moment the POST was written "
        "(so it includes parsing and routing the POST). *Single*: one POST, "
        f"{per_socket} frames; *burst*: {args.groups} POSTs written back to back on {args.groups} keep-alive "
        f"sockets, {args.clients:,} frames at once. {args.rounds} rounds of each, alternating, 0.5 s apart.",
        "",
        "| figure | measured | ratio | target | result |",
        "|---|---|---|---|---|",
        row(f"delivery latency, fan-out under load, all frames ({fan['n']:,} arrivals of {fan['frames']:,} frames)", fan),
    ]
    for event, figure in fan["by_event"].items():
        lines.append(row(f"… only `{event}` frames ({figure['n']:,} arrivals)", figure))
    lines += [
        row(f"delivery latency, anchored single publish ({single['n']:,} of {single['expected']:,} arrivals)", single),
        row(f"delivery latency, anchored burst of {args.clients:,} frames ({burst['n']:,} of {burst['expected']:,} "
            "arrivals)", burst),
        f"| memory per idle connection | {memory['per_conn'] / 1024:.1f} KB ({mb(memory['rss_before'])} → "
        f"{mb(memory['rss_idle'])} for {args.clients:,} sockets) | | (reported) | |",
        "",
        f"Frames during the jobs: {fan['events']}; frames that did not reach all {per_socket} sockets of their "
        f"client id: {fan['incomplete']}. Spread between the first and the last socket of a frame: median "
        f"{fan['spread_p50']:.1f} ms, max {fan['spread_max']:.1f} ms. POST round trip: single p50 "
        f"{single['post_p50']:.1f} ms / p99 {single['post_p99']:.1f} ms, burst p50 {burst['post_p50']:.1f} ms / p99 "
        f"{burst['post_p99']:.1f} ms. Server RSS after the jobs {mb(memory['rss_after_jobs'])}, at the end "
        f"{mb(memory['rss_end'])}, peak {mb(memory['hwm'])}.",
    ]
    lines += ["", findings(raw)]
    return "\n".join(lines)


def findings(raw: dict[str, Any]) -> str:
    run = raw["as_is"]
    fan, anchored = run["fan_out"], run["anchored"]
    ready = fan["by_event"].get("download_ready", {"p99": 0.0})
    clients = raw["args"]["clients"]
    out = ["Findings:", ""]
    if ready["p99"] >= TARGET_P99_MS or anchored["single"]["p99"] >= TARGET_P99_MS:
        out.append(
            "- **Final frames are slow to fan out.** A final frame on a notifications socket is followed by "
            "`mark_notified` (`app/api/ws.py` `notifications`): if that rewrites the job for every socket "
            "(a deep copy and a SQLite write each) instead of once per client id, the writes queue up on "
            "the store's one-thread pool and delay the frames and the requests behind them.")
    burst = anchored["burst"]
    if burst["p99"] >= TARGET_P99_MS:
        per_frame = burst["worst_per_round_median"] * 1000 / clients
        out.append(
            f"- **Bursts of {clients:,} frames miss the target; single publishes do not.** The spread of a "
            f"burst is the event loop sending {clients:,} frames one socket at a time: per socket and frame "
            "the subscriber task wakes up, the follow generator yields, the text goes down Starlette's and uvicorn's ASGI send path into "
            "websockets' framing and one socket write, and `mark_notified` runs. The rounds' slowest arrival "
            f"has a median of {burst['worst_per_round_median']:.0f} ms, ~{per_frame:.0f} µs of loop time per "
            "frame on a CPU shared with noisy neighbours, and the p99 also catches the rounds that a "
            "neighbour or a garbage collection slowed down. The frames of one POST reach its own "
            f"{clients // raw['args']['groups']} sockets within p99 {burst['fanout']['p99']:.0f} ms of each other: "
            "the rest is waiting for the other POSTs' frames. "
            "**Fix:** per-frame work can be trimmed a little (see \"Notes on the misses that remain or recur\": checking "
            "`client_id in job.notified` before `store.update` in `mark_notified`, `app/jobs/follow.py`), but one "
            "process sends only a few thousand frames a second, so a 1,000-socket burst under 100 ms needs "
            "the sockets spread over several processes (the Redis scale-out mode).")
    if len(out) == 2:
        out.append("- Delivery meets the target in every measurement.")
    out.append(f"- Memory: {run['memory']['per_conn'] / 1024:.0f} KB per idle notifications socket (uvicorn's "
               "protocol and websockets' state, the ASGI task, `_pump`'s two tasks, the follow generator and "
               "its subscription queue).")
    return "\n".join(out)


if __name__ == "__main__":
    main()
