"""``app.main:app`` for benchmarks while ``app/api/booru.py`` (the Gelbooru endpoints) has not landed.

app/main.py imports ``app.api.booru``; until that module exists the app cannot be imported, so
this shim registers an empty router under that name and then imports the real app unchanged.
bench/_common.asgi_target() uses ``app.main:app`` itself as soon as the module exists.
"""

from __future__ import annotations

import importlib.util
import sys
import types

from fastapi import APIRouter

import app.api as api_package

if importlib.util.find_spec("app.api.booru") is None:
    _stub = types.ModuleType("app.api.booru")
    _stub.router = APIRouter()  # type: ignore[attr-defined]
    sys.modules["app.api.booru"] = _stub
    api_package.booru = _stub  # type: ignore[attr-defined]

from app.main import app  # noqa: E402

__all__ = ["app"]
