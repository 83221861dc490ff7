"""S3 storage: a large archive streamed from the bucket through the API, beside a direct GET of the
same object with the same client.

    .venv/bin/python bench/bench_s3.py [--size-mb 1024] [--runs 3]

moto's S3 server (``python -m moto.server``) in a process of its own is the bucket (no MinIO server
installs on these machines). One uvicorn API process (``JMBOORU_STORAGE=s3``, embedded mode) runs
one small real album job against the JM double (bench/_double_proc.py), so the job store holds a
ready job whose archive is in the bucket; that object is then overwritten with ``--size-mb`` MiB of
random bytes (the MinIO SDK, multipart), which the API serves like any archive of that name.

Then, alternating, ``--runs`` times each: one httpx client streams ``GET /v1/download/{file_name}``
from the API, and the same client streams the object straight from moto (a presigned path-style GET); each
body is read in 1 MiB chunks and thrown away. The API process's peak RSS (VmHWM) is read after
the runs, its RSS before them. Targets (issue 25): peak RSS < 150 MB; through the API ≥ 0.8× the
direct GET. Writes its section of docs/benchmarks.md. Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    PYTHON,
    DoubleProcess,
    ServerProcess,
    environment_md,
    free_port,
    jm_env,
    machine,
    mb,
    median,
    package_version,
    publish,
    save_raw,
    verdict,
)

BUCKET = "jmbooru-bench"
KEY_ID, SECRET = "bench-key", "bench-secret-not-logged"
MIB = 1024 * 1024


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(endpoint, timeout=1)
            return proc, endpoint
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stream(client: httpx.Client, url: str) -> tuple[float, int]:
    """Seconds to read the whole body, and its size."""
    t0 = time.perf_counter()
    size = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(MIB):
            size += len(chunk)
    return time.perf_counter() - t0, size


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (a figure that neighbours' load moves little)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ready_archive(api: ServerProcess) -> str:
    with httpx.Client(base_url=api.url, timeout=60) as http:
        job_id = http.post("/v1/download/album/100001").json()["job_id"]
        deadline = time.monotonic() + 120
        while True:
            job = http.get(f"/v1/jobs/{job_id}").json()
            if job["state"] == "ready":
                return str(job["file_name"])
            if job["state"] in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError(f"the album job did not finish: {job}")
            time.sleep(0.2)


def overwrite(endpoint: str, key: str, size_mb: int) -> None:
    from minio import Minio

    client = Minio(endpoint.removeprefix("http://"), access_key=KEY_ID, secret_key=SECRET, secure=False)
    with tempfile.NamedTemporaryFile(prefix="jmbooru-bench-s3-") as f:
        block = os.urandom(MIB)
        for _ in range(size_mb):
            f.write(block)
        f.flush()
        client.fput_object(BUCKET, key, f.name, content_type="application/zip", part_size=64 * MIB)


def run(args: argparse.Namespace) -> dict[str, Any]:
    moto, endpoint = start_moto()
    try:
        from minio import Minio

        Minio(endpoint.removeprefix("http://"), access_key=KEY_ID, secret_key=SECRET, secure=False).make_bucket(BUCKET)
        with DoubleProcess() as double:
            env = jm_env(double.host, JMBOORU_STORAGE="s3", JMBOORU_S3_ENDPOINT=endpoint, JMBOORU_S3_BUCKET=BUCKET,
                         JMBOORU_S3_ACCESS_KEY_ID=KEY_ID, JMBOORU_S3_SECRET_ACCESS_KEY=SECRET,
                         JMBOORU_FILE_TTL_SECONDS="7200", JMBOORU_GC_FREEZE="false")
            with ServerProcess(env) as api:
                name = ready_archive(api)
                overwrite(endpoint, f"archives/{name}", args.size_mb)
                # The direct GET carries a presigned query string (moto refuses anonymous reads).
                from datetime import timedelta

                from minio import Minio

                direct_url = Minio(endpoint.removeprefix("http://"), access_key=KEY_ID, secret_key=SECRET,
                                   secure=False, region="us-east-1").presigned_get_object(
                    BUCKET, f"archives/{name}", expires=timedelta(hours=1))
                rss_before = api.rss()
                via_api, direct, cpu = [], [], []
                with httpx.Client(timeout=600) as client:
                    for _ in range(args.runs):
                        cpu0 = process_cpu(api.pid)
                        seconds, size = stream(client, f"{api.url}/v1/download/{name}")
                        cpu.append(process_cpu(api.pid) - cpu0)
                        assert size == args.size_mb * MIB, size
                        via_api.append(size / seconds)
                        seconds, size = stream(client, direct_url)
                        assert size == args.size_mb * MIB, size
                        direct.append(size / seconds)
                return {"size_mb": args.size_mb, "runs": args.runs, "rss_before": rss_before,
                        "rss_peak": api.hwm(), "via_api": via_api, "direct": direct, "api_cpu": cpu}
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def report(r: dict[str, Any], args: argparse.Namespace) -> str:
    m = machine()
    api, direct = median(r["via_api"]), median(r["direct"])
    ratio = api / direct
    peak = r["rss_peak"]
    size = f"{r['size_mb'] / 1024:g} GiB" if r["size_mb"] >= 1024 else f"{r['size_mb']} MiB"
    lines = [
        "## S3 storage: streaming an archive from the bucket (`bench/bench_s3.py`)",
        "",
        environment_md(m, [
            f"obstore {package_version('obstore')}, moto {package_version('moto')} (its S3 server, one process), "
            f"minio {package_version('minio')} (writes the object)",
            f"One {size} object under a ready job's key; one httpx client streams it through "
            "`GET /v1/download/{file_name}` of one uvicorn API process (`JMBOORU_STORAGE=s3`) and straight from "
            f"the bucket (a presigned GET), alternating, {r['runs']} runs each, medians; 1 MiB client reads, bodies discarded",
        ]),
        "",
        "| figure | measured | target | result |",
        "|---|---|---|---|",
        f"| API process peak RSS while streaming (VmHWM) | {mb(peak)} (before: {mb(r['rss_before'])}) "
        f"| < 150 MB | {verdict(peak < 150 * MIB)} |",
        f"| throughput through the API / direct GET | {mb(api)}/s / {mb(direct)}/s = {ratio:.2f} | ≥ 0.80 "
        f"| {verdict(ratio >= 0.8)} |",
        "",
        f"The API process used {median(r['api_cpu']) / (r['size_mb'] / 1024):.2f} CPU seconds per GiB streamed "
        "(median).",
        "",
        "Runs (MB/s): through the API " + ", ".join(f"{v / MIB:.0f}" for v in r["via_api"])
        + "; direct " + ", ".join(f"{v / MIB:.0f}" for v in r["direct"]) + ".",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args)
    save_raw("s3", result)
    publish("s3", report(result, args), args.out, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
