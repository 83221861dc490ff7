"""OPDS page streaming (issue 23): cached pages per second on one core, and what an uncached page costs.

    .venv/bin/python bench/bench_opds.py [--runs 3] [--pages 20] [--no-write]

The JM double (in this process, its threads) serves an album of 1200×1700 WebP pages (lossy, quality
80, as JM serves them). jmbooru runs in its own process pinned to CPU 0.

1. Cached: page 0 at ``maxWidth=1080`` is asked for once, then requested for 5 s over 16 keep-alive
   connections (the load generator of bench/_common.py, on the other CPU); pages per second.
2. Uncached: ``--pages`` pages, each asked for once at ``maxWidth=1080``, one after another. The
   double counts image requests (exactly one per page is the target) and the time it took to send
   each image is measured by fetching the same image straight from the double: the page's latency
   minus that is what jmbooru adds (fetch set-up, WebP decode, scaling, JPEG encode; the cache is
   written after the answer).
   On a busy machine the wall time mostly measures waiting for a CPU, so jmbooru's own CPU time
   per uncached page is reported too, and the transcode alone (decode, scale to 1080, encode; Pillow
   set up as the server sets it) is timed in-process, in wall and CPU time.
"""

from __future__ import annotations

import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from _common import (
    SERVER_CPU,
    ServerProcess,
    arg_parser,
    environment_md,
    jm_env,
    machine,
    median,
    median_of,
    process_cpu,
    publish,
    run_load,
    save_raw,
    verdict,
)
from PIL import Image

from tests.fakes import images
from tests.fakes.jm import FakeAlbum, JmDouble

ALBUM = "190001"  # below 220980: pages are not scrambled, so the cost measured is transcode and scale
PAGE_SIZE = (1200, 1700)
WIDTH = 1080
TARGET_CACHED_RPS = 300.0
TARGET_ADDED_MS = 30.0


class LargePageDouble(JmDouble):
    """The JM double with 1200×1700 lossy WebP pages."""

    def expected_image(self, photo_id: str, page_index: int) -> Image.Image:
        return images.make_picture(f"jm photo {photo_id} page {page_index}", PAGE_SIZE)

    def served_bytes(self, photo_id: str, page_index: int) -> bytes:
        key = (str(photo_id), int(page_index))
        if key not in self._bytes_cache:
            buffer = io.BytesIO()
            self.expected_image(*key).save(buffer, "WEBP", quality=80)
            self._bytes_cache[key] = buffer.getvalue()
        return self._bytes_cache[key]


def in_process_ms(body: bytes, rounds: int = 10, native: bool = True) -> dict[str, float]:
    """Decode, scale to WIDTH and encode as jmbooru does (app.outputs.opds.pages), without HTTP, in
    a thread of its own as the server's render pool: CPU time of each step (it hardly depends on
    what else the machine is doing) and wall time. ``native=False``: as where neither native
    package (webp, cykooz.resizer) is installed, so Pillow does all of it."""
    from app.outputs.opds.pages import _encode, _open, _scaled, keep_freed_pictures

    keep_freed_pictures()  # as the server does when it starts

    def timed() -> dict[str, float]:
        if not native:
            for package in ("webp", "cykooz_resizer"):
                sys.modules[package] = None  # type: ignore[assignment]  # import fails: Pillow does it
        steps: dict[str, list[float]] = {"decode": [], "scale": [], "encode": [], "cpu": [], "wall": []}
        for _ in range(rounds + 2):
            start, t0 = time.perf_counter(), time.thread_time()
            picture = _open(body)
            picture.load()
            t1 = time.thread_time()
            scaled = _scaled(picture, WIDTH)
            t2 = time.thread_time()
            _encode(scaled)
            t3 = time.thread_time()
            for name, value in (("decode", t1 - t0), ("scale", t2 - t1), ("encode", t3 - t2), ("cpu", t3 - t0),
                                ("wall", time.perf_counter() - start)):
                steps[name].append(value * 1000)
        return {name: median(values[2:]) for name, values in steps.items()}  # the first two warm up

    saved = {name: sys.modules.get(name) for name in ("webp", "cykooz_resizer")}
    try:
        with ThreadPoolExecutor(1) as thread:  # a new thread: its own resizer and buffer
            return thread.submit(timed).result()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def run_once(double: LargePageDouble, pages: int) -> dict[str, Any]:
    env = jm_env(double.host, JMBOORU_CACHE_TTL_SECONDS="600", JMBOORU_GC_FREEZE="true")
    with ServerProcess(env, cpus=SERVER_CPU) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        base = f"/opds/jm/album/{ALBUM}/pages"
        http.get(f"/opds/jm/album/{ALBUM}").raise_for_status()  # album and chapter lists cached
        direct = httpx.Client(base_url=double.base_url, timeout=60)
        added, page_ms, direct_ms, hits = [], [], [], []
        cpu_before = process_cpu(server.pid)
        for n in range(1, pages + 1):
            double.reset_hits()
            start = time.perf_counter()
            resp = http.get(f"{base}/{n}", params={"maxWidth": str(WIDTH)})
            elapsed = (time.perf_counter() - start) * 1000
            resp.raise_for_status()
            assert Image.open(io.BytesIO(resp.content)).width == WIDTH
            hits.append(double.hits("/media/photos/"))
            start = time.perf_counter()
            direct.get(f"/media/photos/{ALBUM}/{n + 1:05d}.webp").raise_for_status()
            upstream = (time.perf_counter() - start) * 1000
            page_ms.append(elapsed)
            direct_ms.append(upstream)
            added.append(elapsed - upstream)
        direct.close()
        server_cpu_ms = (process_cpu(server.pid) - cpu_before) * 1000 / pages
        http.get(f"{base}/0", params={"maxWidth": str(WIDTH)}).raise_for_status()
        load = run_load(f"{server.url}{base}/0?maxWidth={WIDTH}", 16, 5.0, pid=server.pid)
    return {"cached": load, "uncached_added_ms": median(added), "uncached_page_ms": median(page_ms),
            "direct_image_ms": median(direct_ms), "image_requests_per_page": sorted(set(hits)),
            "uncached_server_cpu_ms": server_cpu_ms}


