"""Booru dataset downloads on every family's double: wall time against the latency-bound limit,
CPU per image, and gallery-dl where its extractor can be pointed at a loopback site.

    .venv/bin/python bench/bench_booru.py [--families gelbooru,safebooru,danbooru,yandere] [--runs 3]
                                          [--images 500] [--kb 200] [--latency 0.1] [--workers 16]
                                          [--rate 50] [--gdl-runs 1] [--gdl PATH] [--no-gdl]

Each family's double (tests/fakes) runs in a process of its own (this script with ``--serve-double``),
with the same latency model as bench_gelbooru.py: every API and image response waits ``--latency``
seconds. jmbooru: ``download_dataset(build_site(<site>, url=double), "1girl", dir, max_images=N,
workers=W)`` with default captions, in this process; wall time and this process's CPU are taken
around that call. Runs are interleaved family by family; medians reported, every run listed.

gallery-dl (optional, from a separate venv, never a project dependency) runs its ``gelbooru_v02``,
``danbooru`` and ``moebooru`` extractors against the doubles as custom instances
(``extractor.<basecategory>.<name>.root``), with its request interval set to 0 like jmbooru's
high API rate. Its ``gelbooru`` extractor only knows gelbooru.com (see bench_gelbooru.py).
Install: ``python3 -m venv /tmp/gdl-venv && /tmp/gdl-venv/bin/pip install gallery-dl``.

Writes its section of docs/benchmarks.md. Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import BooruDoubleProcess, CpuMeter, cpu_seconds, machine, package_version, publish  # noqa: E402

TAGS = "1girl"
FAMILIES = {  # site -> (double class, gallery-dl basecategory and URL path, or None)
    "gelbooru": ("tests.fakes.gelbooru:GelbooruDouble", None),
    "safebooru": ("tests.fakes.gelbooru_v02:GelbooruV02Double", ("gelbooru_v02", "/index.php?page=post&s=list&tags=")),
    "danbooru": ("tests.fakes.danbooru:DanbooruDouble", ("Danbooru", "/posts?tags=")),
    "yandere": ("tests.fakes.moebooru:MoebooruDouble", ("moebooru", "/post?tags=")),
}
CREDENTIALS = {"gelbooru": {"api_key": "testkey", "user_id": "12345"}}
TARGET_EFFICIENCY = 0.85


# --- the doubles, each in its own process ---


def serve_double(site: str, images: int, kb: int) -> None:
    import importlib

    from tests.fakes.booru import make_posts

    module, name = FAMILIES[site][0].split(":")
    posts = make_posts(images, image_bytes=kb * 1000)
    double = getattr(importlib.import_module(module), name)(posts).start()
    print(f"READY {double.base_url} {statistics.mean(len(p['_data']) for p in posts):.0f}", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        if command[0] == "latency":
            double.latency = float(command[1])
        elif command[0] == "hits":
            print(json.dumps({k: double.hits(k) for k in ("post", "tag", "image", "all")}), flush=True)
            double.reset_hits()
    double.stop()


# --- runs ---


async def jmbooru_run(site: str, base_url: str, out: Path, images: int, workers: int, rate: float) -> dict[str, float]:
    from app.sources.booru.registry import build_site
    from app.sources.dataset import DatasetProgress, download_dataset

    listed: list[float] = []

    def on_progress(p: DatasetProgress) -> None:
        if p.done == 0 and not listed:
            listed.append(time.perf_counter())

    booru = build_site(site, url=base_url, rate=rate, **CREDENTIALS.get(site, {}))
    try:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        result = await download_dataset(booru, TAGS, out, max_images=images, workers=workers, on_progress=on_progress)
        t1, cpu1 = time.perf_counter(), cpu_seconds()
    finally:
        await booru.aclose()
    if result.downloaded != images or result.failed:
        raise RuntimeError(f"{site}: jmbooru run incomplete: {result.summary()}")
    return {"wall": t1 - t0, "listing": listed[0] - t0, "cpu": cpu1 - cpu0}


def gdl_run(gdl: str, site: str, base_url: str, work: Path, out: Path, images: int) -> dict[str, float]:
    base, path = FAMILIES[site][1] or ("", "")
    config = work / f"gdl-{site}.json"
    config.write_text(json.dumps({
        "extractor": {base: {"benchdouble": {"root": base_url}}, "benchdouble": {"sleep-request": 0},
                      "directory": [], "filename": "{md5}.{extension}"},
        "output": {"mode": "null", "progress": False},
    }))
    cmd = [gdl, "--config-ignore", "--config-json", str(config), "-q", "-D", str(out), "--no-mtime",
           "--range", f"1-{images}", f"{base_url}{path}{TAGS}"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"gallery-dl failed on {site}: {proc.stderr.read().decode()[-400:] if proc.stderr else ''}")
    files = sum(1 for p in out.iterdir() if not p.name.endswith(".part"))
    if files != images:
        raise RuntimeError(f"gallery-dl on {site}: expected {images} files, found {files}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime}


# --- report ---


def med(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def listing(runs: list[dict[str, float]], key: str, scale: float = 1.0) -> str:
    return ", ".join(f"{r[key] * scale:.2f}" for r in runs)


def report(args: argparse.Namespace, m: dict[str, Any], mean_kb: dict[str, float],
           res: dict[str, list[dict[str, float]]], gdl: dict[str, list[dict[str, float]]], gdl_version: str) -> str:
    n, w, lat = args.images, args.workers, args.latency
    limit = lat + math.ceil(n / w) * lat
    lines = [
        "## 6. Booru datasets on every family (`bench/bench_booru.py`)",
        "",
        f"- Run: {m['date']}, app at commit {m['commit']}; machine: {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['ram_gb']} GB RAM, Linux {m['kernel']} (shared VM)",
        f"- Python {m['python']}, httpx {package_version('httpx')}"
        + (f", gallery-dl {gdl_version} (separate venv)" if gdl_version else ""),
        f"- Command: `.venv/bin/python bench/bench_booru.py` (--runs {args.runs} --gdl-runs {args.gdl_runs}); "
        f"about {args.elapsed / 60:.0f} minutes",
        "",
        f"**Method.** Each family's double (tests/fakes) runs in its own process with `make_posts({n}, "
        f"image_bytes={args.kb * 1000})` (random-pixel PNGs) and `latency = {lat}` s before every response, the "
        "model of bench_gelbooru.py. jmbooru: `download_dataset(build_site(site, url=double, "
        f"rate={args.rate:g}), \"{TAGS}\", fresh_dir, max_images={n}, workers={w})` with default captions (image "
        "and `.txt` per post, md5 verified, temporary file then rename); wall time and this process's CPU "
        f"(user+sys) around that call. {args.runs} runs per family after a warm-up, families interleaved run by "
        "run; medians, every run listed. Each family lists posts its own way: Gelbooru and Gelbooru 0.2 by "
        "`pid` pages of 100, Danbooru by `page=b<id>` pages of 200, Moebooru by numbered pages of 100.",
        "",
        f"**Latency-bound limit**, the same for every family: the first page, then ceil({n}/{w}) rounds of one "
        f"image per worker, later pages being listed meanwhile: limit = {lat} + {math.ceil(n / w)} × {lat} = "
        f"{limit:.1f} s. Efficiency = limit / wall (bench_gelbooru.py's target: ≥ {TARGET_EFFICIENCY}). "
        "gallery-dl downloads one file at a time by design, so its own limit is (pages + 1 + images) × latency.",
        "",
        "| site (family) | wall, median | runs | efficiency | first page | CPU per image | other processes' CPU "
        "(cores, median) | gallery-dl wall | jmbooru / gallery-dl |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for site, runs in res.items():
        wall = med(runs, "wall")
        g = gdl.get(site)
        gdl_cells = (f"{med(g, 'wall'):.2f} s ({listing(g, 'wall')}) | {wall / med(g, 'wall'):.3f} "
                     f"({med(g, 'wall') / wall:.1f}× faster)") if g else "– | –"
        family = {"gelbooru": "Gelbooru", "safebooru": "Gelbooru 0.2", "danbooru": "Danbooru 2",
                  "yandere": "Moebooru"}[site]
        lines.append(
            f"| {site} ({family}, {mean_kb[site]:.0f} kB mean) | **{wall:.2f} s** | {listing(runs, 'wall')} | "
            f"**{limit / wall:.2f}** | {med(runs, 'listing'):.2f} s | {med(runs, 'cpu') * 1000 / n:.2f} ms | "
            f"{med(runs, 'other_cores'):.2f} of {m['nproc']} | {gdl_cells} |"
        )
    lines += ["", "gallery-dl was not run on Gelbooru here: its `gelbooru` extractor is hard-wired to "
              "gelbooru.com (bench_gelbooru.py compares it through `gelbooru_v02`)." if gdl else
              f"gallery-dl was not run: {args.gdl_reason}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-double", metavar="SITE")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--kb", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--gdl-runs", type=int, default=1)
    parser.add_argument("--gdl", default="/tmp/gdl-venv/bin/gallery-dl")
    parser.add_argument("--no-gdl", action="store_true")
    parser.add_argument("--out", type=Path, help="write the section here instead of docs/benchmarks.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.serve_double:
        serve_double(args.serve_double, args.images, args.kb)
        return
    started = time.perf_counter()
    sites = [s for s in args.families.split(",") if s]
    doubles = {
        site: BooruDoubleProcess([sys.executable, __file__, "--serve-double", site, "--images", str(args.images),
                                  "--kb", str(args.kb)], args.latency, site)
        for site in sites
    }
    work = Path(tempfile.mkdtemp(prefix="bench-booru-"))
    res: dict[str, list[dict[str, float]]] = {site: [] for site in sites}
    gdl: dict[str, list[dict[str, float]]] = {}
    gdl_version = ""
    try:
        for site, double in doubles.items():  # warm-up
            asyncio.run(jmbooru_run(site, double.base_url, work / f"warm-{site}", min(args.images, 50),
                                    args.workers, args.rate))
            double.hits()
        for i in range(args.runs):
            for site, double in doubles.items():
                out = work / f"{site}-{i}"
                with CpuMeter(double.proc.pid) as meter:
                    r = asyncio.run(jmbooru_run(site, double.base_url, out, args.images, args.workers, args.rate))
                r["other_cores"] = meter.other_cores
                hits = double.hits()
                res[site].append(r)
                print(f"{site} run {i + 1}: wall {r['wall']:.2f} s, first page {r['listing']:.2f} s, "
                      f"cpu {r['cpu']:.2f} s, other processes {r['other_cores']:.2f} cores; requests {hits['post']} api + {hits['image']} images", flush=True)
                shutil.rmtree(out, ignore_errors=True)
        args.gdl_reason = "--no-gdl" if args.no_gdl else (
            "" if Path(args.gdl).exists() else f"{args.gdl} not found; install it in a separate venv")
        if not args.gdl_reason:
            gdl_version = subprocess.run([args.gdl, "--version"], capture_output=True, text=True).stdout.strip()
            for i in range(args.gdl_runs):
                for site, double in doubles.items():
                    if FAMILIES[site][1] is None:
                        continue
                    out = work / f"gdl-{site}-{i}"
                    r = gdl_run(args.gdl, site, double.base_url, work, out, args.images)
                    hits = double.hits()
                    gdl.setdefault(site, []).append(r)
                    print(f"gallery-dl {site} run {i + 1}: wall {r['wall']:.2f} s, cpu {r['cpu']:.2f} s; "
                          f"requests {hits['post']} api + {hits['image']} images", flush=True)
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        mean_kb = {site: d.mean_bytes / 1000 for site, d in doubles.items()}
        for double in doubles.values():
            double.stop()
        shutil.rmtree(work, ignore_errors=True)
    args.elapsed = time.perf_counter() - started
    publish("booru", report(args, machine(), mean_kb, res, gdl, gdl_version), args.out, args.no_write)


if __name__ == "__main__":
    main()
