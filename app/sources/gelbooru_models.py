"""What Gelbooru sends, made safe: posts and pages that tolerate every missing or mistyped field,
HTML-escaped tags, string booleans; and the credentials Gelbooru requires, validated."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urljoin

from app.errors import Unprocessable, UpstreamError

CREDENTIALS_HINT = (
    "set JMBOORU_GELBOORU_API_KEY and JMBOORU_GELBOORU_USER_ID (or pass --api-key and --user-id); "
    "both are shown on your Gelbooru account options page"
)


class GelbooruCredentialsError(UpstreamError):
    """Gelbooru needs credentials that are missing or were refused (502: not the API client's fault)."""

    default_detail = f"Gelbooru refused the credentials: {CREDENTIALS_HINT}."


# --- models -------------------------------------------------------------------------------------


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError):
        return default


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def as_str(value: Any) -> str:
    return "" if value is None else str(value)


def split_tags(value: Any) -> list[str]:
    """Tags as plain strings: Gelbooru sends one HTML-escaped, space-separated string."""
    if isinstance(value, list | tuple):
        value = " ".join(as_str(v) for v in value)
    return [html.unescape(tag) for tag in as_str(value).split()]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]  # a single object where a list was expected


@dataclass(slots=True)
class Post:
    id: int = 0
    md5: str = ""
    file_url: str = ""
    preview_url: str = ""
    sample_url: str = ""
    image: str = ""
    directory: str = ""
    tags: list[str] = field(default_factory=list)
    rating: str = ""
    score: int = 0
    width: int = 0
    height: int = 0
    source: str = ""
    parent_id: int = 0
    created_at: str = ""
    status: str = ""
    has_notes: bool = False
    has_comments: bool = False
    has_children: bool = False

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], base_url: str = "") -> Post:
        def url(key: str) -> str:
            value = as_str(raw.get(key)).strip()
            return urljoin(base_url + "/", value) if value and base_url else value

        return cls(
            id=as_int(raw.get("id")),
            md5=as_str(raw.get("md5")).strip().lower(),
            file_url=url("file_url"),
            preview_url=url("preview_url"),
            sample_url=url("sample_url"),
            image=as_str(raw.get("image")),
            directory=as_str(raw.get("directory")),
            tags=split_tags(raw.get("tags")),
            rating=as_str(raw.get("rating")).strip().lower(),
            score=as_int(raw.get("score")),
            width=as_int(raw.get("width")),
            height=as_int(raw.get("height")),
            source=html.unescape(as_str(raw.get("source"))),
            parent_id=as_int(raw.get("parent_id")),
            created_at=as_str(raw.get("created_at")),
            status=as_str(raw.get("status")),
            has_notes=as_bool(raw.get("has_notes")),
            has_comments=as_bool(raw.get("has_comments")),
            has_children=as_bool(raw.get("has_children")),
        )


@dataclass(slots=True)
class PostPage:
    count: int
    posts: list[Post]
    offset: int = 0


@dataclass(slots=True, frozen=True)
class ImageDownload:
    md5: str
    size: int


# --- credentials --------------------------------------------------------------------------------


def parse_credentials(api_key: str | None, user_id: str | int | None) -> tuple[str, str]:
    """Clean up what users paste: the whole ``&api_key=...&user_id=...`` string is accepted.

    Raises ``Unprocessable`` for a user id that is not a number (usually the user name).
    """
    key, uid = as_str(api_key).strip(), as_str(user_id).strip()
    pasted: dict[str, str] = {}
    for value in (key, uid):
        if "api_key=" in value or "user_id=" in value:
            query = value.split("?", 1)[1] if "?" in value else value
            for name, values in parse_qs(query.lstrip("&"), keep_blank_values=True).items():
                if name in ("api_key", "user_id") and values:
                    pasted[name] = values[-1].strip()
    if pasted:
        if "api_key=" in uid or "user_id=" in uid or not uid:
            uid = pasted.get("user_id", "" if "user_id=" in uid else uid)
        elif pasted.get("user_id") and pasted["user_id"] != uid:
            raise Unprocessable(
                "The pasted Gelbooru credentials name a different user id than the one given separately; "
                "give the user id once (JMBOORU_GELBOORU_USER_ID or --user-id)."
            )
        key = pasted.get("api_key", "") if ("api_key=" in key or "user_id=" in key or not key) else key
    if key and not re.fullmatch(r"[A-Za-z0-9_\-]+", key):
        raise Unprocessable(
            "The Gelbooru API key should be letters and digits only; copy just the api_key value "
            "(or the whole '&api_key=...&user_id=...' line) into JMBOORU_GELBOORU_API_KEY or --api-key."
        )
    if uid and not uid.isdigit():
        raise Unprocessable(
            "Gelbooru needs the numeric user id, not the user name: copy the number after 'user_id=' "
            "from your Gelbooru account options page into JMBOORU_GELBOORU_USER_ID (or --user-id), "
            "and the api_key value into JMBOORU_GELBOORU_API_KEY (or --api-key)."
        )
    return key, uid


