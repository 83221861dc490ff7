"""Two small loopback servers for the network rules: a canary that must hear nothing, and a
forwarding HTTP proxy that counts what passes through it."""

from __future__ import annotations

import http.client
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Loopback:
    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self.handler)
        self.server.owner = self  # type: ignore[attr-defined]

    def __enter__(self) -> Any:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, line: str) -> None:
        with self.lock:
            self.seen.append(line)


class _CanaryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.owner.record(self.path)  # type: ignore[attr-defined]
        body = b"canary"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Canary(_Loopback):
    """Any request that reaches it is a request jmbooru must never have made."""

    handler = _CanaryHandler


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner: CountingProxy = self.server.owner  # type: ignore[attr-defined]
        target = urlsplit(self.path)  # a proxy gets the absolute URL
        if target.scheme != "http" or not target.hostname:
            self.send_error(400, "absolute http:// URLs only")
            return
        owner.record(self.path)
        owner.hosts[f"{target.hostname}:{target.port}"] += 1
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request("GET", path or "/", headers=headers)
            response = upstream.getresponse()
            body = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CountingProxy(_Loopback):
    """A forwarding proxy for plain http:// URLs (what httpx sends through an HTTP proxy)."""

    handler = _ProxyHandler

    def __init__(self) -> None:
        super().__init__()
        self.hosts: Counter[str] = Counter()
