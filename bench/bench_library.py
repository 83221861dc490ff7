"""Library mode's cost: the same 30-page album as a CBZ archive and filed into the library.

Pairs run alternately (archive, library, archive, ...) in one process against the JM double
(0.01 s per image); each figure is POST → ready. The target is library ≤ 1.05 × archive, the
median of the paired ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import environment_md, machine, median, publish, save_raw, verdict

from app.config import Settings
from app.main import create_app
from tests.fakes.jm import FakeAlbum, FakeChapter, JmDouble

PAIRS = 9
ALBUM = "180001"


async def one(client: httpx.AsyncClient, body: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    resp = await client.post(f"/v1/download/album/{ALBUM}", json=body)
    job_id = resp.json()["job_id"]
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["state"] in ("ready", "failed"):
            break
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - t0
    assert job["state"] == "ready", job
    await client.delete(f"/v1/jobs/{job_id}")  # the next archive request makes a new job
    return elapsed


async def run(tmp: Path) -> dict[str, list[float]]:
    album = FakeAlbum(ALBUM, "Library Bench", [FakeChapter("180001", "One", 15, 1), FakeChapter("180002", "Two", 15, 2)])
    with JmDouble([album]) as jm:
        jm.set_latency(0.01, "/media/photos")
        settings = Settings(_env_file=None, data_dir=tmp / "data", library_dir=tmp / "library", jm_scheme="http",  # type: ignore[call-arg]
                            jm_api_domains=[jm.host], jm_image_domains=[jm.host], jm_retry_times=0, gc_freeze=False,
                            cache_ttl_seconds=600)
        app = create_app(settings)
        results: dict[str, list[float]] = {"archive": [], "library": []}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await one(client, {"format": "cbz"})  # warm: the JM client, the album info cache
                for _ in range(PAIRS):
                    results["archive"].append(await one(client, {"format": "cbz"}))
                    results["library"].append(await one(client, {"dest": "library"}))
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-library-"))
    try:
        results = asyncio.run(run(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_raw("library", results)
    ratios = [lib / arc for arc, lib in zip(results["archive"], results["library"], strict=True)]
    ratio = median(ratios)
    markdown = "\n".join([
        "## Library mode (`bench/bench_library.py`)", "",
        environment_md(machine(), [f"A 30-page, two-chapter album (JM double, 0.01 s per image), POST → ready, "
                                   f"{PAIRS} alternating pairs in one process: a CBZ archive, then the same album "
                                   "filed into the library (two chapter CBZs)"]),
        "", "| figure | archive (cbz) | library | ratio (median of pairs) | target | result |",
        "|---|---|---|---|---|---|",
        f"| POST → ready | {median(results['archive']) * 1000:.0f} ms | {median(results['library']) * 1000:.0f} ms | "
        f"{ratio:.3f} | ≤ 1.05 | {verdict(ratio <= 1.05)} |",
        "", "Pairs (library ÷ archive): " + ", ".join(f"{r:.2f}" for r in ratios) + "."])
    publish("library", markdown, args.out, args.no_write)


if __name__ == "__main__":
    main()
