"""The shared job list: which jobs a page holds, newest first, and the cursor to the next page."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from app.errors import Unprocessable
from app.jobs.models import Job, JobState

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# "<created_at>_<job_id>": every string of this shape is a valid place to start a page from.
CURSOR_PATTERN = r"(?P<created>[0-9]{1,12}(?:\.[0-9]{1,12})?)_(?P<job_id>[A-Za-z0-9]{1,64})"
CURSOR_SCHEMA_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,12})?_[A-Za-z0-9]{1,64}$"  # the same, for OpenAPI
STATE_NAMES = ("queued", "running", "zipping", "ready", "failed", "cancelled", "expired")
STATES_PATTERN = rf"^ *({'|'.join(STATE_NAMES)}) *(, *({'|'.join(STATE_NAMES)}) *)*$"


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last job shown (jobs are ordered by (created_at, job_id), newest first)."""

    created_at: float
    job_id: str

    def encode(self) -> str:
        # repr() round-trips a float exactly, so no job is skipped or shown twice across pages.
        return f"{self.created_at!r}_{self.job_id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        found = re.fullmatch(CURSOR_PATTERN, text)
        if found is None:
            raise Unprocessable(
                "before is not a cursor this server gave: pass the 'next' value of the previous page as it was."
            )
        return cls(float(found["created"]), found["job_id"])

    @classmethod
    def after(cls, job: Job) -> Cursor:
        return cls(job.created_at, job.job_id)


@dataclass(frozen=True)
class JobQuery:
    """One page of the job list: filters, size and where to start."""

    client_id: str | None = None
    states: frozenset[JobState] | None = None
    limit: int = DEFAULT_LIMIT
    before: Cursor | None = None

    def matches(self, job: Job) -> bool:
        if self.client_id is not None and self.client_id not in job.client_ids:
            return False
        if self.states is not None and job.state not in self.states:
            return False
        return self.before is None or order_key(job) < (self.before.created_at, self.before.job_id)


def order_key(job: Job) -> tuple[float, str]:
    return (job.created_at, job.job_id)


def parse_states(text: str | None) -> frozenset[JobState] | None:
    """``queued,running`` as states; an unknown word is a 422 naming the states there are."""
    if text is None:
        return None
    words = [w.strip() for w in text.split(",")]
    if re.fullmatch(STATES_PATTERN, text) is None:
        wrong = next((w for w in words if w not in STATE_NAMES), text)
        raise Unprocessable(
            f"state '{wrong[:40]}' is not a job state: use one or more of {', '.join(STATE_NAMES)}, "
            "separated by commas."
        )
    return frozenset(JobState(w) for w in words)


def parse_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise Unprocessable(f"limit is {limit}: ask for between 1 and {MAX_LIMIT} jobs a page.")
    return limit


def newest_page(jobs: Iterable[Job], query: JobQuery) -> list[Job]:
    """Up to ``limit + 1`` matching jobs, newest first (the extra one says there is a next page)."""
    matching = sorted((j for j in jobs if query.matches(j)), key=order_key, reverse=True)
    return matching[:query.limit + 1]


def page_and_cursor(jobs: list[Job], limit: int) -> tuple[list[Job], str | None]:
    """Cut a ``limit + 1`` list to the page and the cursor to what follows (None at the end)."""
    if len(jobs) <= limit:
        return jobs, None
    page = jobs[:limit]
    return page, Cursor.after(page[-1]).encode()


def waiting_message(position: int) -> str:
    if position <= 1:
        return "Waiting: next to start."
    ahead = position - 1
    return f"Waiting: {ahead} download{'s' if ahead != 1 else ''} ahead."
