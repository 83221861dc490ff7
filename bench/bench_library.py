"""Library mode's cost: the same 30-page album as a CBZ archive and filed into the library.

Pairs run alternately (archive, library, archive, ...) in one process against the JM double
(0.01 s per image); each figure is POST → ready. The target is library ≤ 1.05 × archive, the
median of the paired ratios.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    arg_parser,
    environment_md,
    jm_settings,
    joined,
    machine,
    median,
    paired,
    publish,
    save_raw,
    verdict,
)

from app.main import create_app
from tests.fakes.jm import FakeAlbum, FakeChapter, JmDouble

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


async def run(tmp: Path, pairs: int) -> dict[str, list[float]]:
    album = FakeAlbum(ALBUM, "Library Bench", [FakeChapter("180001", "One", 15, 1), FakeChapter("180002", "Two", 15, 2)])
    with JmDouble([album]) as jm:
        jm.set_latency(0.01, "/media/photos")
        app = create_app(jm_settings(tmp / "data", jm.host, library_dir=tmp / "library", cache_ttl_seconds=600))
        results: dict[str, list[float]] = {"archive": [], "library": []}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await one(client, {"format": "cbz"})  # warm: the JM client, the album info cache
                for _ in range(pairs):
                    results["archive"].append(await one(client, {"format": "cbz"}))
                    results["library"].append(await one(client, {"dest": "library"}))
        return results


def main() -> None:
    args = arg_parser(__doc__, pairs=9).parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-library-"))
    try:
        results = asyncio.run(run(tmp, args.pairs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_raw("library", results)
    ratios = paired(results["archive"], results["library"])
    ratio = median(ratios)
    markdown = "\n".join([
        "## Library mode (`bench/bench_library.py`)", "",
        environment_md(machine(), [f"A 30-page, two-chapter album (JM double, 0.01 s per image), POST → ready, "
                                   f"{args.pairs} alternating pairs in one process: a CBZ archive, then the same album "
                                   "filed into the library (two chapter CBZs)"]),
        "", "| figure | archive (cbz) | library | ratio (median of pairs) | target | result |",
        "|---|---|---|---|---|---|",
        f"| POST → ready | {median(results['archive']) * 1000:.0f} ms | {median(results['library']) * 1000:.0f} ms | "
        f"{ratio:.3f} | ≤ 1.05 | {verdict(ratio <= 1.05)} |",
        "", f"Pairs (library ÷ archive): {joined(ratios)}."])
    publish("library", markdown, args)


if __name__ == "__main__":
    main()
