"""Album downloads: the server against jmcomic with the seed's option, the server's peak memory for
a ~1 GB album in every archive format, and what building a CBZ or a PDF costs per page against a zip.

    .venv/bin/python bench/bench_album.py [--runs 15] [--latency 0.1] [--pages 30] [--huge-mb 5]
                                          [--huge-pages 200] [--build-pages 100] [--no-write]

1. Wall time. The JM double (its own process) serves a scrambled and a plain one-chapter album of
   ``--pages`` pages (``big_album``; scrambled pages are descrambled and re-encoded by jmcomic, plain
   ones saved byte for byte), each image delayed ``--latency`` seconds. *Server*: ``POST
   /v1/download/album/{id}`` with default settings, follow ``/ws/jobs/{job_id}`` to
   ``download_ready``, stream the zip from ``download_url`` to nowhere; then ``DELETE`` the job. Two
   clocks: to the ``download_ready`` frame (issue 26's figure, judged against 1.10) and to the zip's
   last byte (issue 14's, stricter: it adds the transfer, reported beside it). *Direct*:
   ``jmcomic.download_album`` in a warm process of its own (bench/_direct_jm.py) with the seed's
   option: 30 image threads (JMComic_Server_API's setting), the rest as the server builds it.
   Alternating order run by run; medians. Ratio = server / direct.
2. Memory. For each format (zip, cbz, pdf) and two album sizes (``--huge-pages`` and half of it) a
   fresh server downloads a plain album of ``--huge-mb`` MB pages of incompressible WebP, builds the
   archive and serves it to a client that throws the bytes away; VmHWM (peak RSS) of the server
   process at the end, VmRSS sampled every 50 ms to tell the phases apart.
3. Build time. In this process, ``app.archives``' zip, cbz and pdf builders pack the same
   ``--build-pages`` pages (lossy WebP as jmcomic writes descrambled pages, and lossless WebP as
   plain chapters are served), alternating formats run by run; medians per page, ratio to zip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    ASGI_TARGET,
    BENCH,
    PYTHON,
    DoubleProcess,
    LineProcess,
    ServerProcess,
    arg_parser,
    clean_env,
    environment_md,
    follow_job,
    jm_env,
    machine,
    mb,
    median,
    median_of,
    package_version,
    paired,
    percentile,
    proc_status,
    publish,
    save_raw,
    verdict,
)

TARGET_RATIO = 1.10
TARGET_HWM = 150 * 1024 * 1024
SEED_IMAGE_THREADS = 30
FORMATS = ("zip", "cbz", "pdf")
FINAL = {"download_ready", "failed", "cancelled", "expired"}


def albums(pages: int) -> dict[str, tuple[str, str]]:
    """album id -> (kind, double spec): a scrambled and a plain album of ``pages`` pages."""
    return {"700030": ("scrambled", f"big:700030:{pages}:1"), "190530": ("plain", f"big:190530:{pages}:0")}


# --------------------------------------------------------------------------------------------
# part 1: wall time against jmcomic with the seed's option
# --------------------------------------------------------------------------------------------


async def server_run(server: ServerProcess, album_id: str, *, fmt: str = "zip",
                     sampler: RssSampler | None = None) -> dict[str, Any]:
    """Start the job, follow it to the end, stream the archive; times in seconds from the POST."""
    async with httpx.AsyncClient(base_url=server.url, timeout=900) as http:
        t0 = time.perf_counter()
        resp = await http.post(f"/v1/download/album/{album_id}", json={"client_id": "bench", "format": fmt})
        resp.raise_for_status()
        job_id = resp.json()["job_id"]
        phases: dict[str, float] = {}

        def on_frame(frame: dict[str, Any]) -> None:
            phases.setdefault(frame.get("state", "?"), time.perf_counter() - t0)
            if sampler is not None:
                sampler.phase = {"running": "download", "zipping": "build"}.get(frame.get("state"), sampler.phase)

        final = await follow_job(server.ws_url, job_id, on_frame)
        if final.get("event") != "download_ready":
            raise RuntimeError(f"the job ended with {final}")
        t_ready = time.perf_counter() - t0
        if sampler is not None:
            sampler.phase = "serve"
        size = 0
        async with http.stream("GET", final["download_url"]) as stream:
            stream.raise_for_status()
            async for chunk in stream.aiter_raw(1024 * 1024):
                size += len(chunk)
        total = time.perf_counter() - t0
        if sampler is not None:
            sampler.phase = "after"
        (await http.delete(f"/v1/jobs/{job_id}")).raise_for_status()
    running = phases.get("running", 0.0)
    building = phases.get("zipping", t_ready)
    return {"seconds": total, "ready": t_ready, "fetch": total - t_ready, "bytes": size, "files": final.get("done"),
            "start": running, "download": building - running, "build": t_ready - building}


class DirectRunner(LineProcess):
    """bench/_direct_jm.py, kept running between downloads."""

    what = "direct runner"

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__([PYTHON, str(BENCH / "_direct_jm.py")], clean_env(env))

    def start(self) -> DirectRunner:
        super().start()
        self.workers = int(self.ready[1])
        return self

    def run(self, album_id: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="jmbooru-direct-") as tmp:
            return dict(json.loads(self.ask(f"{album_id} {tmp}")))


def wall_time(args: argparse.Namespace) -> dict[str, Any]:
    chosen = albums(args.pages)
    results: dict[str, Any] = {}
    with DoubleProcess([spec for _kind, spec in chosen.values()]) as double:
        env = jm_env(double.host)
        with ServerProcess(env) as server, \
                DirectRunner({**env, "BENCH_IMAGE_THREADS": str(SEED_IMAGE_THREADS)}) as direct:
            asyncio.run(server_run(server, "100001"))  # warm both (first client, first job, imports)
            direct.run("100001")
            double.set_latency(args.latency, "/media/photos")
            for aid, (kind, _spec) in chosen.items():
                rows: dict[str, list[dict[str, Any]]] = {"server": [], "direct": []}
                for i in range(args.runs):
                    for who in (("server", "direct") if i % 2 == 0 else ("direct", "server")):
                        rows[who].append(asyncio.run(server_run(server, aid)) if who == "server" else direct.run(aid))
                    s, d = rows["server"][-1], rows["direct"][-1]
                    if s["files"] != args.pages or d["files"] != args.pages:
                        raise RuntimeError(f"expected {args.pages} pages: server {s['files']}, direct {d['files']}")
                    print(f"{kind} {aid} run {i + 1}: server {s['seconds']:.3f} s (download {s['download']:.3f} s), "
                          f"direct {d['seconds']:.3f} s", flush=True)
                server_med, direct_med = median_of(rows["server"], "seconds"), median_of(rows["direct"], "seconds")
                ready_med = median_of(rows["server"], "ready")
                results[aid] = {
                    "kind": kind, "rows": rows, "server": server_med, "direct": direct_med, "ready": ready_med,
                    "ratio": ready_med / direct_med,
                    "paired_ratio": median(paired([d["seconds"] for d in rows["direct"]],
                                                  [s["ready"] for s in rows["server"]])),
                    "last_byte_ratio": server_med / direct_med,
                    "last_byte_paired": median(paired([d["seconds"] for d in rows["direct"]],
                                                      [s["seconds"] for s in rows["server"]])),
                    **{k: median_of(rows["server"], k) for k in ("start", "download", "build", "fetch")},
                    "workers": direct.workers,
                }
                print(f"{kind} {aid}: server {ready_med:.3f} s to download_ready, {server_med:.3f} s to the last byte, "
                      f"direct {direct_med:.3f} s, ratio {ready_med / direct_med:.3f} ({server_med / direct_med:.3f})",
                      flush=True)
    return results


# --------------------------------------------------------------------------------------------
# part 2: peak memory with a ~1 GB album, per format
# --------------------------------------------------------------------------------------------


def children_rss(pid: int) -> int:
    """VmRSS of the processes whose parent is ``pid`` (the PDF builder's qpdf child)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += proc_status(int(entry.name), "VmRSS")
        except (OSError, KeyError, IndexError, ValueError):
            continue
    return total


class RssSampler:
    """The server's RSS and its children's, every 50 ms, with the peak per phase; and the server's
    ``/v1/health`` latency meanwhile (a stalled event loop shows there)."""

    def __init__(self, server: ServerProcess, interval: float = 0.05) -> None:
        self.server = server
        self.interval = interval
        self.phase = "idle"
        self.peaks: dict[str, int] = {}
        self.child_peak = 0
        self.tree_peak = 0
        self.health: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._prober = threading.Thread(target=self._probe, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.server.rss()
            except (OSError, KeyError):
                return
            children = children_rss(self.server.pid)
            self.child_peak = max(self.child_peak, children)
            self.tree_peak = max(self.tree_peak, rss + children)
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
            time.sleep(self.interval)

    def _probe(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=60) as http:
            while not self._stop.is_set():
                start = time.perf_counter()
                http.get("/v1/health")
                self.health.append(time.perf_counter() - start)
                time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        self._prober.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._prober.join()


def huge_albums(args: argparse.Namespace) -> dict[str, int]:
    """album id -> pages: the full-size album and one of half its pages."""
    return {"190900": args.huge_pages, "190901": args.huge_pages // 2}


def memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    sizes = huge_albums(args)
    rows = []
    with DoubleProcess([f"huge:{aid}:{pages}:{args.huge_mb}" for aid, pages in sizes.items()]) as double:
        for aid, pages in sizes.items():
            for fmt in args.formats:
                with ServerProcess(jm_env(double.host)) as server:
                    httpx.get(server.url + "/v1/rank/day", timeout=60)  # creates jmcomic's client: warm and idle
                    baseline = server.rss()
                    with RssSampler(server) as sampler:
                        run = asyncio.run(server_run(server, aid, fmt=fmt, sampler=sampler))
                    hwm = server.hwm()
                row = {"format": fmt, "pages": pages, "hwm": hwm, "baseline": baseline, "peaks": sampler.peaks,
                       "child_peak": sampler.child_peak, "tree_peak": max(sampler.tree_peak, hwm),
                       "health_max": max(sampler.health), "health_p99": percentile(sampler.health, 99), **run}
                rows.append(row)
                print(f"{fmt}, {pages} pages of {args.huge_mb:g} MB: {mb(run['bytes'])} archive, download "
                      f"{run['download']:.1f} s, build {run['build']:.1f} s, serve {run['fetch']:.1f} s; VmHWM {mb(hwm)}, "
                      f"children {mb(sampler.child_peak)}, health max {max(sampler.health) * 1000:.0f} ms "
                      f"(idle {mb(baseline)}); peaks " + ", ".join(f"{k} {mb(v)}" for k, v in sampler.peaks.items()),
                      flush=True)
    return rows


# --------------------------------------------------------------------------------------------
# part 3: build time per page
# --------------------------------------------------------------------------------------------


def make_pages(folder: Path, count: int, *, lossless: bool) -> list[tuple[str, Path]]:
    """Manga-sized pages (1100 x 1600): black ink blotches of random shapes on white, smoothed, so
    that they compress like line art (a few hundred KB as lossy WebP, as JM serves pages)."""
    import random

    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(1, count + 1):
        noise = Image.frombytes("L", (220, 320), random.Random(i).randbytes(220 * 320))
        ink = noise.resize((1100, 1600), Image.Resampling.BICUBIC).point(lambda v: 255 if v > 128 else 0)
        page = Image.merge("RGB", [ink.filter(ImageFilter.SMOOTH)] * 3)
        path = folder / f"{i:05d}.webp"
        if lossless:
            page.save(path, "WEBP", lossless=True, method=0)
        else:
            page.save(path, "WEBP")  # Pillow's default quality, as jmcomic saves descrambled pages
        entries.append((path.name, path))
    return entries


def build_times(args: argparse.Namespace) -> dict[str, Any]:
    from app.archives import FORMATS as REGISTRY
    from app.archives import ArchiveContent, Book

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="jmbooru-build-") as tmp:
        root = Path(tmp)
        for kind, lossless in (("lossy WebP", False), ("lossless WebP", True)):
            entries = make_pages(root / kind.replace(" ", "-"), args.build_pages, lossless=lossless)
            half = len(entries) // 2
            content = ArchiveContent(entries, Book(title="Bench", writers=["A"], tags=["t"],
                                                   bookmarks={0: "Chapter 1", half: "Chapter 2"}))
            times: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
            sizes: dict[str, int] = {}
            for run in range(args.build_runs):
                order = FORMATS if run % 2 == 0 else tuple(reversed(FORMATS))
                for fmt in order:
                    dest = root / f"out{REGISTRY[fmt].extension}"
                    start = time.perf_counter()
                    sizes[fmt] = REGISTRY[fmt].build(content, dest, root / "scratch")
                    times[fmt].append(time.perf_counter() - start)
                    dest.unlink()
            page_bytes = sum(p.stat().st_size for _n, p in entries)
            zip_med = median(times["zip"])
            results[kind] = {
                "pages": len(entries), "page_bytes": page_bytes, "sizes": sizes, "times": times,
                "per_page_ms": {fmt: median(t) / len(entries) * 1000 for fmt, t in times.items()},
                "ratio": {fmt: median(t) / zip_med for fmt, t in times.items()},
            }
            shutil.rmtree(root / "scratch", ignore_errors=True)
            print(f"{kind}: " + ", ".join(f"{fmt} {results[kind]['per_page_ms'][fmt]:.2f} ms/page "
                                          f"(x{results[kind]['ratio'][fmt]:.1f})" for fmt in FORMATS), flush=True)
    return results


# --------------------------------------------------------------------------------------------


def render(info: dict[str, Any], args: argparse.Namespace, wall: dict[str, Any], mem: list[dict[str, Any]],
           build: dict[str, Any]) -> str:
    workers = next(iter(wall.values()))["workers"] if wall else "?"
    lines = [
        "## 2. Album downloads (`bench/bench_album.py`)",
        "",
        environment_md(info, [
            f"Server: `uvicorn {ASGI_TARGET}` (one process, not pinned), default settings: "
            "`JMBOORU_ALBUM_IMAGE_THREADS` = 30 page downloads at once, page bodies written to disk as they "
            "arrive, `JMBOORU_ALBUM_PIXEL_BUDGET_MB` = 64; the JM double in a process of its own",
            f"img2pdf {package_version('img2pdf')}, pikepdf {package_version('pikepdf')}",
            f"Each page image delayed {args.latency * 1000:.0f} ms by the double; {args.runs} runs each, server and "
            "direct alternating (server first on odd runs); medians",
        ]),
        "",
        f"**Against the seed.** Ratio = server wall time / direct wall time for a {args.pages}-page album. *Server*: "
        "from `POST /v1/download/album/{id}` through `/ws/jobs/{id}` to its `download_ready` frame (issue 26's "
        "figure, judged here), and on to the last byte of the zip streamed from `download_url` (issue 14's "
        "stricter figure: the transfer added, shown beside it). "
        "*Direct*: `jmcomic.download_album` alone in its own warm process with the seed's option, "
        f"{workers} image threads (the rest as `app.sources.jm.build_option` builds it: retries, dir rule, "
        "decoding, curl_cffi).",
        "",
        "| album | server to `download_ready` / to the last byte (medians) | direct (median) | ratio to "
        "`download_ready`: of medians (median of paired ratios) | to the last byte | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for aid, r in wall.items():
        lines.append(f"| {r['kind']} `{aid}`, {args.pages} pages | {r['ready']:.3f} s / {r['server']:.3f} s | "
                     f"{r['direct']:.3f} s | **{r['ratio']:.3f}** (paired: {r['paired_ratio']:.3f}) | "
                     f"{r['last_byte_ratio']:.3f} (paired: {r['last_byte_paired']:.3f}) | ≤ {TARGET_RATIO:.2f} | "
                     f"{verdict(r['ratio'] <= TARGET_RATIO)} |")
    lines += ["", "Where the server's time goes (medians, from the frames' arrival): POST to `started`, downloading, "
              "building the zip (to `download_ready`), streaming it:", "",
              "| album | start | download | build | transfer |", "|---|---|---|---|---|"]
    for aid, r in wall.items():
        lines.append(f"| {r['kind']} `{aid}` | {r['start'] * 1000:.0f} ms | {r['download'] * 1000:.0f} ms "
                     f"(direct: {r['direct'] * 1000:.0f} ms) | {r['build'] * 1000:.0f} ms | {r['fetch'] * 1000:.0f} ms |")
    lines += [
        "",
        f"**Memory.** A plain album of {args.huge_mb:g} MB pages of incompressible WebP in each format and two sizes; "
        "one fresh server per row; peak RSS (VmHWM) of the server over the download, the build and serving the "
        "archive to a client that discards it.",
        "",
        "| format | pages | archive | download / build / serve | server peak RSS (VmHWM) | server + child, "
        "sampled peak | RSS downloading / building / serving | `/v1/health` p99 / max meanwhile | ratio | target | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in mem:
        p = row["peaks"]
        lines.append(
            f"| {row['format']} | {row['pages']} | {mb(row['bytes'])} | {row['download']:.1f} / {row['build']:.1f} / "
            f"{row['fetch']:.1f} s | {mb(row['hwm'])} | {mb(row['tree_peak'])} | "
            f"{mb(p.get('download', 0))} / {mb(p.get('build', 0))} / {mb(p.get('serve', 0))} | "
            f"{row['health_p99'] * 1000:.0f} / {row['health_max'] * 1000:.0f} ms | {row['tree_peak'] / TARGET_HWM:.2f} | "
            f"< 150 MB | {verdict(row['tree_peak'] < TARGET_HWM)} |")
    if mem:
        lines += ["", f"Idle RSS of a server after start-up and one JM request: {mb(median([r['baseline'] for r in mem]))} "
                      "(median of the rows)."]
    lines += ["", f"**Build time per page** ({args.build_runs} runs per format, alternating; medians), in one process, "
              "from the same pages (1100 × 1600 px) to a finished archive on disk (`app.archives` builders, "
              "fsync included):", "",
              "| pages | zip | cbz | pdf | pdf / zip | archive sizes zip / cbz / pdf |", "|---|---|---|---|---|---|"]
    for kind, r in build.items():
        ms = r["per_page_ms"]
        lines.append(
            f"| {r['pages']} × {kind} ({r['page_bytes'] / r['pages'] / 1024:.0f} KB each) | {ms['zip']:.2f} ms | "
            f"{ms['cbz']:.2f} ms (×{r['ratio']['cbz']:.1f}) | {ms['pdf']:.1f} ms | ×{r['ratio']['pdf']:.0f} | "
            f"{mb(r['sizes']['zip'])} / {mb(r['sizes']['cbz'])} / {mb(r['sizes']['pdf'])} |")
    lines += ["", findings(wall, mem, build)]
    return "\n".join(lines)


def findings(wall: dict[str, Any], mem: list[dict[str, Any]], build: dict[str, Any]) -> str:
    out = ["Findings:", ""]
    for aid, r in wall.items():
        out.append(f"- {r['kind']} `{aid}`: {r['ready'] - r['direct']:+.3f} s to `download_ready` against jmcomic "
                   f"alone, {r['server'] - r['direct']:+.3f} s to the zip's last byte (medians); "
                   f"{r['start'] * 1000:.0f} ms until the job starts, {r['build'] * 1000:.0f} ms building the zip after "
                   f"the last page and {r['fetch'] * 1000:.0f} ms streaming it; the download itself "
                   f"{(r['download'] - r['direct']) * 1000:+.0f} ms against the direct run.")
    misses = [r for r in wall.values() if r["ratio"] > TARGET_RATIO]
    if misses:
        fixed = max(r["start"] + r["build"] for r in misses)
        out.append(
            f"- **Ratio miss.** The download phase is jmcomic's own (the job's jmcomic call takes the album detail the "
            "POST's check fetched instead of asking JM again, so it is a round trip shorter than the direct call); "
            f"what remains is fixed per job, about {fixed * 1000:.0f} ms that the direct run does not do: the HTTP "
            "request and the job's start (routing, validation, the durable insert, the claim, the work folder made "
            "in a thread while the loop serves the client's WebSocket handshake), then after the last page the zip, "
            "the final record and frame. A 30-page album at 0.1 s per image is about "
            f"0.13 s of work, so the 10 % allows {0.013 * 1000:.0f} ms in all. The notes below (issue 26) account "
            "for each millisecond.")
    if mem:
        worst = max(mem, key=lambda r: r["tree_peak"])
        by_format: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(mem, key=lambda r: r["pages"]):
            by_format.setdefault(row["format"], []).append(row)
        growth = ", ".join(
            f"{fmt} {mb(rows[0]['hwm'])} at {rows[0]['pages']} pages, {mb(rows[-1]['hwm'])} at {rows[-1]['pages']}"
            for fmt, rows in by_format.items())
        out.append(
            f"- Memory: the highest peak is {mb(worst['tree_peak'])} ({worst['format']}, {worst['pages']} pages, the "
            f"server and its qpdf child together), {mb(abs(TARGET_HWM - worst['tree_peak']))} "
            f"{'under' if worst['tree_peak'] < TARGET_HWM else 'over'} the target; "
            f"flat in the album's size ({growth}). Page bodies go to their files as they arrive "
            "(`app/sources/jm_pages.py`), so 30 image threads cost no more memory than 8 did; builders copy in "
            "1 MB chunks (zip, cbz) or one page at a time (pdf: img2pdf per page in the server, then qpdf in a "
            "child process, because pikepdf holds the GIL for as long as qpdf writes: seconds of a frozen event loop "
            "for a big album).")
    for kind, r in build.items():
        out.append(
            f"- Build, {kind}: cbz costs what zip costs (plus ComicInfo.xml, which reads each page's header for its "
            f"size); pdf is ×{r['ratio']['pdf']:.0f} zip's time, {r['per_page_ms']['pdf']:.0f} ms a page: each WebP page is "
            "decoded and re-encoded (JPEG q92 for lossy, PNG for lossless: PDF has no WebP), then img2pdf writes it "
            "and qpdf passes over the data twice (join, then outline and document info).")
    return "\n".join(out)


def main() -> None:
    # --formats: of the memory runs; --render: the section again from bench/out/album.json
    args = arg_parser(__doc__, runs=15, latency=0.1, pages=30, huge_mb=5.0, huge_pages=200, build_pages=100,
                      build_runs=5, formats=FORMATS, skip_wall=False, skip_memory=False, skip_build=False,
                      render=False).parse_args()
    if args.render:
        raw = json.loads((BENCH / "out" / "album.json").read_text())
        for name, value in raw["args"].items():
            if name not in ("out", "no_write"):
                setattr(args, name, value)
        publish("album", render(raw["machine"], args, raw["wall"], raw["memory"], raw["build"]), args)
        return
    info = machine()
    wall = {} if args.skip_wall else wall_time(args)
    mem = [] if args.skip_memory else memory(args)
    build = {} if args.skip_build else build_times(args)
    save_raw("album", {"machine": info, "wall": wall, "memory": mem, "build": build, "args": vars(args)})
    publish("album", render(info, args, wall, mem, build), args, complete=bool(wall and mem and build))

if __name__ == "__main__":
    main()
