"""Request bodies against a real uvicorn (both HTTP parsers), over raw sockets: the API key before
the body, a cap on its size, and head and body counted apart."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LiveServer, free_port, make_settings, wait_serving
from tests.fakes.jm import JmDouble

KEY = "body-test-key-0123456789"
ROOT = Path(__file__).resolve().parent.parent
PARSERS = ["httptools", "h11"]


def answer_of(sock: socket.socket, within: float = 10) -> bytes:
    """What the server says until it closes the connection (or a complete answer arrives)."""
    sock.settimeout(within)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if sep and length is not None and len(body) >= length:
                break
    except OSError:
        pass
    return data


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def detail_of(answer: bytes) -> str:
    detail: str = json.loads(answer.partition(b"\r\n\r\n")[2])["detail"]
    return detail


def rss_bytes() -> int:
    """This process's resident memory (the server runs in a thread of it), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def post_head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("http", PARSERS)
def test_a_content_length_above_the_limit_is_413_before_any_body(
        tmp_path: Path, jm_double: JmDouble, http: str) -> None:
    settings = make_settings(tmp_path, jm_double, api_key=KEY, max_body_bytes=64 * 1024)
    with LiveServer(settings, http=http) as live, socket.create_connection(("127.0.0.1", live.port)) as sock:
        # Only the head: a server that waited for the 50 MB body would never answer.
        sock.sendall(post_head("/v1/download/album/100001", f"X-API-Key: {KEY}", "Content-Length: 50000000"))
        started = time.monotonic()
        answer = answer_of(sock)
        assert status_of(answer) == 413, answer[:300]
        assert "larger than this server accepts (65536 bytes)" in detail_of(answer)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("http", PARSERS)
def test_a_chunked_body_over_the_limit_is_413_and_never_held_whole(
        tmp_path: Path, jm_double: JmDouble, http: str) -> None:
    limit = 1024 * 1024
    settings = make_settings(tmp_path, jm_double, api_key=KEY, max_body_bytes=limit)
    chunk = b"%x\r\n" % 65536 + b"[" * 65536 + b"\r\n"
    with LiveServer(settings, http=http) as live, socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(post_head("/v1/download/booru/safebooru", f"X-API-Key: {KEY}", "Transfer-Encoding: chunked"))
        before = peak = rss_bytes()
        sent = 0
        sock.settimeout(10)
        try:
            while sent < 200 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
                if sent % (4 * 1024 * 1024) < len(chunk):
                    peak = max(peak, rss_bytes())
        except OSError:
            pass  # the server closed the connection: the point
        answer = answer_of(sock)
        peak = max(peak, rss_bytes())
    assert status_of(answer) == 413, answer[:300]
    assert sent < 40 * 1024 * 1024, f"the server read {sent} bytes of a body over a {limit}-byte limit"
    assert peak - before < 24 * 1024 * 1024, f"memory grew by {(peak - before) >> 20} MB"


@pytest.mark.parametrize("http", PARSERS)
@pytest.mark.parametrize("framing", ["Content-Length: 10000000", "Transfer-Encoding: chunked"])
def test_no_api_key_is_401_before_the_body_is_read(tmp_path: Path, jm_double: JmDouble, http: str,
                                                   framing: str) -> None:
    settings = make_settings(tmp_path, jm_double, api_key=KEY)
    with LiveServer(settings, http=http) as live, socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(post_head("/v1/download/booru/safebooru", framing))  # and no body at all
        answer = answer_of(sock)
        assert status_of(answer) == 401, answer[:300]
        assert "needs an API key" in detail_of(answer)
        # A wrong key is the same, as is a key in the query string that is wrong.
        with socket.create_connection(("127.0.0.1", live.port)) as wrong:
            wrong.sendall(post_head("/v1/download/album/100001?api_key=nope", "X-API-Key: nope", framing))
            assert status_of(answer_of(wrong)) == 401


@pytest.mark.parametrize("http", PARSERS)
def test_a_large_valid_body_sent_with_its_head_in_one_write_is_not_431(
        tmp_path: Path, jm_double: JmDouble, http: str) -> None:
    settings = make_settings(tmp_path, jm_double, api_key=KEY)
    body = json.dumps({"tags": "1girl", "max_images": 1,
                       "filters": {"blacklist": [f"tag_{n:06d}" for n in range(50_000)]}}).encode()
    assert 500_000 < len(body) < 1024 * 1024  # under the default limit
    with LiveServer(settings, http=http) as live, socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(post_head("/v1/download/booru/safebooru", f"X-API-Key: {KEY}", f"Content-Length: {len(body)}")
                     + body)
        answer = answer_of(sock, within=30)
    assert status_of(answer) in (202, 422), answer[:300]


@pytest.mark.parametrize("http", PARSERS)
@pytest.mark.parametrize("blank_lines", ["", "\r\n\r\n"])  # which parsers skip before a request line
def test_a_90_kb_head_in_one_write_is_431(tmp_path: Path, jm_double: JmDouble, http: str, blank_lines: str) -> None:
    settings = make_settings(tmp_path, jm_double)
    fillers = "".join(f"X-Filler-{n}: {'a' * 8000}\r\n" for n in range(12))  # about 94 KB
    request = f"{blank_lines}GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{fillers}\r\n".encode()
    assert len(request) > 90 * 1000
    with LiveServer(settings, http=http) as live, socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(request)
        answer = answer_of(sock)
    assert status_of(answer) == 431, answer[:300]
    assert "headers are larger than this server accepts" in detail_of(answer)


def test_the_limits_hold_under_plain_uvicorn(tmp_path: Path, jm_double: JmDouble) -> None:
    """``uvicorn app.main:app``, not ``jmbooru serve``: the limits come with the app."""
    port = free_port()
    log = tmp_path / "uvicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)], cwd=ROOT,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "JMBOORU_DATA_DIR": str(tmp_path / "data"),
             "JMBOORU_JM_API_DOMAINS": jm_double.host, "JMBOORU_JM_IMAGE_DOMAINS": jm_double.host,
             "JMBOORU_JM_SCHEME": "http", "JMBOORU_REDIS_URL": "", "JMBOORU_API_KEY": KEY,
             "JMBOORU_MAX_BODY_BYTES": "2048", "JMBOORU_BODY_TIMEOUT_SECONDS": "1"})
    try:
        wait_serving(f"http://127.0.0.1:{port}", proc, log=log)

        def ask(request: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(request)
                return answer_of(sock)

        path = "/v1/download/booru/safebooru"
        assert status_of(ask(post_head(path, "Content-Length: 100000000"))) == 401
        assert status_of(ask(post_head(path, f"X-API-Key: {KEY}", "Content-Length: 3000"))) == 413
        assert status_of(ask(post_head(path, f"X-API-Key: {KEY}", "Content-Length: 1000") + b'{"tags"')) == 408
        big_head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * 90_000 + b"\r\n\r\n"
        assert status_of(ask(big_head)) == 431
    finally:
        proc.terminate()
        proc.wait(timeout=15)
