"""Gelbooru dataset download: wall time against the latency-bound limit, CPU per image, gallery-dl.

    .venv/bin/python bench/bench_gelbooru.py [--runs 5] [--aux-runs 3] [--images 500] [--kb 200]
                                             [--latency 0.1] [--workers 16] [--rate 50]
                                             [--gdl-runs 3] [--gdl PATH] [--no-gdl] [--no-sharded-gdl]

The Gelbooru double (tests/fakes/gelbooru.py) runs in a process of its own (bench/_double_proc.py),
so its CPU is not charged to the downloader and it does not share the downloader's GIL. Every API and image response waits ``--latency`` seconds before it is sent.

jmbooru: ``download_dataset(client, "1girl", dir, max_images=N, workers=W)`` in this process;
wall time and this process's CPU (user+sys, all threads) are measured around the call only.
Interleaved with it, to locate the overhead: the same download at the default API rate (2/s) and
into tmpfs; the images alone through jmbooru's httpx client, through aiohttp and over plain
sockets (built
from app/sources/dataset.py's source at run time; app/ is not changed).

gallery-dl (optional, from a separate venv, never a project dependency): its ``gelbooru``
extractor has ``root = "https://gelbooru.com"`` hard-coded and only matches gelbooru.com URLs, so
it cannot be pointed at a loopback address by configuration. Its ``gelbooru_v02`` extractor (the
same Gelbooru ``dapi`` API, read as XML) accepts custom instances from the configuration
(``extractor.gelbooru_v02.<name>.root``); the double answers XML when ``json=1`` is absent, as
Gelbooru does. Install: ``python3 -m venv /tmp/gdl-venv && /tmp/gdl-venv/bin/pip install gallery-dl``.

Writes its section of docs/benchmarks.md. Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import (
    GDL,
    GELBOORU_CREDENTIALS,
    TAGS,
    BooruDoubleProcess,
    CpuMeter,
    arg_parser,
    cpu_seconds,
    dataset_run,
    gdl_run,
    gelbooru_gdl,
    listed,
    machine,
    publish,
)
from _common import median_of as med
from _common import package_version as version

PAGE = 100  # posts per API page (Gelbooru's maximum, and what both downloaders ask for)
TARGET_EFFICIENCY = 0.85


# --------------------------------------------------------------------------------------------
# jmbooru, and two reference clients
# --------------------------------------------------------------------------------------------


def create_cost(folder: Path, files: int = 200) -> float:
    """Median seconds to create (and close) an empty file in ``folder``."""
    times = []
    for i in range(files):
        t0 = time.perf_counter()
        open(folder / f".probe-{i}", "wb").close()  # noqa: SIM115 - what is measured
        times.append(time.perf_counter() - t0)
    for i in range(files):
        (folder / f".probe-{i}").unlink()
    return statistics.median(times)


async def image_urls(base_url: str, images: int) -> list[str]:
    from app.sources.booru.registry import build_site

    client = build_site("gelbooru", url=base_url, rate=1000, **GELBOORU_CREDENTIALS)
    urls: list[str] = []
    for page in range(math.ceil(images / PAGE)):
        urls += [p.file_url for p in (await client.search_posts(TAGS, page=page + 1, limit=PAGE)).posts]
    await client.aclose()
    return urls[:images]


async def workers_run(worker: Callable[[], Awaitable[None]], workers: int) -> dict[str, float]:
    """``workers`` copies of ``worker`` at once: wall time and this process's CPU."""
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return {"wall": time.perf_counter() - t0, "cpu": cpu_seconds() - cpu0}


async def httpx_run(base_url: str, urls: list[str], workers: int) -> dict[str, float]:
    """The images only, through jmbooru's own httpx.AsyncClient set-up, read and discarded."""
    from app.sources.booru.gelbooru import GelbooruSite
    from app.sources.booru.registry import build_site

    client = build_site("gelbooru", url=base_url, **GELBOORU_CREDENTIALS)
    assert isinstance(client, GelbooruSite)
    async with client.http._http as http:
        todo = iter(urls)

        async def worker() -> None:
            for url in todo:
                async with http.stream("GET", url, headers={"Referer": base_url + "/"}) as response:
                    async for _ in response.aiter_bytes():
                        pass

        return await workers_run(worker, workers)


async def aiohttp_run(base_url: str, urls: list[str], workers: int) -> dict[str, float]:
    """The images only through aiohttp (installed with the project's dependencies), bodies discarded:
    what another HTTP client would cost per image."""
    import aiohttp

    todo = iter(urls)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def worker() -> None:
            for url in todo:
                async with session.get(url, headers={"Referer": base_url + "/"}) as response:
                    async for _ in response.content.iter_any():
                        pass

        return await workers_run(worker, workers)


