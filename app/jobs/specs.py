"""What every job kind's typed spec is (``JobSpec``): its parameters, and the dedupe key and title
they imply. The kinds themselves, each a spec and a runner, are in ``app.jobs.kinds``.

An endpoint (or the CLI) builds a spec, ``JobService.submit`` stores it as the job's ``params``,
and ``KINDS`` picks the runner by the spec's ``kind``. Nothing else looks at a kind.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from app.text import full_stop

MAX_CHAPTERS = 1000
Dest = Literal["archive", "library"]
PoolFormat = Literal["cbz", "zip", "pdf", "dataset"]
LIBRARY_FORMAT_PROBLEM = ("dest 'library' files CBZ books for Komga and Kavita: leave format and layout out (or ask "
                          "for format 'cbz'), or use dest 'archive' for a {fmt}.")


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str]

    def dedupe_key(self) -> str:
        """Two requests with the same key are the same download: the second joins the first."""
        raise NotImplementedError

    def title(self) -> str:
        """What a job list shows before the upstream tells the real title."""
        raise NotImplementedError

    def public_fields(self) -> dict[str, Any]:
        """Fields that every frame and every 202 answer of such a job carry (clients read them)."""
        return {}

    def log_site(self) -> str:
        """The upstream this job talks to, for its log lines."""
        return ""


class UnknownJobKind(Exception):
    pass


def parse_spec(kind: str, params: dict[str, Any]) -> JobSpec:
    """The typed spec of a stored job; raises ``UnknownJobKind`` or pydantic's ``ValidationError``."""
    from app.jobs.kinds import KINDS  # the registry imports every kind, and each kind this module

    found = KINDS.get(kind)
    if found is None:
        raise UnknownJobKind(kind)
    return found.spec.model_validate(params)


def spec_problem(exc: ValidationError) -> str:
    """A pydantic error as one sentence for a 422 or a CLI message."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return full_stop("; ".join(parts))
