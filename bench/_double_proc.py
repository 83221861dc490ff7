"""The JM double (tests/fakes/jm.py) in a process of its own, for benchmarks.

    python bench/_double_proc.py [big:<id>:<pages>:<scrambled 0|1>] [huge:<id>:<pages>:<MB>] ...

``big`` adds ``big_album(id, pages, scrambled=...)`` and renders every page before it reports
ready (so no run pays for generating pictures). ``huge`` adds a plain one-chapter album whose
pages are all the same lossless WebP of random pixels of about <MB> megabytes (incompressible,
and saved byte for byte by jmcomic because plain chapters are not descrambled).

Prints ``READY <host:port>``, then answers one line per command read from stdin:
``latency <seconds> <prefix or ->``, ``hits <prefix or ->``, ``quit``.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from tests.fakes.jm import FakeAlbum, JmDouble, big_album  # noqa: E402


def random_webp(megabytes: float) -> bytes:
    side = int((megabytes * 1024 * 1024 / 3) ** 0.5)
    picture = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    picture.save(buf, "WEBP", lossless=True, quality=0, method=0, exact=True)
    return buf.getvalue()


class BenchDouble(JmDouble):
    """The JM double, plus albums whose pages are big incompressible pictures."""

    def __init__(self) -> None:
        super().__init__()
        self.huge_pages: dict[str, bytes] = {}

    def served_bytes(self, photo_id: str, page_index: int) -> bytes:
        data = self.huge_pages.get(str(photo_id))
        if data is not None:
            return data
        return super().served_bytes(photo_id, page_index)


def main(specs: list[str]) -> None:
    double = BenchDouble()
    for spec in specs:
        kind, aid, pages, arg = spec.split(":")
        if kind == "big":
            album = big_album(aid, int(pages), scrambled=arg == "1")
            double.add_album(album)
            for index in range(1, int(pages) + 1):
                double.served_bytes(aid, index)
        elif kind == "huge":
            if int(aid) >= 220980:
                raise SystemExit("a huge album must be plain: id below 220980")
            double.add_album(FakeAlbum.single(aid, f"Huge Album {aid}", int(pages), authors=["Benchmark"],
                                              tags=["huge"], views=1, likes=1))
            double.huge_pages[aid] = random_webp(float(arg))
        else:
            raise SystemExit(f"unknown album spec {spec!r}")
    double.start()
    print("READY", double.host, flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                print("ok", flush=True)
                break
            if words[0] == "latency":
                double.set_latency(float(words[1]), "" if words[2] == "-" else words[2])
                print("ok", flush=True)
            elif words[0] == "hits":
                print(double.hits("" if words[1] == "-" else words[1]), flush=True)
            else:
                print("unknown command", flush=True)
    finally:
        double.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
