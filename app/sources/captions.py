"""Stable Diffusion (kohya-ss) caption text from booru tags, and the post filters of a booru job."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.json_types import JsonBool, JsonInt, NonNegativeJsonInt

CATEGORIES = ("general", "artist", "copyright", "character", "metadata", "deprecated")
RATINGS = ("general", "sensitive", "questionable", "explicit")
_CATEGORY_ALIASES = {"meta": "metadata", "characters": "character", "artists": "artist", "copyrights": "copyright"}
# Old Gelbooru ratings and one-letter forms, as users type them.
_RATING_ALIASES = {"g": "general", "safe": "general", "s": "sensitive", "q": "questionable", "e": "explicit"}


def _words(value: Any) -> Any:
    """Accept "a,b c" as well as ["a", "b"]."""
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value


class CaptionOptions(BaseModel):
    """How tags become a caption: the defaults are what SD dataset tools expect."""

    model_config = ConfigDict(extra="forbid")

    remove_underscore: JsonBool = Field(default=True, description="'_' becomes a space, except in tags of 3 characters or fewer (^_^)")
    escape_parentheses: JsonBool = Field(default=True, description=r"'(' and ')' become '\(' and '\)'")
    separator: str = Field(default=", ", max_length=16)
    category_order: list[str] | None = Field(
        default=None, description="e.g. character, copyright, artist, general, metadata; null keeps the site's order",
        json_schema_extra={"items": {"enum": [*CATEGORIES, *_CATEGORY_ALIASES]}},
    )
    drop_categories: list[str] = Field(default_factory=list,
                                       json_schema_extra={"items": {"enum": [*CATEGORIES, *_CATEGORY_ALIASES]}})

    @field_validator("category_order", "drop_categories", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _words(value)

    @field_validator("category_order", "drop_categories")
    @classmethod
    def _known_categories(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = []
        for name in value:
            key = _CATEGORY_ALIASES.get(name.strip().lower(), name.strip().lower())
            if key not in CATEGORIES:
                raise ValueError(f"unknown tag category {name!r}; choose from {', '.join(CATEGORIES)}")
            if key not in cleaned:
                cleaned.append(key)
        return cleaned

    @property
    def needs_categories(self) -> bool:
        return bool(self.category_order) or bool(self.drop_categories)


class _PostLike(Protocol):
    tags: list[str]
    rating: str
    score: int
    width: int
    height: int


class PostFilters(BaseModel):
    """Which posts a booru job keeps. Unset fields keep everything."""

    model_config = ConfigDict(extra="forbid")

    rating: list[str] | None = Field(
        default=None, description="allowed ratings: general, sensitive, questionable, explicit",
        json_schema_extra={"items": {"enum": [*RATINGS, *_RATING_ALIASES]}},
    )
    # Strict: "768" or true is not a size (JSON clients send numbers; the CLI parses its own).
    min_width: NonNegativeJsonInt | None = None
    min_height: NonNegativeJsonInt | None = None
    min_score: JsonInt | None = None
    blacklist: list[str] = Field(default_factory=list, description="posts with any of these tags are skipped (* wildcards)")

    @field_validator("rating", "blacklist", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _words(value)

    @field_validator("rating")
    @classmethod
    def _known_ratings(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = []
        for name in value:
            key = _RATING_ALIASES.get(name.strip().lower(), name.strip().lower())
            if key not in RATINGS:
                raise ValueError(f"unknown rating {name!r}; choose from {', '.join(RATINGS)}")
            if key not in cleaned:
                cleaned.append(key)
        return cleaned

    @field_validator("blacklist")
    @classmethod
    def _tag_names(cls, value: list[str]) -> list[str]:
        # users write "long hair" as often as "long_hair"
        return [tag.strip().lower().replace(" ", "_") for tag in value if tag.strip()]

    def matches(self, post: _PostLike) -> bool:
        if self.rating is not None and post.rating not in self.rating:
            return False
        if self.min_width is not None and post.width < self.min_width:
            return False
        if self.min_height is not None and post.height < self.min_height:
            return False
        if self.min_score is not None and post.score < self.min_score:
            return False
        if self.blacklist:
            tags = {tag.lower() for tag in post.tags}
            for banned in self.blacklist:
                if "*" in banned:
                    if any(fnmatchcase(tag, banned) for tag in tags):
                        return False
                elif banned in tags:
                    return False
        return True


def format_tag(tag: str, options: CaptionOptions) -> str:
    if options.remove_underscore and len(tag) > 3:
        tag = tag.replace("_", " ")
    if options.escape_parentheses:
        tag = tag.replace("(", r"\(").replace(")", r"\)")
    return tag


def build_caption(tags: list[str], options: CaptionOptions | None = None, categories: dict[str, str] | None = None) -> str:
    """The caption line for one post. Tags the site did not categorise count as general."""
    options = options or CaptionOptions()
    categories = categories or {}
    kept = [tag for tag in tags if categories.get(tag, "general") not in options.drop_categories]
    if options.category_order:
        rank = {name: i for i, name in enumerate(options.category_order)}
        # sorted() is stable: within a category (and for unlisted ones, placed last) the site's order stays
        kept = sorted(kept, key=lambda tag: rank.get(categories.get(tag, "general"), len(rank)))
    return options.separator.join(format_tag(tag, options) for tag in dict.fromkeys(kept))
