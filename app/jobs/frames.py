"""The frames job WebSockets send (``/ws/jobs/{job_id}``, ``/ws/notifications/{client_id}``): one
model, ``JobFrame``, and the builders below are the only places a frame is made.

A frame is built once per event (the model checks it then) and travels as the plain dict the
model dumps: the event hub encodes that dict once per publish for every follower, and a job record
keeps its final frame as that dict. Only the keys a builder sets go out, so a frame never gains a
``null`` for a key it does not carry (an ``error`` frame has no counters, a progress frame no
``file_name``). The API's OpenAPI document describes frames with this same model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.events import Frame
from app.jobs.models import Job, JobState, iso_utc

JobStateName = Literal["queued", "running", "zipping", "ready", "failed", "cancelled", "expired"]
FrameEvent = Literal["snapshot", "started", "progress", "download_ready", "failed", "cancelled", "expired", "error"]
FinalEvent = Literal["download_ready", "failed", "cancelled", "expired"]
FINAL_EVENTS: frozenset[str] = frozenset({"download_ready", "failed", "cancelled", "expired"})
_ENDED_EVENTS = frozenset({"failed", "cancelled", "expired"})  # final, and not a download

VANISHED_MESSAGE = "This job no longer exists (the job store lost it, or it was cleaned up); start the download again."


class JobFrame(BaseModel):
    """One WebSocket frame (``/ws/jobs/{job_id}``, ``/ws/notifications/{client_id}``)."""

    # Lenient like every answer model (jmbooru adds fields, never removes them); the fields are in
    # the order a frame's keys go out.
    model_config = ConfigDict(extra="allow")

    event: FrameEvent
    status: str = Field(description="download_ready, error, or the state (the seed's clients read this)")
    job_id: str
    kind: str | None = None
    seq: int = Field(0, description="increases per job")
    state: JobStateName | None = None
    done: int = 0
    total: int = 0
    bytes: int | None = None
    title: str | None = None
    file_name: str | None = None
    download_url: str | None = None
    expires_at: str | None = None
    library_paths: list[str] | None = Field(
        None, description="download_ready of a job filed into the reader library: the books it filed")
    error: str | None = None
    message: str = ""
    album_id: str | None = Field(None, description="album jobs")
    site: str | None = Field(None, description="booru pool jobs")
    pool_id: int | None = Field(None, description="booru pool jobs")
    joined: bool = Field(False, description="a final sent again because this client asked for the same "
                                            "download (an answer, not a repeat)")


def _out(**fields: Any) -> Frame:
    """The frame's keys, checked by the model; only the keys given go out."""
    return JobFrame(**fields).model_dump(exclude_unset=True)


def _status(event: FrameEvent, state: JobState) -> str:
    """``status`` as the seed's clients read it."""
    if event == "download_ready":
        return "download_ready"
    if event in _ENDED_EVENTS:
        return "error"
    return str(state)


def job_frame(job: Job, event: FrameEvent) -> Frame:
    """An event frame carrying the job's current counters (``seq`` as the job has it)."""
    return _out(**_job_fields(job, event))


def snapshot_frame(job: Job) -> Frame:
    """The first frame of a job's socket: where the job stands now (``status`` is its state)."""
    fields = _job_fields(job, "snapshot")
    fields["status"] = str(job.state)
    if job.state == JobState.READY:
        fields.update(file_name=job.file_name, download_url=job.download_url)
    return _out(**fields)


def _job_fields(job: Job, event: FrameEvent) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event": event,
        "status": _status(event, job.state),
        "job_id": job.job_id,
        "kind": job.kind,
        "seq": job.seq,
        "state": str(job.state),
        "done": job.done,
        "total": job.total,
        "bytes": job.bytes,
        "title": job.title,
    }
    if event == "download_ready":
        fields.update(file_name=job.file_name, download_url=job.download_url, expires_at=iso_utc(job.expires_at))
        if job.library_paths:
            fields["library_paths"] = job.library_paths
    elif event in _ENDED_EVENTS:
        fields.update(file_name="", error=job.error)
    fields["message"] = job.message
    for name, value in job.spec_fields().items():
        fields.setdefault(name, value)
    return fields


def final_event(state: JobState) -> FinalEvent:
    """The final event of a job that ended in ``state``."""
    match state:
        case JobState.READY:
            return "download_ready"
        case JobState.CANCELLED:
            return "cancelled"
        case JobState.EXPIRED:
            return "expired"
        case _:
            return "failed"


def joined_frame(final: Frame) -> Frame:
    """A job's final frame sent again to a client that asked for the same download."""
    return JobFrame.model_validate({**final, "joined": True}).model_dump(exclude_unset=True)


def vanished_frame(job_id: str, seq: int) -> Frame:
    """The final frame of a job whose record is gone (the store lost it, or it was cleaned up)."""
    return _out(event="failed", status="error", job_id=job_id, seq=seq, state="failed", done=0, total=0, bytes=0,
                file_name="", error=VANISHED_MESSAGE, message=VANISHED_MESSAGE)


def error_frame(job_id: str, message: str) -> Frame:
    """The only frame of a socket for a job that cannot be followed (an unknown id)."""
    return _out(event="error", status="error", job_id=job_id, message=message)
