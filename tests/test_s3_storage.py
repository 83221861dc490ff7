"""Several hosts: archives in an S3 bucket (hosts.md). moto's S3 server is the bucket; the MinIO SDK
reads it back as an independent client; API processes and workers are real processes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image, ImageChops

from app.archive_store import build_archive_store
from app.blocking import BlockingPool
from app.storage import Storage
from tests.cluster import ROOT, Cluster, RedisServer
from tests.conftest import LiveServer, dead_port, free_port, make_settings, wait_for, wait_until
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, sigv4_query_signature

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


class HostsCluster(Cluster):
    """A cluster whose every process has a data folder of its own, as on separate hosts."""

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**self.env, "JMBOORU_DATA_DIR": str(self.tmp / f"data-{name}")}
        return subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT, stdout=log, stderr=log)


def s3_env(jm: JmDouble, s3: S3Server, bucket: str, **extra: str) -> dict[str, str]:
    return {
        "JMBOORU_JM_API_DOMAINS": jm.host,
        "JMBOORU_JM_IMAGE_DOMAINS": jm.host,
        "JMBOORU_JM_SCHEME": "http",
        "JMBOORU_JM_RETRY_TIMES": "0",
        "JMBOORU_CLEANUP_INTERVAL_SECONDS": "0.5",
        "JMBOORU_JOB_LEASE_SECONDS": "3",
        "JMBOORU_DOWNLOAD_WORKERS": "4",
        "JMBOORU_ALBUM_IMAGE_THREADS": "4",
        "JMBOORU_LOG_LEVEL": "info",
        "JMBOORU_STORAGE": "s3",
        "JMBOORU_S3_ENDPOINT": s3.endpoint,
        "JMBOORU_S3_BUCKET": bucket,
        "JMBOORU_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "JMBOORU_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "JMBOORU_S3_RETRY_SECONDS": "3",
        **extra,
    }


def s3_settings(tmp_path: Path, jm: JmDouble, s3: S3Server, bucket: str, **overrides: Any) -> Any:
    return make_settings(tmp_path / "data", jm, storage="s3", s3_endpoint=s3.endpoint, s3_bucket=bucket,
                         s3_access_key_id=ACCESS_KEY, s3_secret_access_key=SECRET_KEY, s3_retry_seconds=2,
                         cleanup_interval_seconds=0.5, **overrides)


async def wait_job(http: httpx.AsyncClient, base: str, job_id: str, states: set[str],
                   timeout: float = 60) -> dict[str, Any]:
    last: dict[str, Any] = {}

    async def in_state() -> dict[str, Any] | None:
        last.update((await http.get(f"{base}/v1/jobs/{job_id}")).json())
        return dict(last) if last["state"] in states else None

    job: dict[str, Any] = await wait_for(in_state, timeout, 0.1, message=lambda: f"not {sorted(states)}: {last}")
    return job


def archives_in_data_folders(tmp_path: Path, name: str) -> list[Path]:
    return [p for p in tmp_path.glob("data-*/**/*") if p.name == name or p.suffix == ".zip"]


def process_logs(tmp_path: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def test_two_hosts_share_only_redis_and_the_bucket(
    tmp_path: Path, jm_double: JmDouble, redis_server: RedisServer, s3: S3Server
) -> None:
    bucket = s3.new_bucket()
    jm_double.add_album(FakeAlbum.single("190500", "Hosts Album", 4))
    env = s3_env(jm_double, s3, bucket, JMBOORU_REDIS_URL=redis_server.url)
    with HostsCluster(tmp_path, env, apis=2, workers=2) as cluster:
        http = httpx.AsyncClient(timeout=30)
        health = (await http.get(f"{cluster.url(1)}/v1/health")).json()
        assert health["storage"] == "s3"
        started = await http.post(f"{cluster.url(0)}/v1/download/album/190500")
        assert started.status_code == 202, started.text
        job = await wait_job(http, cluster.url(1), started.json()["job_id"], {"ready", "failed"})
        assert job["state"] == "ready", job
        name = job["file_name"]
        key = f"archives/{name}"
        stored = s3.read(bucket, key)
        assert job["bytes"] == len(stored)
        assert s3.client.stat_object(bucket, key).content_type == "application/zip"
        # No archive under any process's data folder: the bucket holds the only copy.
        assert not archives_in_data_folders(tmp_path, name)

        # Fetched from the other API process, whose data folder never saw it.
        whole = await http.get(f"{cluster.url(1)}/v1/download/{name}")
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-length"] == str(len(stored))
        assert whole.headers["content-type"] == "application/zip"
        assert whole.headers["accept-ranges"] == "bytes"
        assert "attachment" in whole.headers["content-disposition"]
        assert md5(whole.content) == md5(stored)
        with zipfile.ZipFile(io.BytesIO(whole.content)) as zf:
            pages = sorted(n for n in zf.namelist() if n != "cover.jpg")
            assert len(pages) == 4
            for index, page in enumerate(pages, start=1):
                got = Image.open(io.BytesIO(zf.read(page))).convert("RGB")
                assert ImageChops.difference(got, jm_double.expected_image("190500", index)).getbbox() is None
        by_job = await http.get(f"{cluster.url(0)}/v1/jobs/{job['job_id']}/file")
        assert by_job.status_code == 200 and md5(by_job.content) == md5(stored)

        # Byte ranges: exactly those bytes, and 416 past the end.
        size = len(stored)
        for header, (start, end) in {"bytes=10-99": (10, 100), "bytes=100-": (100, size),
                                     "bytes=-50": (size - 50, size)}.items():
            part = await http.get(f"{cluster.url(1)}/v1/download/{name}", headers={"Range": header})
            assert part.status_code == 206, header
            assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
            assert part.content == stored[start:end]
        past = await http.get(f"{cluster.url(0)}/v1/download/{name}", headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
        malformed = await http.get(f"{cluster.url(1)}/v1/download/{name}", headers={"Range": "bytes=9-3"})
        assert malformed.status_code == 400 and malformed.json()["detail"]  # as for local files

        # A repeat on the other process joins; the key was written once.
        again = await http.post(f"{cluster.url(1)}/v1/download/album/190500")
        assert again.status_code == 202
        assert again.json()["joined"] is True and again.json()["job_id"] == job["job_id"]
        assert again.json()["file_name"] == name
        await asyncio.sleep(1.0)  # a (wrong) second upload would have had time to land
        assert s3.versions(bucket, key) == 1

        # DELETE on one process removes the object; the other answers 404.
        deleted = await http.delete(f"{cluster.url(0)}/v1/jobs/{job['job_id']}")
        assert deleted.json()["state"] == "expired"
        assert not s3.exists(bucket, key)
        gone = await http.get(f"{cluster.url(1)}/v1/download/{name}")
        assert gone.status_code == 404 and gone.json()["status"] == "error"
        await http.aclose()
    logs = process_logs(tmp_path)
    assert "job queued" in logs  # the logs were written at info level...
    assert SECRET_KEY not in logs  # ...and never hold the secret key


async def test_redirect_signed_link_and_expiry(tmp_path: Path, jm_double: JmDouble, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    public = f"http://localhost:{s3.port}"  # another name for the bucket's host: what clients reach
    settings = s3_settings(tmp_path, jm_double, s3, bucket, s3_redirect=True, s3_public_endpoint=public,
                           file_ttl_seconds=10)
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            started = (await http.post("/v1/download/album/100001")).json()
            job = await wait_job(http, live.url, started["job_id"], {"ready", "failed"})
            assert job["state"] == "ready", job
            name, key = job["file_name"], f"archives/{job['file_name']}"
            stored = s3.read(bucket, key)
            for path in (f"/v1/jobs/{job['job_id']}/file", f"/v1/download/{name}"):
                answer = await http.get(path)
                assert answer.status_code == 307, answer.text
                assert answer.headers["cache-control"] == "no-store"
                url = answer.headers["location"]
                assert url.startswith(f"{public}/{bucket}/{key}?")
                query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
                assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
                assert query["X-Amz-SignedHeaders"] == "host"
                assert query["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
                assert query["X-Amz-Credential"].endswith("/us-east-1/s3/aws4_request")
                assert 0 < int(query["X-Amz-Expires"]) <= 10  # never past the archive's own expiry
                assert query["X-Amz-Signature"] == sigv4_query_signature(url, SECRET_KEY)
                fetched = await http.get(url)
                assert fetched.status_code == 200 and md5(fetched.content) == md5(stored)

            link = await http.get(f"/v1/jobs/{job['job_id']}/link")
            assert link.status_code == 200, link.text
            body = link.json()
            assert body["url"].startswith(f"{public}/{bucket}/{key}?")
            assert parse_qs(urlsplit(body["url"]).query)["X-Amz-Signature"][0] == \
                sigv4_query_signature(body["url"], SECRET_KEY)
            assert time.time() < epoch(body["expires_at"]) <= epoch(job["expires_at"]) + 1

            # At expires_at the sweep deletes the object; both endpoints answer 404.
            await wait_job(http, live.url, job["job_id"], {"expired"}, timeout=30)
            assert not s3.exists(bucket, key)
            assert (await http.get(f"/v1/download/{name}")).status_code == 404
            assert (await http.get(f"/v1/jobs/{job['job_id']}/file")).status_code == 404
            assert (await http.get(f"/v1/jobs/{job['job_id']}/link")).status_code == 404


async def test_local_storage_has_no_signed_links(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        assert (await http.get("/v1/health")).json()["storage"] == "local"
        started = (await http.post("/v1/download/album/100001")).json()
        await wait_job(http, live.url, started["job_id"], {"ready"})
        link = await http.get(f"/v1/jobs/{started['job_id']}/link")
        assert link.status_code == 404 and "JMBOORU_STORAGE=s3" in link.json()["detail"]


async def test_s3_outage_fails_the_running_job_and_keeps_earlier_archives(
    tmp_path: Path, jm_double: JmDouble, s3: S3Server
) -> None:
    bucket = s3.new_bucket()
    jm_double.add_album(FakeAlbum.single("190600", "Outage Album", 6))
    jm_double.add_album(FakeAlbum.single("190601", "After Album", 2))
    settings = s3_settings(tmp_path, jm_double, s3, bucket)
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            first = (await http.post("/v1/download/album/100001")).json()
            earlier = await wait_job(http, live.url, first["job_id"], {"ready"})
            stored = s3.read(bucket, f"archives/{earlier['file_name']}")

            jm_double.set_latency(0.4, "/media/photos/190600")
            second = (await http.post("/v1/download/album/190600")).json()
            await wait_job(http, live.url, second["job_id"], {"running"})
            s3.stop()
            try:
                t0 = time.monotonic()
                health = await http.get("/v1/health", timeout=2)
                assert health.json()["storage"] == "s3" and time.monotonic() - t0 < 1.5
                t0 = time.monotonic()
                down = await http.get(f"/v1/download/{earlier['file_name']}")
                assert down.status_code == 503 and down.json()["detail"]
                assert time.monotonic() - t0 < 2 + 5
                failed = await wait_job(http, live.url, second["job_id"], {"failed", "ready"}, timeout=60)
                assert failed["state"] == "failed", failed
                error = failed["error"]
                assert "stored" in error and ("bucket" in error or "storage" in error)
                for leak in (s3.endpoint, str(s3.port), SECRET_KEY, ACCESS_KEY, "Traceback", "Error"):
                    assert leak not in error
                work = settings.data_path / "work"
                await wait_for(lambda: not any(p.name.endswith(second["job_id"]) or second["job_id"] in p.name
                                               for p in work.iterdir()), timeout=10)
                # The sweep ran meanwhile (every 0.5 s): an unreachable bucket expired nothing.
                assert (await http.get(f"/v1/jobs/{first['job_id']}")).json()["state"] == "ready"
            finally:
                s3.start()
            back = await http.get(f"/v1/download/{earlier['file_name']}")
            assert back.status_code == 200 and md5(back.content) == md5(stored)
            third = (await http.post("/v1/download/album/190601")).json()
            assert (await wait_job(http, live.url, third["job_id"], {"ready", "failed"}))["state"] == "ready"


async def test_archives_above_one_part_go_up_multipart_in_parts_of_the_set_size(
    tmp_path: Path, s3: S3Server
) -> None:
    bucket = s3.new_bucket(versioned=False)
    settings = make_settings(tmp_path / "data", storage="s3", s3_endpoint=s3.endpoint, s3_bucket=bucket,
                             s3_access_key_id=ACCESS_KEY, s3_secret_access_key=SECRET_KEY, s3_part_size_mb=5)
    pool = BlockingPool(2, "test-files")
    try:
        store = build_archive_store(settings, Storage(settings.data_path), pool)
        built = tmp_path / "scratch" / "big-0123456789.zip"
        built.parent.mkdir()
        data = os.urandom(11 * MIB + 123)
        built.write_bytes(data)
        assert await store.put(built.name, built, "application/zip", len(data)) == len(data)
        assert not built.exists()  # the scratch copy goes once the bucket holds it
        stat = s3.client.stat_object(bucket, f"archives/{built.name}")
        assert stat.etag.endswith("-3")  # ceil(11 MiB / 5 MiB) parts
        first_part = s3.client.get_object(bucket, f"archives/{built.name}", extra_query_params={"partNumber": "1"})
        try:
            assert len(first_part.read()) == 5 * MIB
        finally:
            first_part.close()
            first_part.release_conn()
        assert md5(s3.read(bucket, f"archives/{built.name}")) == md5(data)

        small = tmp_path / "scratch" / "small-0123456789.zip"
        small.write_bytes(b"x" * 1000)
        await store.put(small.name, small, "application/zip", 1000)
        assert "-" not in s3.client.stat_object(bucket, f"archives/{small.name}").etag  # one plain PUT
    finally:
        pool.shutdown(wait=False)


# --- start-up ---------------------------------------------------------------------------------


def run_cli(args: list[str], env: dict[str, str], timeout: float = 30, code: str = "") -> tuple[int, str, float]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("JMBOORU_", "AWS_"))}
    full_env.update({"PYTHONPATH": str(ROOT), "JMBOORU_ENV_FILE": os.devnull, **env})
    command = [sys.executable, "-c", code + "import sys; from app.cli import main; sys.exit(main(sys.argv[1:]))",
               *args]
    t0 = time.monotonic()
    done = subprocess.run(command, env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - t0


@pytest.fixture(scope="module")
def refusing_s3() -> Iterator[str]:
    """A moto S3 server in a process of its own that checks credentials (after its first request, which
    creates the bucket): every key it is given is unknown to it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"

        def bucket_made() -> bool:
            try:
                httpx.put(f"{endpoint}/guarded-bucket", timeout=1)  # unauthenticated: the one free request
                return True
            except httpx.HTTPError:
                assert proc.poll() is None, "moto exited"
                return False

        wait_until(bucket_made, timeout=30, interval=0.1, message="moto did not start")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_start_up_stops_with_one_sentence_when_the_bucket_cannot_be_used(
    command: list[str], s3: S3Server, refusing_s3: str
) -> None:
    with dead_port() as nobody:  # held for the whole test: no other server can take the port meanwhile
        _start_up_stops_with_one_sentence(command, s3, refusing_s3, nobody)


