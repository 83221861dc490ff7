"""The request keys of trainer-ready datasets: ``exports``, ``export_options``, ``dedupe``, ``skip_variants``.

Every check raises a sentence naming the key and the bad value, so a 422 (or the CLI's exit 2) says
what to fix. Numbers are strict: ``"1024"`` or ``true`` where a number belongs is refused, not coerced.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.sources.selection import SkipVariants

EXPORT_NAMES = ("metadata_jsonl", "json_captions", "kohya_toml", "tag_frequency", "buckets")
KEEP_RULES = ("largest", "highest_score", "first")
SKIP_VARIANTS = ("none", "children", "parents")


def _whole_number(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number from {low} to {high}, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{key} is {value}; it must be from {low} to {high}")
    return value


def _one_line(key: str, value: Any, *, max_length: int | None = None) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {value!r}")
    if not value.strip():
        raise ValueError(f"{key} must not be blank")
    if "\n" in value or "\r" in value:
        raise ValueError(f"{key} {value[:40]!r} must not contain a line break")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"{key} is {len(value)} characters long; at most {max_length} are allowed")
    return value


def _known_keys(where: str, value: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in keys:
                raise ValueError(f"{where} has no key {key!r} (given {item!r}); its keys are {', '.join(keys)}")
    return value


def export_names(value: Any) -> tuple[str, ...]:
    """A list of export names (order and repeats do not matter), in the registry's order."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"exports must be a list of names ({', '.join(EXPORT_NAMES)}), not {value!r}")
    for name in value:
        if name not in EXPORT_NAMES:
            raise ValueError(f"unknown export {name!r}; choose from {', '.join(EXPORT_NAMES)}")
    return tuple(name for name in EXPORT_NAMES if name in value)


class ExportOptions(BaseModel):
    """How the exports describe the dataset (and the trigger word every caption starts with)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trigger: str | None = None
    resolution: int = 1024
    num_repeats: int = 1
    keep_tokens: int | None = None
    image_dir: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        return _known_keys("export_options", value, ("trigger", "resolution", "num_repeats", "keep_tokens", "image_dir"))

    @field_validator("trigger", mode="before")
    @classmethod
    def _trigger(cls, value: Any) -> Any:
        if value is None:
            return None
        text = _one_line("trigger", value, max_length=100)
        if "," in text:
            raise ValueError(f"trigger {text!r} must not contain a comma (it would become two caption items)")
        return text.strip()

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution(cls, value: Any) -> Any:
        number = _whole_number("resolution", value, 256, 4096)
        if number % 64:
            raise ValueError(f"resolution {number} is not a multiple of 64 (e.g. 512, 768, 1024)")
        return number

    @field_validator("num_repeats", mode="before")
    @classmethod
    def _repeats(cls, value: Any) -> Any:
        return _whole_number("num_repeats", value, 1, 1000)

    @field_validator("keep_tokens", mode="before")
    @classmethod
    def _keep_tokens(cls, value: Any) -> Any:
        return None if value is None else _whole_number("keep_tokens", value, 0, 255)

    @field_validator("image_dir", mode="before")
    @classmethod
    def _image_dir(cls, value: Any) -> Any:
        return None if value is None else _one_line("image_dir", value)

    @property
    def effective_keep_tokens(self) -> int:
        """1 with a trigger (so shuffling never moves it), else 0, unless given."""
        if self.keep_tokens is not None:
            return self.keep_tokens
        return 1 if self.trigger else 0


class DedupeOptions(BaseModel):
    """Near-duplicate removal: both Hamming distances at or below their thresholds make a duplicate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dhash: int = 8
    phash: int = 10
    keep: Literal["largest", "highest_score", "first"] = "largest"

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        return _known_keys("dedupe", value, ("dhash", "phash", "keep"))

    @field_validator("dhash", "phash", mode="before")
    @classmethod
    def _threshold(cls, value: Any, info: Any) -> Any:
        return _whole_number(f"dedupe.{info.field_name}", value, 0, 64)

    @field_validator("keep", mode="before")
    @classmethod
    def _keep(cls, value: Any) -> Any:
        if value not in KEEP_RULES:
            raise ValueError(f"dedupe.keep {value!r} is not one of {', '.join(KEEP_RULES)}")
        return value


def dedupe_value(value: Any) -> Any:
    """``true`` is ``{}``, ``false`` and ``null`` are off; anything else but an object is refused."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, dict | DedupeOptions):
        return value
    raise ValueError(f"dedupe must be true, false, null or an object with dhash, phash and keep, not {value!r}")


def skip_variants_value(value: Any) -> Any:
    if value not in SKIP_VARIANTS:
        raise ValueError(f"skip_variants {value!r} is not one of {', '.join(SKIP_VARIANTS)}")
    return value


class TrainerOptions(BaseModel):
    """The four keys a booru dataset request and job take on top of captions and filters."""

    exports: tuple[str, ...] = Field(
        (), description="extra files: " + ", ".join(EXPORT_NAMES) + " (order and repeats do not matter)",
        json_schema_extra={"type": "array", "items": {"enum": list(EXPORT_NAMES)}})
    export_options: ExportOptions = Field(default_factory=ExportOptions)
    dedupe: DedupeOptions | None = Field(
        None, description="true ({}), false or null (off), or {dhash, phash, keep}: drop near-duplicate images")
    skip_variants: SkipVariants = Field(
        "none", description="children: skip posts that have a parent; parents: skip posts that have children")

    @field_validator("exports", mode="before")
    @classmethod
    def _exports(cls, value: Any) -> Any:
        return export_names(value)

    @field_validator("dedupe", mode="before")
    @classmethod
    def _dedupe(cls, value: Any) -> Any:
        return dedupe_value(value)

    @field_validator("skip_variants", mode="before")
    @classmethod
    def _skip_variants(cls, value: Any) -> Any:
        return skip_variants_value(value)
