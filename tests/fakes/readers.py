"""Small loopback fakes of Komga's and Kavita's scan endpoints that record the calls (library.md).

* Komga: ``POST /api/v1/libraries/{id}/scan`` with ``X-API-Key``; 202 when the key and library are
  right, 401 / 404 otherwise (Komga's API document: ``libraryScan``).
* Kavita: ``POST /api/Plugin/authenticate?apiKey=&pluginName=`` → ``{"token": ...}`` (401 for a wrong
  key); ``POST /api/Library/scan?libraryId=`` with ``Authorization: Bearer <token>`` → 200, 401 for an
  unknown or expired token.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Fake:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with fake.lock:
                    fake.calls.append({"path": url.path, "query": {k: v[-1] for k, v in parse_qs(url.query).items()},
                                       "headers": dict(self.headers.items())})
                status, body = (fake.fail_status, {}) if fake.fail_status else fake.answer(url.path, self)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, h: BaseHTTPRequestHandler) -> tuple[int, Any]:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def scans(self) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["path"].endswith("/scan")]


class KomgaFake(_Fake):
    def __init__(self, api_key: str = "komga-key-0123456789", library_id: str = "0LIBRARY") -> None:
        super().__init__()
        self.api_key, self.library_id = api_key, library_id

    def answer(self, path: str, h: BaseHTTPRequestHandler) -> tuple[int, Any]:
        if h.headers.get("X-API-Key") != self.api_key:
            return 401, {"error": "Unauthorized"}
        if path != f"/api/v1/libraries/{self.library_id}/scan":
            return 404, {"error": "Not Found"}
        return 202, {}


class KavitaFake(_Fake):
    def __init__(self, api_key: str = "kavita-key-0123456789", library_id: str = "3") -> None:
        super().__init__()
        self.api_key, self.library_id = api_key, library_id
        self.tokens: set[str] = set()

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def answer(self, path: str, h: BaseHTTPRequestHandler) -> tuple[int, Any]:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(h.path).query).items()}
        if path == "/api/Plugin/authenticate":
            if query.get("apiKey") != self.api_key:
                return 401, {}
            token = secrets.token_hex(16)
            with self.lock:
                self.tokens.add(token)
            return 200, {"username": "jmbooru", "token": token, "refreshToken": "r", "apiKey": self.api_key}
        if path == "/api/Library/scan":
            token = h.headers.get("Authorization", "").removeprefix("Bearer ")
            with self.lock:
                known = token in self.tokens
            if not known:
                return 401, {}
            return (200, {}) if query.get("libraryId") == self.library_id else (400, {})
        return 404, {}
