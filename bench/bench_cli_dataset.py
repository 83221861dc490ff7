"""The dataset command line as a user runs it, whole process and all (issue 14):

    .venv/bin/python bench/bench_cli_dataset.py [--images 250] [--runs 5] [--gdl-runs 1] [--no-write]

Against the Gelbooru double in its own process (every answer 0.1 s late, ~200 kB images), in
alternating runs into fresh folders, wall time of the whole process (interpreter start, imports,
listing, images, captions, exit):

* ``jmbooru gelbooru 1girl --max N --workers 16`` (a subprocess, as from a shell);
* ``bench/_original_style.py``: a minimal downloader shaped like the original Gelbooru-API-Downloader
  (page by page: list 100 posts, fetch them with 16 threads, then the next page);
* gallery-dl, when installed in /tmp/gdl-venv (its gelbooru_v02 extractor pointed at the double).

Latency-bound limit: the first page, then ceil(N/16) rounds of one image per worker while later
pages are listed meanwhile = latency × (1 + ceil(N/16)). Efficiency = limit / wall.
Also: ``jmbooru gelbooru --help`` wall time.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    GDL,
    GELBOORU_CREDENTIALS,
    PYTHON,
    REPO,
    BooruDoubleProcess,
    arg_parser,
    clean_env,
    environment_md,
    gdl_run,
    gelbooru_gdl,
    joined,
    machine,
    median,
    paired,
    publish,
    save_raw,
    verdict,
)

JMBOORU = str(Path(PYTHON).parent / "jmbooru")
CREDENTIALS = ["--api-key", GELBOORU_CREDENTIALS["api_key"], "--user-id", GELBOORU_CREDENTIALS["user_id"]]
TARGET_EFFICIENCY = 0.85
TARGET_RATIO = 1.2  # issue 26 (issue 14 asked 1.4)
TARGET_HELP_S = 0.15


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env)
    return time.perf_counter() - start


def count_images(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.suffix in (".png", ".jpg"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, list[float]] = {"jmbooru": [], "original": [], "gdl": [], "help": []}
    env = clean_env()
    with BooruDoubleProcess("gelbooru", args.images, 200, args.latency) as double, \
            tempfile.TemporaryDirectory(prefix="jmbooru-cli-") as tmp:
        base = double.base_url
        jm_cmd = [JMBOORU, "gelbooru", "1girl", "--max", str(args.images), "--workers", "16", "--url", base,
                  *CREDENTIALS, "--rate", "50", "-q"]
        orig_cmd = [PYTHON, str(BENCH / "_original_style.py"), base, "1girl", str(args.images)]
        for i in range(args.runs + 1):  # the first round warms the page cache and is dropped
            a = timed([*jm_cmd, "--out", f"{tmp}/j{i}"], env)
            b = timed([*orig_cmd, f"{tmp}/o{i}", *CREDENTIALS], env)
            assert count_images(Path(f"{tmp}/j{i}")) == args.images == count_images(Path(f"{tmp}/o{i}"))
            if i:
                res["jmbooru"].append(a)
                res["original"].append(b)
            shutil.rmtree(f"{tmp}/j{i}")
            shutil.rmtree(f"{tmp}/o{i}")
        if Path(args.gdl).exists():
            config, url = gelbooru_gdl(base, Path(tmp))
            for i in range(args.gdl_runs):
                folder = Path(tmp) / f"g{i}"
                folder.mkdir()
                res["gdl"].append(gdl_run(args.gdl, config, url, folder, args.images)["wall"])
        for _ in range(5):
            res["help"].append(timed([JMBOORU, "gelbooru", "--help"], env))
    return res


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    m = machine()
    limit = args.latency * (1 + math.ceil(args.images / 16))
    ours, orig = median(res["jmbooru"]), median(res["original"])
    ratio = median(paired(res["jmbooru"], res["original"]))
    efficiency = limit / ours
    help_s = median(res["help"])
    gdl = f"{median(res['gdl']):.2f} s ({median(res['gdl']) / ours:.1f}× jmbooru's wall)" if res["gdl"] else \
        f"not installed ({Path(args.gdl).parent.parent})"
    lines = [
        "## Dataset command line, whole process (`bench/bench_cli_dataset.py`)",
        "",
        environment_md(m, [
            f"Gelbooru double in its own process, every answer {args.latency} s late, ~200 kB images; {args.images} "
            f"images, 16 workers; {args.runs} runs each, alternating, into fresh folders; medians",
            "Original-style: bench/_original_style.py (page by page, 16 threads, one blocking httpx client)",
        ]),
        "",
        f"Latency-bound limit: {args.latency} × (1 + ceil({args.images}/16)) = {limit:.2f} s.",
        "",
        "| figure | measured | target | result |",
        "|---|---|---|---|",
        f"| `jmbooru gelbooru --max {args.images}` wall (whole process) | {ours:.2f} s "
        f"(runs {joined(res['jmbooru'])}) | | |",
        f"| whole-process efficiency (limit / wall) | **{efficiency:.2f}** | ≥ {TARGET_EFFICIENCY} "
        f"| {verdict(efficiency >= TARGET_EFFICIENCY)} |",
        f"| original-style downloader wall | {orig:.2f} s (runs {joined(res['original'])}) "
        "| | |",
        f"| paired ratio original-style ÷ jmbooru | **{ratio:.2f}** | ≥ {TARGET_RATIO} "
        f"| {verdict(ratio >= TARGET_RATIO)} |",
        f"| gallery-dl, same images | {gdl} | | (reported) |",
        f"| `jmbooru gelbooru --help` wall | **{help_s:.3f} s** | ≤ {TARGET_HELP_S} s "
        f"| {verdict(help_s <= TARGET_HELP_S)} |",
    ]
    return "\n".join(lines)


def main() -> None:
    args = arg_parser(__doc__, images=250, latency=0.1, runs=5, gdl_runs=1, gdl=GDL).parse_args()
    res = run(args)
    save_raw("cli_dataset", res)
    publish("cli_dataset", report(res, args), args)


if __name__ == "__main__":
    main()