def _start_up_stops_with_one_sentence(command: list[str], s3: S3Server, refusing_s3: str, nobody: int) -> None:
    base = {"JMBOORU_STORAGE": "s3", "JMBOORU_S3_ENDPOINT": s3.endpoint, "JMBOORU_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "JMBOORU_S3_SECRET_ACCESS_KEY": SECRET_KEY, "JMBOORU_S3_RETRY_SECONDS": "2",
            "JMBOORU_REDIS_URL": "redis://127.0.0.1:1/0"}  # the worker checks storage before Redis
    cases: list[tuple[dict[str, str], str, list[str]]] = [
        ({"JMBOORU_S3_BUCKET": "no-such-bucket-here"}, "", ["'no-such-bucket-here'", "does not exist"]),
        ({"JMBOORU_S3_BUCKET": "guarded-bucket", "JMBOORU_S3_ENDPOINT": refusing_s3}, "",
         ["refused the credentials", "JMBOORU_S3_SECRET_ACCESS_KEY"]),
        ({}, "", ["JMBOORU_S3_BUCKET"]),
        ({"JMBOORU_S3_BUCKET": "any-bucket", "JMBOORU_S3_ENDPOINT": f"http://127.0.0.1:{nobody}"}, "",
         ["could not be reached"]),
        ({"JMBOORU_S3_BUCKET": "any-bucket"}, "import sys; sys.modules['obstore'] = None; ", ['pip install "jmbooru[s3]"']),
    ]
    for extra, code, words in cases:
        rc, output, took = run_cli(command, {**base, **extra}, code=code)
        assert rc == 2, (extra, output)
        assert len(output.strip().splitlines()) == 1, output
        assert "Traceback" not in output and SECRET_KEY not in output
        for word in words:
            assert word in output, (word, output)
        assert took < 2 + 10, (extra, took)


