"""Settings, read once from the environment (prefix ``JMBOORU_``) and ``.env``."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JMBOORU_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("./temp")
    file_ttl_seconds: int = Field(1800, ge=1)

    # JM (through jmcomic)
    jm_api_domains: CsvList = Field(default_factory=list)
    jm_image_domains: CsvList = Field(default_factory=list)
    jm_scheme: str = "https"
    jm_retry_times: int = Field(2, ge=0)
    jm_timeout_seconds: float = Field(20.0, gt=0)
    jm_threads: int = Field(8, ge=1, description="size of the pool that runs jmcomic's blocking calls")
    album_image_threads: int = Field(
        30, ge=1, le=256, description="page images an album download fetches at once (pages go straight to disk, "
        "so this costs round trips, not memory; the seed used 30)")
    album_pixel_budget_mb: int = Field(
        64, ge=1, description="megabytes of pictures being descrambled at once, across all album jobs")
    jm_username: str = Field("", description="your JM account, for favourites")
    jm_password: SecretStr = Field(SecretStr(""), description="its password (never logged or shown)")
    cache_ttl_seconds: float = Field(300.0, ge=0, description="how long rank/search/info/cover answers are cached")

    # Gelbooru
    gelbooru_url: str = "https://gelbooru.com"
    gelbooru_api_key: str = ""
    gelbooru_user_id: str = ""
    gelbooru_api_rate: float = Field(2.0, gt=0)
    gelbooru_timeout_seconds: float = Field(30.0, gt=0)

    # Jobs
    redis_url: str = ""
    api_key: str = ""
    max_concurrent_jobs: int = Field(2, ge=1)
    max_images_per_job: int = Field(5000, ge=1)
    download_workers: int = Field(8, ge=1)
    shutdown_grace_seconds: float = Field(5.0, ge=0)
    cleanup_interval_seconds: float = Field(30.0, gt=0)
    job_lease_seconds: float = Field(30.0, gt=0)
    notify_replay_grace_seconds: float = Field(
        3.0, ge=0, description="finals a client missed are replayed this long after its socket opens, "
        "after the finals of the jobs it starts meanwhile (one-frame clients read only their own)")

    cors_origins: CsvList = Field(default_factory=lambda: ["*"])
    log_level: str = "warning"

    @field_validator("jm_api_domains", "jm_image_domains", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("jm_api_domains", "jm_image_domains")
    @classmethod
    def _bare_hosts(cls, value: list[str]) -> list[str]:
        # jmcomic builds URLs as PROT + domain + path, so a scheme or a path would break every request.
        cleaned = []
        for domain in value:
            host = domain.split("://", 1)[-1].strip("/")
            if not host or "/" in host:
                raise ValueError(f"JM domain {domain!r} must be a bare host[:port], like cdn.example.com:443")
            cleaned.append(host)
        return cleaned

    @field_validator("jm_scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        value = value.lower().removesuffix("://")
        if value not in ("http", "https"):
            raise ValueError("JMBOORU_JM_SCHEME must be http or https")
        return value

    @field_validator("gelbooru_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return value.rstrip("/")

    @cached_property
    def data_path(self) -> Path:
        return self.data_dir.resolve()
