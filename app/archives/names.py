"""An archive format's name as a request field: checked against ``FORMATS`` and documented as an enum
of its names (a module of its own, so that the registry itself loads without pydantic).

Both are read from the registry when used, not when this module is imported, so a format registered
later (a module imported after the API's models) is accepted and documented like the built-in ones.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.archives import FORMATS


def _known_format(name: str) -> str:
    if name not in FORMATS:
        raise ValueError(f"unknown format {name[:20]!r}; choose one of {', '.join(repr(f) for f in FORMATS)}")
    return name


class _FormatEnum:
    """The JSON schema of a format name: a string, one of the registered formats."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema: dict[str, Any] = handler(core_schema)
        schema["enum"] = list(FORMATS)
        return schema


FormatName = Annotated[str, AfterValidator(_known_format), _FormatEnum()]
