"""Archives in an S3-compatible bucket (MinIO, AWS S3, R2, B2) through obstore, so that API processes
and workers on different hosts share nothing but Redis and the bucket (../shared/docs/hosts.md).

Workers build an archive in their own scratch folder and upload it (multipart above one part);
any API process streams it back with ranged reads or signs a URL for the public endpoint.
Every failure to reach the bucket is ``ArchiveStoreUnavailable``, never "no such archive".
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from app.archive_store.base import ArchiveStoreSetupError, ArchiveStoreUnavailable, SignedLink, StorageMode
from app.blocking import BlockingPool
from app.config import Settings
from app.errors import NotFound

log = logging.getLogger("jmbooru.storage")

# obstore raises a missing object as FileNotFoundError (its NotFoundError at runtime).
NotFoundError = FileNotFoundError

MIB = 1024 * 1024
STREAM_CHUNK = 2 * 1024 * 1024  # handed to the socket at a time: few sends (CPU), flat memory
UPLOAD_FAILED = ("The archive could not be stored: the storage bucket did not accept the upload in time. "
                 "Start the download again in a moment.")
UNREACHABLE = "The archive storage (S3 bucket) is unreachable right now; try again in a moment."
CREDENTIALS_HINT = "JMBOORU_S3_ACCESS_KEY_ID and JMBOORU_S3_SECRET_ACCESS_KEY"


def _store(settings: Settings, endpoint: str) -> S3Store:
    retry = settings.s3_retry_seconds
    config: dict[str, Any] = {"region": settings.s3_region, "virtual_hosted_style_request": False}
    if endpoint:
        config["endpoint"] = endpoint
    if settings.s3_access_key_id or settings.s3_secret_access_key.get_secret_value():
        # Both empty: obstore reads the standard AWS sources (AWS_* variables, an instance role).
        config["access_key_id"] = settings.s3_access_key_id
        config["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    return S3Store(
        settings.s3_bucket,
        config=config,  # type: ignore[arg-type]
        client_options={
            "allow_http": True,
            "connect_timeout": timedelta(seconds=min(5.0, retry)),
            # A stalled server is noticed within the retry time; a long healthy transfer is never cut.
            "read_timeout": timedelta(seconds=max(retry, 5.0)),
            "timeout": timedelta(hours=6),
        },
        retry_config={
            "max_retries": 1000,  # bounded by the time below, not by a count
            "retry_timeout": timedelta(seconds=retry),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2),
                        "base": 2},
        },
    )


# An answer that refused the credentials: its status, or S3's error code. Never a bare "403" anywhere in
# the text: an unreachable endpoint's error names its port and how long it tried ("in 357.403112ms").
_REFUSAL = re.compile(r"\bstatus(?: code)?:?\s*40[13]\b|\b(?:AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch)\b")


def is_refusal(error_text: str) -> bool:
    """Whether an obstore error's text is the storage refusing the credentials (401/403)."""
    return _REFUSAL.search(error_text.split("Debug source", 1)[0]) is not None


