"""Which methods a path takes, for the ``Allow`` header and the sentence of a 405.

The OpenAPI document is asked first: it is what clients read, and it matches a concrete path
(``/v1/download/favorites``) before a templated one (``/v1/download/{file_name}``), as OpenAPI
says paths are matched. Paths outside it (the page, the docs) are found by asking each route
whether it would take the request under each method. Both keep working when the framework nests
its routes (FastAPI 0.165 keeps an included router as one lazy route with no ``methods``).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from starlette.routing import Match, Mount

# The order the sentence names them in.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PARAM = re.compile(r"\{[^}/]+\}")


def _documented_paths(app: FastAPI) -> list[tuple[re.Pattern[str], int, list[str]]]:
    """(pattern, number of parameters, methods) per documented path, built once per app."""
    cached: list[tuple[re.Pattern[str], int, list[str]]] | None = getattr(app.state, "documented_paths", None)
    if cached is None:
        cached = []
        paths: dict[str, dict[str, Any]] = app.openapi().get("paths", {})
        for template, operations in paths.items():
            pattern = "".join(
                "[^/]+" if _PARAM.fullmatch(part) else re.escape(part)
                for part in re.split(r"(\{[^}/]+\})", template)
            )
            methods = [m for m in METHODS if m.lower() in operations]
            cached.append((re.compile(pattern + r"\Z"), len(_PARAM.findall(template)), methods))
        app.state.documented_paths = cached
    return cached


def _routed_methods(request: Request) -> list[str]:
    allowed: list[str] = []
    for method in METHODS:
        probe = {"type": "http", "path": request.scope["path"], "root_path": request.scope.get("root_path", ""),
                 "method": method, "headers": [], "query_string": b"", "path_params": {}}
        for route in request.app.routes:
            if isinstance(route, Mount):  # the page's files take any method and refuse them later
                continue
            match, _ = route.matches(probe)
            if match == Match.FULL:
                allowed.append(method)
                break
    return allowed


def allowed_methods(request: Request) -> list[str]:
    path, root = request.scope["path"], request.scope.get("root_path", "")
    path = path[len(root):] if root and path.startswith(root) else path
    documented = [(params, methods) for pattern, params, methods in _documented_paths(request.app)
                  if pattern.match(path)]
    if documented:
        fewest = min(params for params, _ in documented)
        found = {m for params, methods in documented if params == fewest for m in methods}
        return [m for m in METHODS if m in found]
    return _routed_methods(request)


def method_list(allowed: list[str]) -> str:
    """``GET or POST``: HEAD goes without saying where GET is named."""
    named = [m for m in allowed if not (m == "HEAD" and "GET" in allowed)]
    return ", ".join(named[:-1]) + " or " + named[-1] if len(named) > 1 else "".join(named)
