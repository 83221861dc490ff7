"""The OpenAPI document, made to describe the answers as they really are.

FastAPI documents every validation error with its own ``HTTPValidationError`` body, but jmbooru
answers them (like every error) as ``{"detail": "<sentence>"}``; WebSockets are not part of
OpenAPI, so their frames are added as a schema and described in the ``websockets`` tag.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.schemas import ERROR_DESCRIPTIONS, ErrorBody
from app.jobs.frames import JobFrame

WEBSOCKETS = (
    "Two WebSocket endpoints (not expressible in OpenAPI; every frame is a `JobFrame`, see Schemas):\n\n"
    "* `/ws/jobs/{job_id}`: a `snapshot` frame, then the job's live frames; closes after the final one "
    "(`download_ready`, `failed`, `cancelled`, `expired`). An unknown job: one `error` frame, close code 4404.\n"
    "* `/ws/notifications/{client_id}`: stays open; by default only the final frames of the jobs started with "
    "that `client_id` (and the ones missed while away, once); `?progress=1` adds snapshots and progress frames.\n\n"
    "With `JMBOORU_API_KEY` set, add `?api_key=KEY`. Any other WebSocket path closes with code 4404."
)

TAGS = [
    {"name": "system", "description": "Health and clock (compatible with JMComic_Server_API)."},
    {"name": "jm", "description": "JM rankings, search, albums, covers and comments."},
    {"name": "booru", "description": "Booru posts."},
    {"name": "downloads", "description": "Start downloads: each is a job (202 at once)."},
    {"name": "jobs", "description": "Job state, cancellation and archives."},
    {"name": "websockets", "description": WEBSOCKETS},
]


METHOD_NOT_ALLOWED: dict[str, Any] = {
    "description": "Any other method on a documented path: `{\"detail\": \"PUT is not allowed here; use "
                   "POST.\"}` with the methods the path takes in `Allow`.",
    "headers": {"Allow": {"description": "the methods this path takes, comma-separated",
                          "schema": {"type": "string", "example": "GET, DELETE"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, summary=app.summary,
                               description=app.description, routes=app.routes, tags=TAGS)
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"))
        for path in document.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": ERROR_DESCRIPTIONS[422],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    }
        # OpenAPI describes the methods a path takes, not the ones it refuses; the refusal is one
        # shared answer, kept with the other shared parts so a client generator sees its shape.
        document["components"].setdefault("responses", {})["MethodNotAllowed"] = METHOD_NOT_ALLOWED
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        frame = JobFrame.model_json_schema(ref_template="#/components/schemas/{model}")
        components["JobFrame"] = frame
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
