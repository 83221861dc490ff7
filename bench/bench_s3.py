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
import tempfile
import time
from datetime import timedelta
from typing import Any

import httpx
from _common import (
    PYTHON,
    DoubleProcess,
    ServerProcess,
    arg_parser,
    environment_md,
    free_port,
    jm_env,
    joined,
    machine,
    mb,
    median,
    package_version,
    process_cpu,
    publish,
    run_albums,
    save_raw,
    verdict,
    wait_until,
)

BUCKET = "jmbooru-bench"
KEY_ID, SECRET = "bench-key", "bench-secret-not-logged"
MIB = 1024 * 1024


def minio(endpoint: str, **options: Any) -> Any:
    from minio import Minio

    return Minio(endpoint.removeprefix("http://"), access_key=KEY_ID, secret_key=SECRET, secure=False, **options)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            httpx.get(endpoint, timeout=1)
            return True
        except httpx.HTTPError:
            return False

    wait_until(answers, "moto did not start")
    return proc, endpoint


def stream(client: httpx.Client, url: str) -> tuple[float, int]:
    """Seconds to read the whole body, and its size."""
    t0 = time.perf_counter()
    size = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(MIB):
            size += len(chunk)
    return time.perf_counter() - t0, size


def ready_archive(api: ServerProcess) -> str:
    with httpx.Client(base_url=api.url, timeout=60) as http:
        return str(run_albums(http, ["100001"], timeout=120)[0]["file_name"])


def overwrite(endpoint: str, key: str, size_mb: int) -> None:
    client = minio(endpoint)
    with tempfile.NamedTemporaryFile(prefix="jmbooru-bench-s3-") as f:
        block = os.urandom(MIB)
        for _ in range(size_mb):
            f.write(block)
        f.flush()
        client.fput_object(BUCKET, key, f.name, content_type="application/zip", part_size=64 * MIB)


def run(args: argparse.Namespace) -> dict[str, Any]:
    moto, endpoint = start_moto()
    try:
        minio(endpoint).make_bucket(BUCKET)
        with DoubleProcess() as double:
            env = jm_env(double.host, JMBOORU_STORAGE="s3", JMBOORU_S3_ENDPOINT=endpoint, JMBOORU_S3_BUCKET=BUCKET,
                         JMBOORU_S3_ACCESS_KEY_ID=KEY_ID, JMBOORU_S3_SECRET_ACCESS_KEY=SECRET,
                         JMBOORU_FILE_TTL_SECONDS="7200", JMBOORU_GC_FREEZE="false")
            with ServerProcess(env) as api:
                name = ready_archive(api)
                overwrite(endpoint, f"archives/{name}", args.size_mb)
                # The direct GET carries a presigned query string (moto refuses anonymous reads).
                direct_url = minio(endpoint, region="us-east-1").presigned_get_object(
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
        f"Runs (MB/s): through the API {joined(r['via_api'], '.0f', 1 / MIB)}; direct "
        f"{joined(r['direct'], '.0f', 1 / MIB)}.",
    ]
    return "\n".join(lines)


def main() -> None:
    args = arg_parser(__doc__, size_mb=1024, runs=3).parse_args()
    result = run(args)
    save_raw("s3", result)
    publish("s3", report(result, args), args)


if __name__ == "__main__":
    main()
