"""An archive format's name as a request field: checked against ``FORMATS`` and documented as an enum
of its names (a module of its own, so that the registry itself loads without pydantic)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from app.archives import FORMATS


def _known_format(name: str) -> str:
    if name not in FORMATS:
        raise ValueError(f"unknown format {name[:20]!r}; choose one of {', '.join(repr(f) for f in FORMATS)}")
    return name


FormatName = Annotated[str, AfterValidator(_known_format), WithJsonSchema({"type": "string", "enum": list(FORMATS)})]