async def raw_run(base_url: str, urls: list[str], workers: int) -> dict[str, float]:
    """The images only, over plain asyncio streams (one keep-alive connection per worker): the floor
    this double and this machine allow, with next to no client CPU."""
    host, port = base_url.split("://", 1)[1].split(":")
    todo = iter(urls)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for url in todo:
            path = url.split(base_url, 1)[1]
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nReferer: {base_url}/\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
        writer.close()

    return await workers_run(worker, workers)


# --------------------------------------------------------------------------------------------
# gallery-dl
# --------------------------------------------------------------------------------------------


def gdl_startup(gdl: str) -> float:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([gdl, "--version"], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def tmp_fs() -> str:
    """Where the dataset folders go: the temporary folder and the file system it is on."""
    try:
        tmp = os.path.realpath(tempfile.gettempdir())
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
        point, kind = max(((p, k) for p, k in mounts if tmp == p or tmp.startswith(p.rstrip("/") + "/")),
                          key=lambda pk: len(pk[0]))
        return f"{tmp} on {kind} ({point})"
    except (OSError, ValueError):
        return "unknown"


def report(args: argparse.Namespace, m: dict[str, Any], mean_bytes: float, res: dict[str, list[dict[str, float]]],
           gdl: dict[str, Any]) -> str:
    n, w, lat = args.images, args.workers, args.latency
    pages = math.ceil(n / PAGE)
    rounds = math.ceil(n / w)
    limit_list, limit_dl = pages * lat, rounds * lat
    # Downloads start after the first page; later pages arrive while the first images download.
    limit = lat + limit_dl
    polite_limit = max(limit, (pages - 1) / 2.0 + lat + math.ceil(min(n, PAGE) / w) * lat)
    jm = res["jm"]
    wall = med(jm, "wall")
    eff = limit / wall
    for r in jm:
        r["download"] = r["wall"] - r["listing"]
    cpu_img = med(jm, "cpu") / n
    mb = med(jm, "bytes") / 1e6
    verdict = "pass" if eff >= TARGET_EFFICIENCY else "miss"
    lines = [
        "## 4. Gelbooru dataset download (`bench/bench_gelbooru.py`)",
        "",
        f"- Machine: nproc {m['nproc']}, {m['cpu']}, {m['ram_gb']} GiB RAM, Linux {m['kernel']} (shared VM; other "
        f"processes used a median {med(jm, 'other_cores'):.2f} of its {m['nproc']} cores during the jmbooru runs)",
        f"- Date: {m['date']}; jmbooru commit {m['commit']}; dataset folders in {tmp_fs()}",
        f"- Versions: Python {m['python']}, httpx {version('httpx')}, httpcore {version('httpcore')}, "
        f"anyio {version('anyio')}" + (f", gallery-dl {gdl['version']} (separate venv)" if gdl else ""),
        f"- Command: `.venv/bin/python bench/bench_gelbooru.py` (--runs {args.runs} --aux-runs {args.aux_runs} "
        f"--gdl-runs {args.gdl_runs}); about {args.elapsed / 60:.0f} minutes",
        "",
        "**Method.** The Gelbooru double (tests/fakes/gelbooru.py) runs in its own process with "
        f"`make_posts({n}, image_bytes={args.kb * 1000})` (random-pixel PNGs, mean {mean_bytes / 1000:.0f} kB, "
        f"{mb:.1f} MB in all) and `latency = {lat}` s before every response (API and image). "
        f"jmbooru: `download_dataset(client, \"{TAGS}\", fresh_dir, max_images={n}, workers={w})` with "
        "default caption options (an image and a `.txt` caption per post, md5 verified, temporary file "
        "then rename), a new Gelbooru site object per run; wall time and the downloader process's CPU "
        "(user+sys of all its threads, `getrusage`) are taken around that call only. The listing phase ends "
        "at `on_progress(done=0)`, which `download_dataset` calls once the first page of posts is selected. "
        f"{len(jm)} runs after one warm-up; variants are interleaved run by run so that the machine's "
        "noise spreads evenly; medians reported, every run listed.",
        "",
        "**Latency-bound limit.** `download_dataset` starts downloading after the first page of posts "
        "and lists the later pages meanwhile, so",
        "",
        f"    limit = 1 page × {lat} s + ceil({n}/{w}) rounds × {lat} s "
        f"= {lat} + {rounds} × {lat} = {limit:.1f} s",
        "",
        f"({w} workers each hold one image request, so {n} images need at least {rounds} rounds of {lat} s; "
        f"the transfer of {mean_bytes / 1000:.0f} kB on loopback is left out; listing all {pages} pages first "
        f"would add {limit_list - lat:.1f} s). The main figure uses an API rate of {args.rate:g}/s. At the default "
        f"`JMBOORU_GELBOORU_API_RATE=2` pages start 0.5 s apart, which the downloads of earlier pages cover: "
        f"limit {polite_limit:.1f} s. Efficiency = limit / wall; target ≥ {TARGET_EFFICIENCY}.",
        "",
        "| figure | median | runs | target / limit | ratio | result |",
        "|---|---|---|---|---|---|",
        f"| **wall time**, {n} images, {w} workers, API rate {args.rate:g}/s | **{wall:.2f} s** | "
        f"{listed(jm, 'wall')} | limit {limit:.1f} s | **efficiency {eff:.2f}** (target ≥ {TARGET_EFFICIENCY}) "
        f"| **{verdict}** |",
        f"| first page of posts | {med(jm, 'listing'):.2f} s | {listed(jm, 'listing')} | "
        f"{lat:.1f} s | {lat / med(jm, 'listing'):.2f} | – |",
        f"| from then to the last image ({n} images, later pages listed meanwhile) | {med(jm, 'download'):.2f} s | "
        f"{listed(jm, 'download')} | "
        f"{limit_dl:.1f} s | {limit_dl / med(jm, 'download'):.2f} | – |",
        f"| **CPU per image** (downloader process, user+sys) | **{cpu_img * 1000:.2f} ms** (sys "
        f"{med(jm, 'sys') * 1000 / n:.2f} ms) | {listed(jm, 'cpu', 1000 / n)} | – | "
        f"{med(jm, 'cpu') / wall:.2f} cores busy on average | – |",
        f"| throughput | {n / wall:.0f} images/s, {mb / wall:.1f} MB/s | – | {n / limit:.0f} images/s | – | – |",
        f"| machine CPU during the jmbooru runs (of {m['nproc']} cores) | {med(jm, 'machine_cores'):.2f} | "
        f"downloader {med(jm, 'self_cores'):.2f}, double {med(jm, 'double_cores'):.2f}, other processes "
        f"{med(jm, 'other_cores'):.2f} | – | – | – |",
    ]
    if res.get("polite"):
        pw = med(res["polite"], "wall")
        lines.append(
            f"| wall time at the default API rate 2/s | {pw:.2f} s | {listed(res['polite'], 'wall')} | "
            f"limit {polite_limit:.1f} s | {polite_limit / pw:.2f} | {'pass' if polite_limit / pw >= TARGET_EFFICIENCY else 'miss'} |"
        )
    if res.get("tmpfs"):
        t = res["tmpfs"]
        lines.append(
            f"| reference: the same jmbooru download into tmpfs (/dev/shm) | {med(t, 'wall'):.2f} s, CPU "
            f"{med(t, 'cpu') * 1000 / n:.2f} ms/image (sys {med(t, 'sys') * 1000 / n:.2f} ms) | {listed(t, 'wall')} | "
            f"limit {limit:.1f} s | {limit / med(t, 'wall'):.2f} | – |"
        )
    for key, label in (("httpx", "reference: the images only through jmbooru's httpx client, bodies discarded"),
                       ("aiohttp", f"reference: the images only through aiohttp {version('aiohttp')}, bodies discarded"),
                       ("raw", "reference: the images only over plain asyncio sockets (floor of double + machine)")):
        if res.get(key):
            ref = res[key]
            lines.append(
                f"| {label} | {med(ref, 'wall'):.2f} s, CPU {med(ref, 'cpu') * 1000 / n:.2f} ms/image | "
                f"{listed(ref, 'wall')} | {limit_dl:.1f} s | {limit_dl / med(ref, 'wall'):.2f} | – |"
            )
    if gdl:
        g = gdl["runs"]
        gw = med(g, "wall")
        g_limit = (pages + 1) * lat + n * lat
        lines.append(
            f"| gallery-dl, 1 process (one file at a time, by design) | {gw:.2f} s | {listed(g, 'wall')} | "
            f"limit {g_limit:.1f} s | **jmbooru / gallery-dl wall = {wall / gw:.3f}** ({gw / wall:.1f}× faster) | – |"
        )
        lines.append(
            f"| gallery-dl CPU per image (1 process) | {med(g, 'cpu') * 1000 / n:.2f} ms | "
            f"{listed(g, 'cpu', 1000 / n)} | – | jmbooru / gallery-dl CPU = {cpu_img / (med(g, 'cpu') / n):.2f} | – |"
        )
        if gdl.get("sharded"):
            sh = gdl["sharded"]
            sw = med(sh, "wall")
            lines.append(
                f"| gallery-dl, {w} processes at once, split with `--range` | {sw:.2f} s, CPU "
                f"{med(sh, 'cpu') * 1000 / n:.2f} ms/image | {listed(sh, 'wall')} | – | jmbooru / gallery-dl "
                f"wall = {wall / sw:.2f} | – |"
            )
    httpx_cpu = med(res["httpx"], "cpu") / n if res.get("httpx") else 0.0
    raw_wall = med(res["raw"], "wall") if res.get("raw") else 0.0
    lines += ["", "**Where the time goes.**", ""]
    lines.append(
        f"- The run is {wall - limit:.2f} s over the limit: the first page {med(jm, 'listing') - lat:.2f} s "
        f"over its {lat:.1f} s and the downloads {med(jm, 'download') - limit_dl:.2f} s over their "
        f"{limit_dl:.1f} s."
        + (f" Plain sockets fetch the same images in {raw_wall:.2f} s, so the double and the machine account for "
           f"{raw_wall - limit_dl:.2f} s of that." if raw_wall else "")
    )
    if httpx_cpu:
        own = cpu_img - httpx_cpu
        lines.append(
            f"- CPU: {cpu_img * 1000:.2f} ms per image, of which httpx/httpcore alone (reference row) take "
            f"{httpx_cpu * 1000:.2f} ms; jmbooru's own work (md5, creating and writing the `.part` file and the "
            f"caption's temporary file, two renames, post parsing) is the other {own * 1000:.2f} ms, mostly kernel "
            f"time ({med(jm, 'sys') * 1000 / n:.2f} ms sys per image)."
            + (f" Into tmpfs the sys time drops to {med(res['tmpfs'], 'sys') * 1000 / n:.2f} ms and the wall time "
               f"to {med(res['tmpfs'], 'wall'):.2f} s: creating a file in a fresh folder on this VM's disk took "
               f"{statistics.median(args.create_disk) * 1000:.2f} ms (median `open(..., 'wb')` of 100 new files just "
               f"before each run: {', '.join(f'{c * 1000:.2f}' for c in args.create_disk)} ms; "
               f"{args.create_tmpfs * 1000:.3f} ms on tmpfs), and that happens on the event loop, twice per image." if res.get("tmpfs") else "")
            + f" The loop is single-threaded and {w} responses arrive almost together every {lat} s, so each "
            f"image also waits behind the others' processing: a worker's round trip is {lat * 1000:.0f} ms plus "
            f"up to {w} × {cpu_img * 1000:.1f} ms."
        )
    lines.append(
        "- Downloads start with the first page of posts while later pages are still listed "
        "(`app/sources/dataset.py`), so at the default API rate the listing no longer delays the first image."
    )
    if gdl:
        lines.append(
            "- gallery-dl was pointed at the double with its documented custom-instance configuration "
            "(`extractor.gelbooru_v02.<name>.root`, plus `api-key`/`user-id`). Its `gelbooru` extractor cannot "
            "be: `root = \"https://gelbooru.com\"` is a class attribute and its URL pattern only matches "
            "gelbooru.com. `gelbooru_v02` reads the same `dapi` post list as XML (the double answers XML "
            "when `json=1` is absent, as Gelbooru does) and asks for one more, empty page. gallery-dl downloads "
            f"one file at a time (it has no option for concurrent downloads), so its floor is "
            f"{(pages + 1) * lat + n * lat:.1f} s; its wall time includes interpreter start-up "
            f"({gdl['startup']:.2f} s for `gallery-dl --version`). It writes no captions and checks no md5, so it "
            "creates one file per image (its `.part`, renamed) where jmbooru creates two."
        )
        if gdl.get("sharded"):
            lines.append(
                f"- The {w}-process gallery-dl row is the nearest gallery-dl gets to {w} workers: each process "
                f"lists the pages up to its range and downloads its share; starting {w} interpreters on "
                f"{m['nproc']} cores is part of its wall time."
            )
    else:
        lines.append("- gallery-dl was not run (" + args.gdl_reason + ").")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def main() -> None:
    # --rate: the client's API rate for the main figure (--runs); --aux-runs: the reference, what-if and rate-2 runs
    args = arg_parser(__doc__, images=500, kb=200, latency=0.1, workers=16, rate=50.0, runs=5, aux_runs=3, gdl=GDL,
                      gdl_runs=3, no_gdl=False, no_sharded_gdl=False).parse_args()
    started = time.perf_counter()
    m = machine()
    print(f"machine: {m}", flush=True)
    double = BooruDoubleProcess("gelbooru", args.images, args.kb, args.latency).start()
    print(f"double ready at {double.base_url} in {time.perf_counter() - started:.1f} s "
          f"(mean image {double.mean_bytes / 1000:.0f} kB)", flush=True)
    meter = CpuMeter(double.pid)
    work = Path(tempfile.mkdtemp(prefix="bench-gelbooru-"))
    shm = Path("/dev/shm")
    tmpfs = Path(tempfile.mkdtemp(prefix="bench-gelbooru-", dir=shm)) if shm.is_dir() else None
    res: dict[str, list[dict[str, float]]] = {k: [] for k in ("jm", "httpx", "aiohttp", "raw", "tmpfs", "polite")}
    gdl: dict[str, Any] = {}
    n, w = args.images, args.workers
    try:
        asyncio.run(dataset_run("gelbooru", double.base_url, work / "warm", min(n, 50), w, args.rate))  # warm-up
        shutil.rmtree(work / "warm")
        urls = asyncio.run(image_urls(double.base_url, n))
        probes: list[float] = []
        args.create_tmpfs = create_cost(tmpfs) if tmpfs else 0.0
        double.hits()
        for i in range(max(args.runs, args.aux_runs)):
            plan: list[tuple[str, Any]] = []
            if i < args.runs:
                plan.append(("jm", lambda out: dataset_run("gelbooru", double.base_url, out, n, w, args.rate)))
            if i < args.aux_runs:
                plan += [
                    ("httpx", lambda out: httpx_run(double.base_url, urls, w)),
                    ("raw", lambda out: raw_run(double.base_url, urls, w)),
                    ("aiohttp", lambda out: aiohttp_run(double.base_url, urls, w)),
                    ("polite", lambda out: dataset_run("gelbooru", double.base_url, out, n, w, 2.0)),
                ]
                if tmpfs:
                    plan.append(("tmpfs", lambda out: dataset_run("gelbooru", double.base_url, out, n, w, args.rate)))
            for name, run in plan:
                out = (tmpfs if name == "tmpfs" and tmpfs else work) / f"{name}-{i}"
                if name == "jm":
                    probe = Path(tempfile.mkdtemp(dir=work))  # a fresh folder, like the run's own
                    probes.append(create_cost(probe, 100))
                    probe.rmdir()
                with meter:
                    r = asyncio.run(run(out))
                r.update(machine_cores=meter.machine_cores, self_cores=meter.self_cores,
                         double_cores=meter.double_cores, other_cores=meter.other_cores)
                hits = double.hits()
                res[name].append(r)
                print(f"{name} run {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k != "bytes")
                      + f"; requests {hits['post']} api + {hits['image']} images", flush=True)
                shutil.rmtree(out, ignore_errors=True)
        args.gdl_reason = ""
        if args.no_gdl:
            args.gdl_reason = "--no-gdl"
        elif not Path(args.gdl).exists():
            args.gdl_reason = f"{args.gdl} not found; install it in a separate venv"
        else:
            config, url = gelbooru_gdl(double.base_url, work)
            gdl_version = subprocess.run([args.gdl, "--version"], capture_output=True, text=True).stdout.strip()
            gdl = {"version": gdl_version, "startup": gdl_startup(args.gdl), "runs": [], "sharded": []}
            for i in range(args.gdl_runs):
                for key, shards in (("runs", 1), ("sharded", 0 if args.no_sharded_gdl else w)):
                    if not shards:
                        continue
                    out = work / f"gdl-{key}-{i}"
                    r = gdl_run(args.gdl, config, url, out, n, shards=shards)
                    hits = double.hits()
                    gdl[key].append(r)
                    print(f"gallery-dl x{shards} run {i + 1}: wall {r['wall']:.2f} s, cpu {r['cpu']:.2f} s, "
                          f"requests {hits['post']} api + {hits['image']} images", flush=True)
                    shutil.rmtree(out)
    finally:
        double.stop()
        shutil.rmtree(work, ignore_errors=True)
        if tmpfs:
            shutil.rmtree(tmpfs, ignore_errors=True)
    args.create_disk = probes
    args.elapsed = time.perf_counter() - started
    text = report(args, m, double.mean_bytes, res, gdl)
    publish("gelbooru", text, args)


if __name__ == "__main__":
    main()
