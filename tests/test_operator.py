"""The operator's view: Prometheus metrics that move when a job runs, and JSON log lines that
follow a job from its POST to its final frame by request id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.conftest import LiveServer, free_port, make_settings, wait_serving, wait_until
from tests.fakes.jm import JmDouble
from tests.wsclient import follow

ROOT = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_when_a_job_runs(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path / "data", jm_double, api_key="metrics-key", metrics_port=free_port())
    headers = {"X-API-Key": "metrics-key"}
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url, headers=headers) as http:
            assert (await http.get("/metrics", headers={"X-API-Key": ""})).status_code == 401
            before = samples((await http.get("/metrics")).text)
            await http.get("/v1/rank/day")
            await http.get("/v1/rank/day")  # the second is a cached replay: counted under its route too
            job = (await http.post("/v1/download/album/100001")).json()
            frames = await follow(f"{live.ws_url}/ws/jobs/{job['job_id']}?api_key=metrics-key")
            assert frames[-1]["event"] == "download_ready"
            async with connect(f"{live.ws_url}/ws/notifications/watcher?api_key=metrics-key"):
                resp = await http.get("/metrics")
            assert resp.headers["content-type"].startswith("text/plain")
            after = samples(resp.text)
            # The same numbers on the metrics port, without the key.
            side_resp = await http.get(f"http://127.0.0.1:{settings.metrics_port}/metrics", headers={"X-API-Key": ""})
        side = samples(side_resp.text)

    def grew(name: str, by: float = 1, **labels: str) -> None:
        assert value(after, name, **labels) - value(before, name, **labels) >= by, (name, labels)

    grew("jmbooru_http_requests_total", 2, method="GET", route="/v1/rank/{period}", status="200")
    grew("jmbooru_http_requests_total", method="POST", route="/v1/download/album/{album_id}", status="202")
    grew("jmbooru_jobs_ended_total", kind="album", state="ready")
    grew("jmbooru_files_downloaded_total", 5, kind="album")
    grew("jmbooru_bytes_downloaded_total", 1000, kind="album")
    grew("jmbooru_upstream_requests_total", site="jm", outcome="ok")
    grew("jmbooru_job_duration_seconds_count", kind="album", state="ready")
    assert value(after, "jmbooru_jobs", kind="album", state="ready") == 1
    assert value(after, "jmbooru_websockets_open", endpoint="notifications") == 1
    assert value(after, "jmbooru_archive_files") == 1 and value(after, "jmbooru_archive_bytes") > 1000
    assert value(side, "jmbooru_jobs_ended_total", kind="album", state="ready") >= 1


def test_json_logs_follow_a_job_by_request_id(tmp_path: Path, jm_double: JmDouble) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
    env.update(PYTHONPATH=str(ROOT), JMBOORU_DATA_DIR=str(tmp_path / "data"), JMBOORU_JM_API_DOMAINS=jm_double.host,
               JMBOORU_JM_IMAGE_DOMAINS=jm_double.host, JMBOORU_JM_SCHEME="http", JMBOORU_LOG_FORMAT="json",
               JMBOORU_LOG_LEVEL="info", JMBOORU_ENV_FILE=str(tmp_path / "none.env"))
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "info"],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_serving(f"http://127.0.0.1:{port}", proc, log=log)
        resp = httpx.post(f"http://127.0.0.1:{port}/v1/download/album/200001",
                          headers={"X-Request-ID": "req-from-app-42"}, json={"client_id": "phone-7"})
        assert resp.headers["x-request-id"] == "req-from-app-42"
        job_id = resp.json()["job_id"]
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/v1/jobs/{job_id}").json()["state"] == "ready",
                   timeout=30, interval=0.1, message="the job did not get ready")
        generated = httpx.get(f"http://127.0.0.1:{port}/v1/health").headers["x-request-id"]
        assert generated and generated != "req-from-app-42"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "event"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("job_id") == job_id]
    events = " | ".join(line["event"] for line in mine)
    assert "job queued" in events and "job ready" in events, events
    assert all(line.get("request_id") == "req-from-app-42" for line in mine)
    assert any(line.get("client_id") == "phone-7" for line in mine)
    access = [line for line in lines if line["logger"] == "uvicorn.access" and line.get("path", "").startswith(
        "/v1/download/album")]
    assert access and access[0]["status"] == 202 and access[0]["request_id"] == "req-from-app-42"
