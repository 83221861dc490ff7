"""One TLS context for every booru client of the process.

httpx builds a context per client (and per proxy), and loading the CA bundle into it takes about
15 ms; the server builds a client for every site at start-up. The context here is the one httpx
would build with ``verify=True`` (``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else certifi's bundle), made
once. This module imports no httpx, so the command line can build the context in a thread while the
rest loads: OpenSSL reads the bundle without holding the GIL.
"""

from __future__ import annotations

import os
import ssl
import threading

import certifi

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def _build() -> ssl.SSLContext:
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


def client_context() -> ssl.SSLContext:
    """The process's context for verifying upstream sites (built on first use; thread-safe)."""
    global _context
    with _lock:
        if _context is None:
            _context = _build()
        return _context


def prepare_in_background() -> None:
    """Start building the context in a daemon thread; the first client then finds it ready."""
    threading.Thread(target=client_context, name="tls-context", daemon=True).start()
