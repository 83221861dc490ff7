"""What booru sites send, made safe: every field may be missing, mistyped or hostile.

A number may arrive as ``"12"``, ``12.0``, ``"1e400"``, ``"nan"``, ``true`` or a list; a string may
arrive as a number, a list or an object. None of these may crash a search: each reader returns a
sensible default instead.
"""

from __future__ import annotations

import html
import math
import unicodedata
from typing import Any

# Whitespace, controls and invisible format characters (U+200B zero width space, U+2060 word joiner,
# U+FEFF byte order mark, ...): a tag made only of these is no tag.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: empty, whitespace, or invisible characters only."""
    return all(char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in text)


def visible_words(text: str) -> list[str]:
    """The whitespace-separated words of ``text``, without words made only of invisible characters."""
    return [word for word in text.split() if not is_blank(word)]


# Larger ids, scores or sizes are nonsense from a booru; clamping keeps them usable as JSON numbers
# everywhere (JavaScript clients, SQLite) instead of failing later and further away.
INT_LIMIT = 2**53 - 1


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float | str):
        try:
            parsed = float(value.strip() if isinstance(value, str) else value)
        except ValueError:
            return default
        if not math.isfinite(parsed):
            return default
        number = int(parsed)
    else:
        return default
    return max(-INT_LIMIT, min(INT_LIMIT, number))


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "t")
    if isinstance(value, bool | int | float):
        return bool(value)
    return False


def as_str(value: Any) -> str:
    """A scalar as text; a list or an object (where a string was expected) as nothing."""
    if value is None or isinstance(value, list | dict | tuple):
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return str(value)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]  # a single object where a list was expected


def split_tags(value: Any, *, unescape: bool = True) -> list[str]:
    """Tags as plain strings from one space-separated string (HTML-escaped on Gelbooru sites)."""
    if isinstance(value, list | tuple):
        value = " ".join(as_str(v) for v in value)
    tags = as_str(value).split()
    return [html.unescape(tag) for tag in tags] if unescape else tags


def as_md5(value: Any) -> str:
    return as_str(value).strip().lower()