def test_config_masks_the_secret_key(s3: S3Server) -> None:
    rc, output, _ = run_cli(["config"], {"JMBOORU_STORAGE": "s3", "JMBOORU_S3_BUCKET": "b",
                                         "JMBOORU_S3_SECRET_ACCESS_KEY": SECRET_KEY})
    assert rc == 0, output
    assert SECRET_KEY not in output
    assert "JMBOORU_S3_SECRET_ACCESS_KEY=" in output and "JMBOORU_STORAGE=s3" in output


@pytest.mark.parametrize(("text", "refused"), [
    # obstore's words, as moto and a closed port gave them; durations and ports hold "401"/"403" by chance
    ("Generic S3 error: Error performing list request: Error performing GET http://127.0.0.1:40312/b?list-type=2 "
     "in 357.403112ms, after 3 retries, max_retries: 3, retry_timeout: 2s  - HTTP error: error sending request\n\n"
     "Debug source:\nGeneric { status: 403 }", False),
    ("Error performing GET http://127.0.0.1:52401/b in 2.401s - HTTP error: error sending request", False),
    ("Error performing GET http://127.0.0.1:21230/b in 41.405489ms - Server returned non-2xx status code: "
     "403 Forbidden: <Error><Code>InvalidAccessKeyId</Code></Error>", True),
    ("Error performing GET http://h/b in 12ms - Server returned non-2xx status code: 401 Unauthorized: ", True),
    ("Error performing GET http://h/b - <Error><Code>SignatureDoesNotMatch</Code></Error>", True),
])
def test_only_the_storage_s_answer_counts_as_refusing_the_credentials(text: str, refused: bool) -> None:
    from app.archive_store.s3 import is_refusal

    assert is_refusal(text) is refused
