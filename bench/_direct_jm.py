"""``jmcomic.download_album`` called directly, with the seed's option: JMComic_Server_API's 30 image
threads (``BENCH_IMAGE_THREADS``), the rest as ``app.sources.jm.build_option`` builds it for the server
(retries, timeout, dir rule, decoding, curl_cffi).

A long-lived process (so it is as warm as the server): reads ``<album_id> <base_dir>`` lines on
stdin, downloads the album into ``base_dir`` and prints one JSON line: seconds spent in
``download_album``, files and bytes written, and the seconds ``app.archives.build_zip`` then takes to
pack them (for reference; the benchmark's ratio uses the download alone).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jmcomic  # noqa: E402

from app.archives import build_zip  # noqa: E402
from app.config import Settings  # noqa: E402
from app.sources.jm import apply_module_settings, build_option  # noqa: E402


def main() -> None:
    settings = Settings()
    apply_module_settings(settings)
    threads = int(os.environ.get("BENCH_IMAGE_THREADS", "30"))
    print("READY", threads, flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        album_id, base_dir = words[0], Path(words[1])
        option = build_option(settings, base_dir=base_dir, image_threads=threads)
        start = time.perf_counter()
        jmcomic.download_album(album_id, option)
        elapsed = time.perf_counter() - start
        files = sorted(p for p in base_dir.rglob("*") if p.is_file())
        start = time.perf_counter()
        build_zip([(f"{i:05d}{p.suffix}", p) for i, p in enumerate(files, 1)], base_dir / "album.zip")
        zip_seconds = time.perf_counter() - start
        print(json.dumps({"seconds": elapsed, "files": len(files), "bytes": sum(p.stat().st_size for p in files),
                          "zip_seconds": zip_seconds}), flush=True)


if __name__ == "__main__":
    main()