class S3ArchiveStore:
    mode: StorageMode = "s3"

    def __init__(self, settings: Settings, files_pool: BlockingPool) -> None:
        if not settings.s3_bucket:
            raise ArchiveStoreSetupError("JMBOORU_STORAGE=s3 needs JMBOORU_S3_BUCKET: the name of the bucket "
                                         "that holds the archives (jmbooru never creates it).")
        self.settings = settings
        self.files_pool = files_pool
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.part_size = settings.s3_part_size_mb * MIB
        self.store = _store(settings, settings.s3_endpoint)
        # Presigned URLs carry the host they were signed for: the one clients reach.
        self.signer = _store(settings, settings.s3_signing_endpoint)

    def key(self, file_name: str) -> str:
        return f"{self.prefix}{file_name}"

    async def _call(self, what: str, call: Any) -> Any:
        """One S3 operation, bounded by the retry time plus a margin; any failure is "unreachable"."""
        try:
            return await asyncio.wait_for(call, self.settings.s3_retry_seconds + 10)
        except NotFoundError:
            raise
        except (Exception, TimeoutError) as exc:  # obstore's errors, OSError, the timeout above
            log.warning("s3 %s failed: %s: %s", what, type(exc).__name__, str(exc).split("\n", 1)[0][:300])
            raise ArchiveStoreUnavailable(UNREACHABLE) from None

    async def check(self) -> None:
        """List one key of the prefix: the bucket exists and the credentials are accepted."""
        stream = obstore.list(self.store, self.prefix or None, chunk_size=1)
        try:
            await asyncio.wait_for(anext(aiter(stream)), self.settings.s3_retry_seconds + 3)
        except StopAsyncIteration:
            return
        except (PermissionDeniedError, UnauthenticatedError):
            raise ArchiveStoreSetupError(self._refused()) from None
        except TimeoutError:
            raise ArchiveStoreSetupError(self._unreachable()) from None
        except Exception as exc:
            text = str(exc)
            if "169.254.169.254" in text or "credentials" in text.lower().split("debug source")[0]:
                raise ArchiveStoreSetupError(
                    f"No S3 credentials were found for bucket '{self.bucket}': set {CREDENTIALS_HINT} (or "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role).") from None
            if "NoSuchBucket" in text or isinstance(exc, NotFoundError):
                raise ArchiveStoreSetupError(
                    f"The S3 bucket '{self.bucket}' does not exist at {self._where()}: create it (mc mb, or "
                    "the provider's console) or fix JMBOORU_S3_BUCKET.") from None
            if is_refusal(text):
                raise ArchiveStoreSetupError(self._refused()) from None
            log.debug("s3 check failed: %s", text[:300])
            raise ArchiveStoreSetupError(self._unreachable()) from None

    def _where(self) -> str:
        return self.settings.s3_endpoint or f"AWS S3 ({self.settings.s3_region})"

    def _refused(self) -> str:
        return (f"The S3 storage at {self._where()} refused the credentials for bucket '{self.bucket}': check "
                f"{CREDENTIALS_HINT}.")

    def _unreachable(self) -> str:
        return (f"The S3 storage at {self._where()} could not be reached within "
                f"{self.settings.s3_retry_seconds:g} s: check JMBOORU_S3_ENDPOINT and that the server is running.")

    def build_path(self, file_name: str, work_dir: Path) -> Path:
        return work_dir / ".archive" / file_name

    async def put(self, file_name: str, built: Path, media_type: str, size: int) -> int:
        try:
            # Each request is retried for JMBOORU_S3_RETRY_SECONDS; parts of exactly part_size.
            await obstore.put_async(
                self.store, self.key(file_name), built, attributes={"Content-Type": media_type},
                use_multipart=size > self.part_size, chunk_size=self.part_size, max_concurrency=4,
            )
        except Exception as exc:
            log.warning("s3 upload failed file_name=%s: %s: %s", file_name, type(exc).__name__, str(exc)[:300])
            raise ArchiveStoreUnavailable(UPLOAD_FAILED) from None
        await self.files_pool.run(built.unlink, True)
        log.info("archive uploaded file_name=%s size=%d", file_name, size)
        return size

    def local_path(self, file_name: str) -> Path | None:
        return None

    async def size(self, file_name: str) -> int | None:
        try:
            meta = await self._call("head", obstore.head_async(self.store, self.key(file_name)))
        except NotFoundError:
            return None
        return int(meta["size"])

    async def read(self, file_name: str, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        if end <= start:
            return
        try:
            result = await self._call("get", obstore.get_async(self.store, self.key(file_name),
                                                              options={"range": (start, end)}))
        except NotFoundError:  # deleted (expired) between the size check and this read
            raise NotFound("The archive has expired or was deleted.") from None
        async for chunk in result.stream(min_chunk_size=STREAM_CHUNK):
            yield memoryview(chunk)  # obstore's buffer as is: no copy on the way to the socket

    async def missing(self, file_names: list[str]) -> set[str]:
        wanted = {name for name in file_names if name}
        if not wanted:
            return set(file_names) - wanted
        stored: set[str] = set()

        async def listing() -> None:
            async for batch in obstore.list(self.store, self.prefix or None, chunk_size=1000):
                stored.update(meta["path"].removeprefix(self.prefix) for meta in batch)

        await self._call("list", listing())
        return (wanted - stored) | (set(file_names) - wanted)

    async def delete(self, file_name: str) -> None:
        try:
            await self._call("delete", obstore.delete_async(self.store, self.key(file_name)))
        except NotFoundError:
            pass

    async def sign(self, file_name: str, ttl_seconds: float) -> SignedLink | None:
        seconds = max(1, int(ttl_seconds))
        now = time.time()
        try:
            url = await obstore.sign_async(self.signer, "GET", self.key(file_name), timedelta(seconds=seconds))
        except Exception as exc:
            log.warning("s3 sign failed: %s: %s", type(exc).__name__, str(exc)[:300])
            raise ArchiveStoreUnavailable(UNREACHABLE) from None
        return SignedLink(url=url, expires_at=now + seconds)

    async def usage(self) -> tuple[int, int]:
        files = nbytes = 0

        async def listing() -> None:
            nonlocal files, nbytes
            async for batch in obstore.list(self.store, self.prefix or None, chunk_size=1000):
                files += len(batch)
                nbytes += sum(meta["size"] for meta in batch)

        await self._call("list", listing())
        return files, nbytes

    async def close(self) -> None:
        return None
