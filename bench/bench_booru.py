"""Booru dataset downloads on every family's double: wall time against the latency-bound limit,
CPU per image, and gallery-dl where its extractor can be pointed at a loopback site.

    .venv/bin/python bench/bench_booru.py [--families gelbooru,safebooru,danbooru,yandere] [--runs 3]
                                          [--images 500] [--kb 200] [--latency 0.1] [--workers 16]
                                          [--rate 50] [--gdl-runs 1] [--gdl PATH] [--no-gdl]

Each family's double (tests/fakes) runs in a process of its own (bench/_double_proc.py),
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
import contextlib
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    GDL,
    TAGS,
    BooruDoubleProcess,
    CpuMeter,
    arg_parser,
    dataset_run,
    gdl_config,
    gdl_run,
    listed,
    machine,
    package_version,
    publish,
)
from _common import median_of as med

FAMILIES = {  # site -> gallery-dl's basecategory and URL path, or None
    "gelbooru": None,
    "safebooru": ("gelbooru_v02", "/index.php?page=post&s=list&tags="),
    "danbooru": ("Danbooru", "/posts?tags="),
    "yandere": ("moebooru", "/post?tags="),
}
TARGET_EFFICIENCY = 0.85


# --- report ---


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
        gdl_cells = (f"{med(g, 'wall'):.2f} s ({listed(g, 'wall')}) | {wall / med(g, 'wall'):.3f} "
                     f"({med(g, 'wall') / wall:.1f}× faster)") if g else "– | –"
        family = {"gelbooru": "Gelbooru", "safebooru": "Gelbooru 0.2", "danbooru": "Danbooru 2",
                  "yandere": "Moebooru"}[site]
        lines.append(
            f"| {site} ({family}, {mean_kb[site]:.0f} kB mean) | **{wall:.2f} s** | {listed(runs, 'wall')} | "
            f"**{limit / wall:.2f}** | {med(runs, 'listing'):.2f} s | {med(runs, 'cpu') * 1000 / n:.2f} ms | "
            f"{med(runs, 'other_cores'):.2f} of {m['nproc']} | {gdl_cells} |"
        )
    lines += ["", "gallery-dl was not run on Gelbooru here: its `gelbooru` extractor is hard-wired to "
              "gelbooru.com (bench_gelbooru.py compares it through `gelbooru_v02`)." if gdl else
              f"gallery-dl was not run: {args.gdl_reason}."]
    return "\n".join(lines)


def main() -> None:
    args = arg_parser(__doc__, families=",".join(FAMILIES), runs=5, images=500, kb=200, latency=0.1, workers=16,
                      rate=50.0, gdl_runs=1, gdl=GDL, no_gdl=False).parse_args()
    started = time.perf_counter()
    sites = [s for s in args.families.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="bench-booru-"))
    res: dict[str, list[dict[str, float]]] = {site: [] for site in sites}
    gdl: dict[str, list[dict[str, float]]] = {}
    gdl_version = ""
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        doubles = {site: stack.enter_context(BooruDoubleProcess(site, args.images, args.kb, args.latency))
                   for site in sites}
        for site, double in doubles.items():  # warm-up
            asyncio.run(dataset_run(site, double.base_url, work / f"warm-{site}", min(args.images, 50),
                                    args.workers, args.rate))
            double.hits()
        for i in range(args.runs):
            for site, double in doubles.items():
                out = work / f"{site}-{i}"
                with CpuMeter(double.pid) as meter:
                    r = asyncio.run(dataset_run(site, double.base_url, out, args.images, args.workers, args.rate))
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
                    family = FAMILIES[site]
                    if family is None:
                        continue
                    out = work / f"gdl-{site}-{i}"
                    config = gdl_config(work / f"gdl-{site}.json", family[0], double.base_url, **{"sleep-request": 0})
                    r = gdl_run(args.gdl, config, f"{double.base_url}{family[1]}{TAGS}", out, args.images, ranged=True)
                    hits = double.hits()
                    gdl.setdefault(site, []).append(r)
                    print(f"gallery-dl {site} run {i + 1}: wall {r['wall']:.2f} s, cpu {r['cpu']:.2f} s; "
                          f"requests {hits['post']} api + {hits['image']} images", flush=True)
                    shutil.rmtree(out, ignore_errors=True)
        mean_kb = {site: d.mean_bytes / 1000 for site, d in doubles.items()}
    args.elapsed = time.perf_counter() - started
    publish("booru", report(args, machine(), mean_kb, res, gdl, gdl_version), args)


if __name__ == "__main__":
    main()