def main() -> None:
    args = arg_parser(__doc__, runs=3, pages=20).parse_args()

    load_start = os.getloadavg()[0]
    album = FakeAlbum.single(ALBUM, "OPDS Bench Album", args.pages + 1, authors=["Bench"], tags=["bench"])
    with LargePageDouble(albums=[album]) as double:
        for n in range(1, args.pages + 2):
            double.served_bytes(ALBUM, n)
        sample = double.served_bytes(ALBUM, 1)
        pillow_only = in_process_ms(sample, native=False)
        transcode = in_process_ms(sample)
        runs = [run_once(double, args.pages) for _ in range(args.runs)]
    m = machine()
    load = os.getloadavg()[0]
    rps = median(r["cached"]["rps"] for r in runs)
    added = median_of(runs, "uncached_added_ms")
    one_request = all(r["image_requests_per_page"] == [1] for r in runs)
    server_cpu = median_of(runs, "uncached_server_cpu_ms")
    save_raw("opds", {"machine": m, "runs": runs, "transcode": transcode, "transcode_pillow_only": pillow_only})
    rows = [
        "| figure | measured | target | result |",
        "|---|---|---|---|",
        f"| cached page at `maxWidth={WIDTH}`, one core (16 connections) | {rps:.0f} pages/s | ≥ {TARGET_CACHED_RPS:.0f} "
        f"| {verdict(rps >= TARGET_CACHED_RPS)} |",
        f"| uncached page: image requests to JM | {'1 per page' if one_request else 'more than 1'} | exactly 1 | "
        f"{verdict(one_request)} |",
        f"| uncached page: time added to the image fetch (HTTP, median of {args.pages} pages) | {added:.1f} ms "
        f"| ≤ {TARGET_ADDED_MS:.0f} ms | {verdict(added <= TARGET_ADDED_MS)} |",
        f"| uncached page: jmbooru's CPU time per page (all of it: HTTP, fetch, transcode, disk) | {server_cpu:.1f} ms "
        f"| ≤ {TARGET_ADDED_MS:.0f} ms | {verdict(server_cpu <= TARGET_ADDED_MS)} |",
        f"| the transcode alone, in-process: WebP decode + scale to {WIDTH} + JPEG encode | "
        f"{transcode['decode']:.1f} + {transcode['scale']:.1f} + {transcode['encode']:.1f} = {transcode['cpu']:.1f} ms CPU "
        f"({transcode['wall']:.1f} ms wall) | | |",
        f"| the same with Pillow alone (where neither `webp` nor `cykooz.resizer` is installed) | "
        f"{pillow_only['decode']:.1f} + {pillow_only['scale']:.1f} + {pillow_only['encode']:.1f} = "
        f"{pillow_only['cpu']:.1f} ms CPU; the native steps take {transcode['cpu'] / pillow_only['cpu']:.2f}× its time | | |",
    ]
    details = "; ".join(
        f"run {i + 1}: {r['cached']['rps']:.0f} pages/s (p99 {r['cached'].get('p99_ms', 0):.1f} ms, server CPU "
        f"{r['cached'].get('cpu_share', 0):.2f}), uncached page {r['uncached_page_ms']:.1f} ms of which image "
        f"{r['direct_image_ms']:.1f} ms" for i, r in enumerate(runs))
    markdown = "\n".join([
        "## OPDS page streaming (`bench/bench_opds.py`)",
        "",
        environment_md(m, [
            f"An album of 1200×1700 lossy WebP pages ({len(sample) // 1024} KB each) on the JM double; jmbooru pinned "
            f"to CPU 0; {args.runs} runs, medians; load average {load_start:.1f} at the start, {load:.1f} at the end (other "
            f"work on the machine slows every figure)",
        ]),
        "",
        *rows,
        "",
        f"Where an uncached page's time goes: the transcode, timed in-process, is {transcode['cpu']:.1f} ms of the "
        f"{added:.1f} ms (WebP decode {transcode['decode']:.1f}: libwebp into the render thread's kept buffer, and "
        f"Pillow's copy of it; the bilinear scaling to {WIDTH} {transcode['scale']:.1f}, by fast_image_resize; JPEG "
        f"encode {transcode['encode']:.1f}, by Pillow); the other "
        f"{added - transcode['cpu']:.1f} ms are HTTP both ways, the image request's set-up and the hand-offs between "
        f"threads (the cache is written after the answer). Cheaper filters were measured and not taken "
        f"(app/outputs/opds/pages.py: box drops or doubles whole pixels of line art).",
        "",
        f"Runs: {details}.",
    ])
    publish("opds", markdown, args)


if __name__ == "__main__":
    main()
