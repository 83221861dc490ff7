"""Settings, read once: the environment (prefix ``JMBOORU_``) wins over ``./.env``, which wins over
the user's config file (``~/.config/jmbooru/jmbooru.env`` or ``JMBOORU_ENV_FILE``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app import __version__
from app.config_files import env_files
from app.sources.booru.sites import SITES


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]
HostList = Annotated[list[str] | None, NoDecode]


PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
PROXY_ACCEPTS = ("a proxy URL (http://host:port, https://..., socks5://... or socks5h://..., "
                 "user:password@ allowed) or nothing")


def is_proxy_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return False
    return parts.scheme.lower() in PROXY_SCHEMES and bool(parts.hostname) and parts.path in ("", "/")


def mask_password(url: str) -> str:
    """A URL (a proxy, Redis) with its password replaced by ``***``, for logs and sentences."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def settings_sentence(exc: ValidationError) -> str:
    """Which variables are wrong and what each accepts, on one line (printed instead of a traceback)."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error.get("loc") else ""
        name = f"JMBOORU_{field.upper()}" if field else "a setting"
        value = error.get("input")
        shown = mask_password(value) if field == "proxy" and isinstance(value, str) else value
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "value_error":
            parts.append(f"{name} is {shown!r}, which jmbooru cannot use: it must be {message}.")
        else:
            parts.append(f"{name} is {shown!r}, which jmbooru cannot use: {message[:1].lower()}{message[1:]}.")
    return " ".join(parts) or "The settings are not valid."


_DEFAULT_FILES = Path("<jmbooru default env files>")

# Credentials a site's family takes (the registry reads them as <site>_<key>).
_FAMILY_CREDENTIALS: dict[str, tuple[str, ...]] = {"gelbooru": ("api_key", "user_id"), "danbooru": ("login", "api_key")}


def site_fields() -> dict[str, tuple[Any, Any]]:
    """The settings of every booru site of the registry, named ``<site>_<key>``, with its defaults."""
    fields: dict[str, tuple[Any, Any]] = {}
    for entry in SITES.values():
        site, name = entry.site, entry.name
        fields[f"{site}_url"] = (str, Field(entry.url, description=f"{name}'s address"))
        for key in _FAMILY_CREDENTIALS.get(entry.family, ()):
            fields[f"{site}_{key}"] = (str, Field("", description=f"{name}'s {key.replace('_', ' ')}"))
        fields[f"{site}_api_rate"] = (float, Field(entry.rate, gt=0, description=f"API requests per second to {name}"))
        fields[f"{site}_timeout_seconds"] = (float | None, Field(None, gt=0, description="overrides "
                                             "JMBOORU_BOORU_TIMEOUT_SECONDS for this site"))
        fields[f"{site}_image_hosts"] = (HostList, Field(None, description=f"where {name}'s images may come from"))
        if entry.tag_limit:
            fields[f"{site}_tag_limit"] = (int, Field(entry.tag_limit, ge=0, description="plain tags per search "
                                          "(Danbooru: 2 for anonymous and basic accounts, 6 for Gold)"))
    return fields


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JMBOORU_", env_file=_DEFAULT_FILES, env_file_encoding="utf-8", extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The files are found when the settings are read (JMBOORU_ENV_FILE may name one); an
        # explicit ``Settings(_env_file=...)`` (tests pass None) is left as given.
        if getattr(dotenv_settings, "env_file", None) == _DEFAULT_FILES:
            dotenv_settings = DotEnvSettingsSource(settings_cls, env_file=env_files(), env_file_encoding="utf-8")
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    data_dir: Path = Path("./temp")
    file_ttl_seconds: int = Field(1800, ge=1)

    # JM (through jmcomic)
    jm_api_domains: CsvList = Field(default_factory=list)
    jm_image_domains: CsvList = Field(default_factory=list)
    jm_scheme: str = "https"
    jm_retry_times: int = Field(2, ge=0)
    jm_timeout_seconds: float = Field(20.0, gt=0)
    upstream_max_retry_after_seconds: float = Field(
        120.0, ge=0, description="a job waits this long at most when an upstream says Retry-After; longer fails it")
    jm_threads: int = Field(96, ge=2, description="threads that wait on JM for reads (rank, search, info, "
                            "comments, covers): they only wait on the network, so there are many")
    jm_image_share: float = Field(0.25, gt=0, lt=1, description="at most this share of jm_threads fetches "
                                  "covers, so a slow image host cannot starve the API calls (and the reverse)")
    album_image_threads: int = Field(
        30, ge=1, le=256, description="page images an album download fetches at once (pages go straight to disk, "
        "so this costs round trips, not memory; the seed used 30)")
    album_pixel_budget_mb: int = Field(
        64, ge=1, description="megabytes of pictures being descrambled at once, across all album jobs")
    jm_username: str = Field("", description="your JM account, for favourites")
    jm_password: SecretStr = Field(SecretStr(""), description="its password (never logged or shown)")
    cache_ttl_seconds: float = Field(300.0, ge=0, description="how long rank/search/info/cover answers are cached")

    # Booru sites (app/sources/booru/registry.py). An unset *_IMAGE_HOSTS keeps the real site's CDN hosts.
    user_agent: str = Field(default_factory=lambda: f"jmbooru/{__version__}", min_length=1,
                            description="sent to every upstream; never a library default")
    proxy: str = Field("", description="one proxy URL for every upstream; empty: HTTPS_PROXY etc. are honoured")
    booru_timeout_seconds: float = Field(30.0, gt=0)

    # JMBOORU_<SITE>_URL, _API_RATE, _TIMEOUT_SECONDS, _IMAGE_HOSTS and the family's credentials, for
    # every entry of app.sources.booru.sites.SITES (a new site there gets its settings here).
    for _name, (_type, _field) in site_fields().items():
        __annotations__[_name] = _type
        locals()[_name] = _field
    del _name, _type, _field

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

    # The reader library (library.md): "dest": "library" files CBZs here; scans after each library job
    library_dir: Path | None = Field(None, description="root of a Komga/Kavita library folder tree (empty: off)")
    komga_url: str = ""
    komga_api_key: SecretStr = Field(SecretStr(""), description="a Komga API key (never logged or shown)")
    komga_library_id: str = ""
    kavita_url: str = ""
    kavita_api_key: SecretStr = Field(SecretStr(""), description="a Kavita API key (never logged or shown)")
    kavita_library_id: str = ""

    # Subscriptions (subscriptions.md)
    subscription_min_interval_seconds: float = Field(
        3600.0, gt=0, description="the smallest interval_minutes a subscription may have, in seconds")
    subscription_tick_seconds: float = Field(60.0, gt=0, description="how often due subscriptions are looked for")
    subscription_concurrency: int = Field(
        50, ge=1, description="subscription checks talking to one upstream site at once (politeness)")
    # OPDS catalog (app/outputs/opds, api.md Part 7)
    opds_wait_seconds: float = Field(60.0, ge=0, description="how long a CBZ acquisition waits for its archive "
                                     "before answering 503 with Retry-After (0: answer at once)")
    opds_cbz_type: Literal["application/vnd.comicbook+zip", "application/x-cbz"] = Field(
        "application/vnd.comicbook+zip", description="the CBZ type of every OPDS link and answer; "
        "application/x-cbz for Marvin 3 and Yomu before 3.16")

    # Where finished archives live (app/archive_store; ../shared/docs/hosts.md). "s3": in a bucket
    # every host reaches, so API processes and workers share nothing but Redis and the bucket.
    storage: Literal["local", "s3"] = Field("local", description="local: archives in <data dir>/archives; "
                                            "s3: archives in JMBOORU_S3_BUCKET")
    s3_endpoint: str = Field("", description="URL the processes use for S3 (e.g. http://minio:9000); empty: "
                             "AWS S3 in JMBOORU_S3_REGION. With an endpoint, requests are path-style")
    s3_public_endpoint: str = Field("", description="URL clients reach the bucket at, for presigned links; "
                                    "empty: JMBOORU_S3_ENDPOINT")
    s3_bucket: str = Field("", description="the bucket (required with JMBOORU_STORAGE=s3; never created)")
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = Field(SecretStr(""), description="never logged or shown")
    s3_region: str = Field("us-east-1", min_length=1)
    s3_prefix: str = Field("archives/", description="object key of an archive: <prefix><file_name>")
    s3_redirect: bool = Field(False, description="1: the file endpoints answer 307 to a presigned URL")
    s3_presign_ttl_seconds: int = Field(900, ge=1, le=7 * 24 * 3600)
    s3_part_size_mb: int = Field(8, ge=5, le=5 * 1024, description="multipart part size in MiB")
    s3_retry_seconds: float = Field(30.0, gt=0, description="how long one S3 operation is retried")


    # Serving limits (applied however the server is started; see app/serving.py)
    max_header_bytes: int = Field(32 * 1024, ge=1024, description="largest request head accepted (431 beyond)")
    header_timeout_seconds: float = Field(10.0, gt=0, description="a connection must send a complete request "
                                          "head within this time, or it is closed")
    keep_alive_seconds: int = Field(5, ge=1, description="idle keep-alive connections close after this")
    max_connections: int = Field(0, ge=0, description="0: as many as the open-file limit allows, less a reserve; "
                                 "beyond it the longest-idle connections (still sending a request, or between "
                                 "requests) are closed first; WebSockets may use nine tenths of it")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="largest request body accepted (413 beyond, "
                                "refused before it is read when Content-Length says so)")
    body_timeout_seconds: float = Field(10.0, gt=0, description="once its head is in, a request body must arrive "
                                        "within this time (408, and the connection closes)")
    max_sockets_per_client: int = Field(16, ge=1, description="open /ws/notifications sockets per client id "
                                        "(per API process); one more is closed with 1008")
    forwarded_allow_ips: str = Field("127.0.0.1", description="proxies whose X-Forwarded-* headers are trusted "
                                     "(comma-separated IPs or networks, * for any: only behind a proxy you run)")
    log_level: str = "warning"
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line")
    metrics_port: int = Field(0, ge=0, le=65535, description="0: metrics only at /metrics; a port: also there, "
                              "without the API key (workers have no other HTTP port)")
    gc_freeze: bool = Field(True, description="freeze the start-up heap out of garbage collections (shorter "
                            "pauses); off in tests, which start many apps in one process")

    @field_validator("jm_api_domains", "jm_image_domains", "cors_origins", *(f"{s}_image_hosts" for s in SITES),
                     mode="before")
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
                raise ValueError("comma-separated bare host[:port] names, like cdn.example.com:443 "
                                 f"({domain!r} is not one)")
            cleaned.append(host)
        return cleaned

    @field_validator("library_dir", mode="before")
    @classmethod
    def _optional_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("s3_endpoint", "s3_public_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"an S3 endpoint must start with http:// or https://, not {value[:40]!r}")
        return value

    @field_validator("s3_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        # Keys never start with "/" (it would be an empty path segment); "" puts archives at the top.
        value = value.strip().lstrip("/")
        if any(part in ("", ".", "..") for part in value.split("/")[:-1]):
            raise ValueError("JMBOORU_S3_PREFIX must be like 'archives/' (no empty, '.' or '..' segments)")
        return value

    @property
    def s3_signing_endpoint(self) -> str:
        """The host presigned URLs are signed for (what clients reach)."""
        return self.s3_public_endpoint or self.s3_endpoint

    @field_validator("jm_scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        value = value.lower().removesuffix("://")
        if value not in ("http", "https"):
            raise ValueError("http or https")
        return value

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str) -> str:
        value = value.strip()
        if value and not is_proxy_url(value):
            raise ValueError(PROXY_ACCEPTS)
        return value

    @field_validator(*(f"{s}_url" for s in SITES))
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("a URL starting with http:// or https://")
        return value

    @cached_property
    def data_path(self) -> Path:
        return self.data_dir.resolve()
