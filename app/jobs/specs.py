"""Job kinds as typed specs: each kind's parameters, and the dedupe key and title they imply.

An endpoint (or the CLI) builds a spec, ``JobService.submit`` stores it as the job's ``params``,
and the runner registry picks the runner by the spec's ``kind``. Nothing else looks at a kind.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.archives import FormatName
from app.sources.album_archive import Layout, options_problem
from app.sources.captions import CaptionOptions, PostFilters
from app.text import full_stop

MAX_CHAPTERS = 1000


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


class AlbumSpec(JobSpec):
    kind: ClassVar[str] = "album"

    album_id: str = Field(pattern=r"^[1-9][0-9]{0,11}$")
    format: FormatName = "zip"
    layout: Layout = "flat"
    chapters: tuple[str, ...] | None = Field(None, max_length=MAX_CHAPTERS)

    @field_validator("chapters", mode="before")
    @classmethod
    def _chapter_ids(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        ids = []
        for item in value:
            text = str(item).strip().upper().removeprefix("JM")
            if not text.isdigit() or int(text) <= 0:
                raise ValueError(f"chapter id {str(item)[:30]!r} is not a positive number (see chapters[].id in /v1/info)")
            ids.append(str(int(text)))
        if not ids:
            raise ValueError("chapters lists no chapter id: leave it out to download every chapter")
        return tuple(sorted(set(ids), key=int))  # the archive follows the album's order anyway

    @model_validator(mode="after")
    def _format_and_layout(self) -> AlbumSpec:
        problem = options_problem(self.format, self.layout)
        if problem:
            raise ValueError(problem)
        return self

    def dedupe_key(self) -> str:
        key = f"album:{self.album_id}"  # the default archive keeps the key it always had
        if self.format != "zip":
            key += f":{self.format}"
        if self.layout != "flat":
            key += f":{self.layout}"
        if self.chapters:
            key += ":c" + ",".join(self.chapters)
        return key

    def title(self) -> str:
        return f"JM{self.album_id}"

    def public_fields(self) -> dict[str, Any]:
        return {"album_id": self.album_id}

    def log_site(self) -> str:
        return "jm"


class BooruSpec(JobSpec):
    kind: ClassVar[str] = "booru"

    site: str
    tags: str
    max_images: int = Field(ge=1)
    caption: CaptionOptions = Field(default_factory=CaptionOptions)
    filters: PostFilters = Field(default_factory=PostFilters)

    def dedupe_key(self) -> str:
        digest = hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:24]
        return f"booru:{self.site}:{digest}"

    def title(self) -> str:
        return f"{self.site}: {self.tags}"

    def log_site(self) -> str:
        return self.site


SPECS: dict[str, type[JobSpec]] = {spec.kind: spec for spec in (AlbumSpec, BooruSpec)}


class UnknownJobKind(Exception):
    pass


def parse_spec(kind: str, params: dict[str, Any]) -> JobSpec:
    """The typed spec of a stored job; raises ``UnknownJobKind`` or pydantic's ``ValidationError``."""
    spec_type = SPECS.get(kind)
    if spec_type is None:
        raise UnknownJobKind(kind)
    return spec_type.model_validate(params)


def spec_problem(exc: ValidationError) -> str:
    """A pydantic error as one sentence for a 422 or a CLI message."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return full_stop("; ".join(parts))
