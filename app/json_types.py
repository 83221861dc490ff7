"""Number and boolean types for request bodies that take JSON's types as they are.

Pydantic's lax mode reads ``"5"`` and ``true`` as the integer 5 and 1, and ``"false"`` or ``0`` as a
boolean: a client bug would silently become a different download. Its strict mode refuses ``5.0``,
which JSON Schema (and so the OpenAPI document and every generated client) calls an integer. These
sit in between: an integer is a JSON number with no fraction (``5`` or ``5.0``), never a string or a
boolean; a boolean is ``true`` or ``false`` only.

Constraints go inside the ``Annotated``, before the validator (``PositiveJsonInt``): given outside,
on an optional field, pydantic leaves ``minimum`` out of the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictBool


def json_number(value: Any) -> Any:
    """``value`` if it is a JSON number (int or float, not bool); the int type then refuses fractions."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer (a number like 5, not a string or true/false)")
    return value


JsonInt = Annotated[int, BeforeValidator(json_number)]
PositiveJsonInt = Annotated[int, Field(ge=1), BeforeValidator(json_number)]
NonNegativeJsonInt = Annotated[int, Field(ge=0), BeforeValidator(json_number)]
JsonBool = StrictBool
