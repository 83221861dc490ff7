"""Job kinds as typed specs: each kind's parameters, and the dedupe key and title they imply.

An endpoint (or the CLI) builds a spec, ``JobService.submit`` stores it as the job's ``params``,
and the runner registry picks the runner by the spec's ``kind``. Nothing else looks at a kind.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.archives.names import FormatName
from app.outputs.exports.options import ExportOptions, TrainerOptions
from app.sources.album_archive import Layout, options_problem
from app.sources.captions import CaptionOptions, PostFilters
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


class AlbumSpec(JobSpec):
    kind: ClassVar[str] = "album"

    album_id: str = Field(pattern=r"^[1-9][0-9]{0,11}$")
    format: FormatName = "zip"
    layout: Layout = "flat"
    chapters: tuple[str, ...] | None = Field(None, max_length=MAX_CHAPTERS)
    dest: Dest = "archive"

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
            if not (text.isascii() and text.isdigit()) or int(text) <= 0:  # "١٢" is no chapter id
                raise ValueError(f"chapter id {str(item)[:30]!r} is not a positive number (see chapters[].id in /v1/info)")
            ids.append(str(int(text)))
        if not ids:
            raise ValueError("chapters lists no chapter id: leave it out to download every chapter")
        return tuple(sorted(set(ids), key=int))  # the archive follows the album's order anyway

    @model_validator(mode="before")
    @classmethod
    def _library_is_cbz(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("dest") == "library":
            fmt, layout = data.get("format"), data.get("layout")
            if fmt not in (None, "cbz") or layout not in (None, "flat"):
                raise ValueError(LIBRARY_FORMAT_PROBLEM.format(fmt=fmt or layout))
            data = {**data, "format": "cbz"}
        return data

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
        if self.dest == "library":
            key += ":library"
        return key

    def title(self) -> str:
        return f"JM{self.album_id}"

    def public_fields(self) -> dict[str, Any]:
        return {"album_id": self.album_id}

    def log_site(self) -> str:
        return "jm"


class BooruSpec(JobSpec, TrainerOptions):
    kind: ClassVar[str] = "booru"

    site: str
    tags: str
    max_images: int = Field(ge=1)
    caption: CaptionOptions = Field(default_factory=CaptionOptions)
    filters: PostFilters = Field(default_factory=PostFilters)
    def dedupe_key(self) -> str:
        fields = self.model_dump(mode="json", exclude_defaults=False)
        for key, default in (("exports", []), ("export_options", ExportOptions().model_dump(mode="json")),
                             ("dedupe", None), ("skip_variants", "none")):
            if fields[key] == default:  # trainer options left at their defaults: keys of jobs that existed before these options stay the same
                del fields[key]
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
        return f"booru:{self.site}:{digest}"

    def title(self) -> str:
        return f"{self.site}: {self.tags}"

    def log_site(self) -> str:
        return self.site


class PoolSpec(JobSpec):
    """A booru pool as one book (library.md): its posts' original files in pool order."""

    kind: ClassVar[str] = "pool"

    site: str
    pool_id: int = Field(ge=1, le=2**31)
    format: PoolFormat = "cbz"
    caption: CaptionOptions = Field(default_factory=CaptionOptions)
    dest: Dest = "archive"

    @model_validator(mode="after")
    def _library_is_cbz(self) -> PoolSpec:
        if self.dest == "library" and self.format != "cbz":
            raise ValueError(LIBRARY_FORMAT_PROBLEM.format(fmt=self.format))
        return self

    def dedupe_key(self) -> str:
        key = f"pool:{self.site}:{self.pool_id}:{self.format}"
        if self.format == "dataset":
            key += ":" + hashlib.sha256(self.caption.model_dump_json().encode()).hexdigest()[:12]
        if self.dest == "library":
            key += ":library"
        return key

    def title(self) -> str:
        return f"{self.site} pool {self.pool_id}"

    def public_fields(self) -> dict[str, Any]:
        return {"site": self.site, "pool_id": self.pool_id}

    def log_site(self) -> str:
        return self.site


SPECS: dict[str, type[JobSpec]] = {spec.kind: spec for spec in (AlbumSpec, BooruSpec, PoolSpec)}


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
