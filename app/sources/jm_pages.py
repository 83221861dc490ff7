"""Page images straight to disk, and a byte budget for the pages being descrambled.

jmcomic reads every page body into memory (curl buffers it whole) before saving it, so its
memory grows with page size × image threads. Here a page that needs no descrambling goes to its
file chunk by chunk as it arrives, and one that does is held in memory only up to 1 MB (a typical
JM page; larger ones spill to a temporary file), which makes the number of image threads a
question of round trips only. The page-sized memory left is descrambling itself (Pillow holds
the picture twice while it moves the strips): ``PixelBudget`` bounds the bytes of pictures being
descrambled at once, across every album download of the process.

jmcomic also sets up a new curl session (and connection) for every image; ``SessionPool`` keeps
idle sessions, so a page reuses a kept-alive connection to the image host and skips that set-up.
Both are owned by ``PageFetching``, one per process (the jobs' Engine, or the CLI).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from curl_cffi.requests import exceptions as curl_errors
from jmcomic import JmImageTool

from app import upstream_counts
from app.sources.jm_counting import IMAGES, counted

IN_MEMORY_BODY = 1024 * 1024  # a scrambled page up to this size is descrambled without touching the disk


class PageFetchError(Exception):
    """A page image could not be fetched (the status and URL are for the log, not for users).

    ``response`` is the HTTP answer, so that ``translate_error`` can tell a 429 with its
    Retry-After, a 5xx or a Cloudflare page apart."""

    def __init__(self, message: str, response: Any = None) -> None:
        super().__init__(message)
        self.response = response


class PixelBudget:
    """At most ``limit`` bytes of decoded pictures in memory at once; a larger picture waits until
    it is alone (it still passes: a budget must not block a page for ever)."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = max(1, limit_bytes)
        self._used = 0
        self._cond = threading.Condition()
        self.peak = 0  # the most ever held at once (for tests and benchmarks)

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        want = min(max(1, nbytes), self.limit)
        with self._cond:
            while self._used and self._used + want > self.limit:
                self._cond.wait()
            self._used += want
            self.peak = max(self.peak, self._used)
        try:
            yield
        finally:
            with self._cond:
                self._used -= want
                self._cond.notify_all()


class SessionPool:
    """Idle curl sessions for page images; a session serves one request at a time."""

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.created = 0

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        from curl_cffi import requests

        with self._lock:
            session = self._idle.pop() if self._idle else None
            if session is None:
                self.created += 1
        if session is None:
            # One curl handle per session, not one per thread (curl_cffi's default): jmcomic starts
            # new image threads for every chapter, so a thread-local handle, and its connection, would
            # be made anew by each and closed when it ends, while the job waits for those threads.
            session = requests.Session(use_thread_local_curl=False)
        try:
            yield session
        except BaseException:
            session.close()  # its connection may be half-way through a response
            raise
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(session)
                return
        session.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()


class PageFetching:
    """What page downloads share in one process: the descrambling budget and the curl sessions."""

    def __init__(self, pixel_budget_bytes: int, keep_sessions: int = 64) -> None:
        self.pixels = PixelBudget(pixel_budget_bytes)
        self.sessions = SessionPool(keep_sessions)

    def close(self) -> None:
        self.sessions.close()


def fetch(client: Any, sessions: SessionPool, url: str, open_sink: Callable[[], IO[bytes]]) -> IO[bytes]:
    """GET ``url`` as jmcomic would (its image headers, proxies, impersonation, timeout), writing the
    body into a fresh ``open_sink()`` as it arrives; the same number of attempts as jmcomic
    (``retry_times + 1``). Returns the sink, open."""
    kwargs: dict[str, Any] = {}
    client.update_request_with_specify_domain(kwargs, None, True)  # jmcomic's headers for images
    merge = getattr(client.postman, "merge_kwargs", None)  # jmcomic's per-request postman: its settings
    error: Exception = PageFetchError(f"no attempt made for {url}")
    for attempt in range(int(client.retry_times) + 1):
        if attempt:
            upstream_counts.retried(IMAGES)
        sink = open_sink()
        try:
            if merge is None:  # a session postman: it counts the request itself (jm_counting)
                resp = client.postman.get(url, content_callback=sink.write, **kwargs)
            else:
                with sessions.session() as session:
                    resp = counted(IMAGES, session.get, url, content_callback=sink.write, **merge(kwargs))
            size = sink.tell()
            if resp.status_code == 200 and size > 0:
                return sink
            error = PageFetchError(f"HTTP {resp.status_code}, {size} bytes from {url}", resp)
        except (curl_errors.RequestException, OSError) as exc:
            error = exc
        sink.close()
    raise error


def partial_spool(folder: str) -> Callable[[], IO[bytes]]:
    return lambda: tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BODY, dir=folder)  # noqa: SIM115


def _open(body: IO[bytes]) -> Any:
    from PIL import Image

    return Image.open(body)


def install_streaming_pages(client: Any, pages: PageFetching) -> None:
    """Make ``client.download_by_image_detail`` stream page bodies to disk (see the module doc).

    The rest of jmcomic's page handling is kept: which pages need descrambling, the strip
    count and the descrambling itself (``JmImageTool``), file names and retries.
    """
    original = client.download_by_image_detail

    def download_by_image_detail(image: Any, img_save_path: str, decode_image: bool = True) -> None:
        url = str(image.download_url)
        if Path(url.split("?", 1)[0]).suffix.lower() != Path(img_save_path).suffix.lower():
            return original(image, img_save_path, decode_image=decode_image)  # a format conversion: jmcomic's way
        if not decode_image:
            try:
                fetch(client, pages.sessions, url, lambda: open(img_save_path, "wb")).close()
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(img_save_path)
                raise
            return None
        spooled = partial_spool(os.path.dirname(img_save_path))
        with fetch(client, pages.sessions, url, spooled) as body:
            body.seek(0)
            num = JmImageTool.get_num_by_url(int(image.scramble_id), url.split("?", 1)[0])
            picture = _open(body)
            width, height = picture.size
            with pages.pixels.hold(width * height * len(picture.getbands()) * 2), picture:
                JmImageTool.decode_and_save(num, picture, img_save_path)
        return None

    client.download_by_image_detail = download_by_image_detail
