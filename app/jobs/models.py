"""Jobs and their states (the frames clients receive are built in ``app.jobs.frames``)."""

from __future__ import annotations

import secrets
import time
from copy import deepcopy
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from app.jobs.specs import JobSpec, parse_spec

_PLAIN = frozenset((str, int, float, bool, type(None)))


def _copied(value: Any) -> Any:
    """``value`` with every dict and list in it copied (a job's fields hold JSON data)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {key: _copied(item) for key, item in value.items()}
    if kind is list:
        return [_copied(item) for item in value]
    if isinstance(value, (str, int, float)):  # JobState and other enums: immutable
        return value
    return deepcopy(value)  # anything else (a tuple, a set): nothing shared, as dataclasses.asdict


class Skip(Exception):
    """Raised inside a mutation to leave the job unchanged (another process got there first)."""


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    ZIPPING = "zipping"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def active(self) -> bool:
        return self in (JobState.QUEUED, JobState.RUNNING, JobState.ZIPPING)

    @property
    def final(self) -> bool:
        return not self.active


# A client id names who hears a job's final frames (/ws/notifications/{client_id}): every endpoint
# and body that takes one (downloads, favourites, the job list, subscriptions) accepts exactly these.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"


def new_job_id() -> str:
    # 128 bits from the OS's CSPRNG, URL-safe: unguessable, and safe in a file name.
    return secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")


@dataclass
class Job:
    job_id: str
    kind: str  # a name in app.jobs.kinds.KINDS
    key: str  # what makes two requests "the same download", e.g. "album:123" (JobSpec.dedupe_key)
    params: dict[str, Any]  # the JobSpec, as JSON
    state: JobState = JobState.QUEUED
    title: str = ""
    done: int = 0
    total: int = 0
    bytes: int = 0
    file_name: str = ""
    download_name: str = ""
    error: str = ""
    message: str = ""
    client_ids: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)  # clients that received the final frame
    client_joined_at: dict[str, float] = field(default_factory=dict)  # client id -> when it last asked
    seq: int = 0
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    attempts: int = 0
    worker: str = ""
    lease_until: float | None = None
    final_frame: dict[str, Any] | None = None  # as app.jobs.frames built it
    request_id: str = ""  # the X-Request-ID of the request that created it, for its log lines
    skipped: list[dict[str, Any]] = field(default_factory=list)  # pages left out: {"post_id", "reason"}
    library_paths: list[str] = field(default_factory=list)  # books filed into the reader library

    def to_record(self) -> dict[str, Any]:
        """The job as JSON data, sharing no dict or list with the job."""
        record = {name: _copied(getattr(self, name)) for name in _FIELDS}
        record["state"] = str(self.state)
        return record

    def copy(self) -> Job:
        """An independent copy: ``Job.from_record(job.to_record())`` without the round trip.

        The job store hands out and changes copies (copy on write), several for every change of a
        job, so this is on the event loop's path for every frame: ~10× faster than
        ``dataclasses.asdict``, which inspects every value it copies.
        """
        return Job(**{name: _copied(getattr(self, name)) for name in _FIELDS})

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        known["state"] = JobState(known.get("state", "queued"))
        return cls(**known)

    @property
    def spec(self) -> JobSpec:
        """The typed parameters; raises if the record holds a kind or parameters this code does not know."""
        return parse_spec(self.kind, self.params)

    def spec_fields(self) -> dict[str, Any]:
        """What the job's kind adds to every frame and answer (e.g. ``album_id``)."""
        try:
            return self.spec.public_fields()
        except Exception:  # a record written by another version: frames still go out
            return {}

    @classmethod
    def for_spec(cls, spec: JobSpec, job_id: str, **fields: Any) -> Job:
        return cls(job_id=job_id, kind=spec.kind, key=spec.dedupe_key(), params=spec.model_dump(mode="json"),
                   title=spec.title(), **fields)

    @property
    def download_url(self) -> str:
        return f"/v1/jobs/{self.job_id}/file" if self.state == JobState.READY and self.file_name else ""

    def public(self) -> dict[str, Any]:
        """The job as ``GET /v1/jobs/{id}`` shows it."""
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "state": str(self.state),
            "title": self.title,
            "done": self.done,
            "total": self.total,
            "bytes": self.bytes,
            "file_name": self.file_name if self.state == JobState.READY else "",
            "download_url": self.download_url,
            "error": self.error,
            "message": self.message,
            "params": self.params,
            "attempts": self.attempts,
            "worker": self.worker,
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "finished_at": iso_utc(self.finished_at),
            "expires_at": iso_utc(self.expires_at),
            "status_url": f"/v1/jobs/{self.job_id}",
            "events_url": f"/ws/jobs/{self.job_id}",
            "skipped": self.skipped,
            "library_paths": self.library_paths,
        }


_FIELDS = tuple(f.name for f in fields(Job))


def iso_utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))

