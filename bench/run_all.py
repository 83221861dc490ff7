"""Run every benchmark in sequence; each prints its figures and updates its section of
docs/benchmarks.md. Extra arguments (e.g. ``--no-write``) are passed to every script.

    .venv/bin/python bench/run_all.py [--no-write]      (or: make bench)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ("bench_jm_read.py", "bench_album.py", "bench_ws.py", "bench_gelbooru.py", "bench_booru.py",
           "bench_cli_dataset.py", "bench_scaleout.py", "bench_reads.py", "bench_resilience.py", "bench_web.py",
           "bench_opds.py", "bench_s3.py", "bench_exports.py", "bench_subscriptions.py", "bench_library.py",
           "bench_health.py")


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"\n=== {script} ===", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(BENCH / script), *sys.argv[1:]], cwd=BENCH.parent)
        print(f"=== {script}: exit {code} after {time.monotonic() - start:.0f} s ===", flush=True)
        if code != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
