"""Prometheus metrics: one registry per process, exposed at ``GET /metrics`` (behind the API key
when one is set) and, with ``JMBOORU_METRICS_PORT``, on a port of their own (workers too).

Counters are bumped where things happen (requests, upstream calls, job ends, sockets); gauges of
the current state (jobs by state, archive bytes on disk) are read when the metrics are scraped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app import upstream_counts

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter("jmbooru_http_requests_total", "HTTP requests answered, by route template and status",
                        ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("jmbooru_http_request_duration_seconds", "Time to answer, by route template",
                         ["method", "route"], registry=REGISTRY,
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
WEBSOCKETS_OPEN = Gauge("jmbooru_websockets_open", "WebSockets open now, by endpoint", ["endpoint"],
                        registry=REGISTRY)
JOBS = Gauge("jmbooru_jobs", "Jobs known to the store, by kind and state", ["kind", "state"], registry=REGISTRY)
JOBS_ENDED = Counter("jmbooru_jobs_ended_total", "Jobs that ended (in this process), by kind and final state",
                     ["kind", "state"], registry=REGISTRY)
JOB_DURATION = Histogram("jmbooru_job_duration_seconds", "From start to end of a job, by kind and final state",
                         ["kind", "state"], registry=REGISTRY,
                         buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
FILES_DOWNLOADED = Counter("jmbooru_files_downloaded_total", "Pages and images of jobs that ended, by kind",
                           ["kind"], registry=REGISTRY)
BYTES_DOWNLOADED = Counter("jmbooru_bytes_downloaded_total", "Bytes of pages and images of jobs that ended, by kind",
                           ["kind"], registry=REGISTRY)
UPSTREAM_REQUESTS = Counter("jmbooru_upstream_requests_total",
                            "Calls to upstream sites, by site and outcome (ok, or the HTTP status / error class)",
                            ["site", "outcome"], registry=REGISTRY)
UPSTREAM_RETRIES = Counter("jmbooru_upstream_retries_total", "Upstream calls tried again (after a failure or a "
                           "Retry-After), by site", ["site"], registry=REGISTRY)
ARCHIVE_BYTES = Gauge("jmbooru_archive_bytes", "Bytes of finished archives on disk", registry=REGISTRY)
ARCHIVE_FILES = Gauge("jmbooru_archive_files", "Finished archives on disk", registry=REGISTRY)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def upstream(site: str, outcome: str | int) -> None:
    UPSTREAM_REQUESTS.labels(site=site, outcome=str(outcome)).inc()


def retried(site: str) -> None:
    UPSTREAM_RETRIES.labels(site=site).inc()


# The sources count through app.upstream_counts, which counts nothing until this module is loaded.
upstream_counts.install(upstream, retried)


def job_ended(kind: str, state: str, started_at: float | None, finished_at: float | None, files: int,
              nbytes: int) -> None:
    JOBS_ENDED.labels(kind=kind, state=state).inc()
    if started_at and finished_at:
        JOB_DURATION.labels(kind=kind, state=state).observe(max(0.0, finished_at - started_at))
    if files:
        FILES_DOWNLOADED.labels(kind=kind).inc(files)
    if nbytes:
        BYTES_DOWNLOADED.labels(kind=kind).inc(nbytes)


def set_job_counts(jobs: Iterable[Any]) -> None:
    counts: dict[tuple[str, str], int] = {}
    for job in jobs:
        key = (str(job.kind), str(job.state))
        counts[key] = counts.get(key, 0) + 1
    JOBS.clear()
    for (kind, state), n in counts.items():
        JOBS.labels(kind=kind, state=state).set(n)


def set_archives(files: int, nbytes: int) -> None:
    ARCHIVE_FILES.set(files)
    ARCHIVE_BYTES.set(nbytes)


def render() -> bytes:
    return generate_latest(REGISTRY)
