"""A subscription as stored and shown, the bodies that create and change one, and the schedule rules."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from app.archives.names import FormatName
from app.jobs.models import CLIENT_ID_PATTERN
from app.sources.album_archive import Layout
from app.sources.captions import CaptionOptions, PostFilters

Kind = Literal["jm_album", "jm_favorites", "booru_query"]
KINDS: tuple[str, ...] = ("jm_album", "jm_favorites", "booru_query")
Seed = Literal["latest", "all"]
Dest = Literal["archive", "library"]

JM_ONLY = ("format", "layout", "dest")
BOORU_ONLY = ("caption", "filters", "max_images")
PATCHABLE = ("name", "interval_minutes", "enabled", "client_id", "format", "layout", "caption", "filters",
             "max_images", "notify")
FIXED = ("kind", "target", "seed")
DEFAULT_INTERVAL_MINUTES = 360.0
MAX_BACKOFF_SECONDS = 24 * 3600.0
ASCII_ID = re.compile(r"^[1-9][0-9]{0,11}$")


class SubscriptionCreate(BaseModel):
    """The body of ``POST /v1/subscriptions`` (which keys apply to which kind is checked later)."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    target: dict[str, Any] | None = None
    name: str | None = Field(None, max_length=200)
    interval_minutes: float | StrictInt | None = None
    enabled: StrictBool = True
    seed: str = "latest"
    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    format: FormatName | None = None
    layout: Layout | None = None
    dest: Dest | None = None
    caption: CaptionOptions | None = None
    filters: PostFilters | None = None
    max_images: StrictInt | None = Field(None, ge=1)
    notify: list[str] = Field(default_factory=list, max_length=20)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="allow")  # kind/target/seed and unknown keys get their own sentences

    name: str | None = Field(None, max_length=200)
    interval_minutes: float | StrictInt | None = None
    enabled: StrictBool | None = None
    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    format: FormatName | None = None
    layout: Layout | None = None
    caption: CaptionOptions | None = None
    filters: PostFilters | None = None
    max_images: StrictInt | None = Field(None, ge=1)
    notify: list[str] | None = Field(None, max_length=20)


class Subscription(BaseModel):
    """One subscription with its state. Times are epoch seconds here; ``public()`` shows ISO 8601."""

    model_config = ConfigDict(extra="ignore")

    id: str
    kind: Kind
    target: dict[str, Any]
    name: str
    interval_minutes: float
    enabled: bool = True
    seed: Seed = "latest"
    client_id: str | None = None
    format: FormatName | None = None
    layout: Layout | None = None
    dest: Dest | None = None
    notify: list[str] = Field(default_factory=list)
    caption: dict[str, Any] | None = None
    filters: dict[str, Any] | None = None
    max_images: int | None = None
    created_at: float = Field(default_factory=time.time)
    last_checked_at: float | None = None
    next_check_at: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    last_new: int = 0
    last_jobs: list[str] = Field(default_factory=list)
    seen: dict[str, Any] | None = None  # None until the first check

    @property
    def interval_seconds(self) -> float:
        return self.interval_minutes * 60.0

    def schedule_next(self) -> None:
        """``next_check_at`` from the last check, the interval and the failures (subscriptions.md)."""
        if not self.enabled:
            self.next_check_at = None
            return
        base = self.last_checked_at if self.last_checked_at is not None else time.time()
        delay = self.interval_seconds
        if self.consecutive_failures > 0:
            delay = min(delay * 2 ** (self.consecutive_failures - 1), max(self.interval_seconds, MAX_BACKOFF_SECONDS))
        self.next_check_at = base + delay

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "target": self.target, "name": self.name,
            "interval_minutes": self.interval_minutes, "enabled": self.enabled, "seed": self.seed,
            "client_id": self.client_id, "format": self.format, "layout": self.layout, "dest": self.dest,
            "notify": self.notify, "created_at": iso(self.created_at), "last_checked_at": iso(self.last_checked_at),
            "next_check_at": iso(self.next_check_at), "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures, "last_new": self.last_new,
            "last_jobs": self.last_jobs, "seen": self.seen if self.seen is not None else empty_seen(self.kind),
        }
        if self.kind == "booru_query":
            data.update(caption=self.caption, filters=self.filters, max_images=self.max_images)
        return data


def empty_seen(kind: str) -> dict[str, Any]:
    if kind == "jm_album":
        return {"chapters": []}
    if kind == "jm_favorites":
        return {"albums": {}}
    return {"high_water": 0}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def first_problem(exc: ValidationError) -> str:
    """A pydantic error as one sentence naming the key."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            parts.append(f"'{where}' is not a key this endpoint takes")
            continue
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) + "."
