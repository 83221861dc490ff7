"""The test doubles (tests/fakes) in a process of their own, for benchmarks: their CPU is not charged
to what is measured and they do not share its GIL.

    python bench/_double_proc.py [big:<id>:<pages>:<scrambled 0|1>] [huge:<id>:<pages>:<MB>] [single:<id>:<pages>] ...
    python bench/_double_proc.py booru:<site>:<images>:<kB per image>

The JM double (tests/fakes/jm.py): ``big`` adds ``big_album(id, pages, scrambled=...)``, ``single`` a
plain one-chapter album (ids below 220980 are not scrambled); every page is rendered before it reports
ready (so no run pays for generating pictures). ``huge`` adds a plain one-chapter album whose pages
are all the same lossless WebP of random pixels of about <MB> megabytes (incompressible, and saved
byte for byte by jmcomic because plain chapters are not descrambled). Commands: ``latency <seconds>
<prefix or ->``, ``hits <prefix or ->``, ``reset`` (the hit counters), ``quit``.

A booru family's double (tests/fakes/<family>.py) with ``make_posts(images, image_bytes=kB * 1000)``.
Commands: ``latency <seconds>`` (before every answer), ``hits`` (one JSON line of counters, which it
then resets), ``quit``.

Prints ``READY <host:port or base URL> <mean page or image bytes>``, then one line per command.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from tests.fakes.jm import FakeAlbum, JmDouble, big_album  # noqa: E402

BOORU_DOUBLES = {
    "gelbooru": "tests.fakes.gelbooru:GelbooruDouble",
    "safebooru": "tests.fakes.gelbooru_v02:GelbooruV02Double",
    "danbooru": "tests.fakes.danbooru:DanbooruDouble",
    "yandere": "tests.fakes.moebooru:MoebooruDouble",
}


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


def prefix(word: str) -> str:
    return "" if word == "-" else word


def serve(double: Any, commands: dict[str, Callable[..., object]]) -> None:
    """Answer one line per command read from stdin until ``quit``, then stop the double."""
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                print("ok", flush=True)
                break
            command = commands.get(words[0])
            print("unknown command" if command is None else command(*words[1:]), flush=True)
    finally:
        double.stop()


def jm(specs: list[str]) -> None:
    double = BenchDouble()
    sizes: list[int] = []
    for spec in specs:
        kind, aid, pages, *arg = spec.split(":")
        if kind in ("big", "single"):
            double.add_album(big_album(aid, int(pages), scrambled=arg == ["1"]) if kind == "big"
                             else FakeAlbum.single(aid, f"Album {aid}", int(pages)))
        elif kind == "huge":
            if int(aid) >= 220980:
                raise SystemExit("a huge album must be plain: id below 220980")
            double.add_album(FakeAlbum.single(aid, f"Huge Album {aid}", int(pages), authors=["Benchmark"],
                                              tags=["huge"], views=1, likes=1))
            double.huge_pages[aid] = random_webp(float(arg[0]))
        else:
            raise SystemExit(f"unknown album spec {spec!r}")
        sizes += [len(double.served_bytes(aid, index)) for index in range(1, int(pages) + 1)]
    double.start()
    print("READY", double.host, f"{statistics.mean(sizes) if sizes else 0:.0f}", flush=True)

    def latency(seconds: str, path: str) -> str:
        double.set_latency(float(seconds), prefix(path))
        return "ok"

    def reset() -> str:
        double.reset_hits()
        return "ok"

    serve(double, {"latency": latency, "hits": lambda path: double.hits(prefix(path)), "reset": reset})


def booru(site: str, images: int, kb: int) -> None:
    from tests.fakes.booru import make_posts

    module, name = BOORU_DOUBLES[site].split(":")
    posts = make_posts(images, image_bytes=kb * 1000)
    double = getattr(importlib.import_module(module), name)(posts).start()
    print(f"READY {double.base_url} {statistics.mean(len(p['_data']) for p in posts):.0f}", flush=True)

    def latency(seconds: str) -> str:
        double.latency = float(seconds)
        return "ok"

    def hits() -> str:
        counts = json.dumps({k: double.hits(k) for k in ("post", "tag", "image", "all")})
        double.reset_hits()
        return counts

    serve(double, {"latency": latency, "hits": hits})


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1].startswith("booru:"):
        _, site_, images_, kb_ = sys.argv[1].split(":")
        booru(site_, int(images_), int(kb_))
    else:
        jm(sys.argv[1:])
