"""A baseline shaped like the seed server, for bench/bench_reads.py (none of its code is copied):
a FastAPI app whose search endpoint is a plain ``def``, so Starlette runs it in its default
40-thread pool, calling jmcomic's sync API client, which is what the seed does.

    uvicorn bench._seed_like_app:app   (configured by the same JMBOORU_JM_* environment)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.config import Settings
from app.sources.jm import apply_module_settings, build_option

settings = Settings()
apply_module_settings(settings)
client = build_option(settings).new_jm_client()
app = FastAPI()


@app.get("/v1/search/{query}/{page}")
def search(query: str, page: int) -> list[dict[str, Any]]:
    result = client.search_site(search_query=query, page=page)
    return [{"album_id": str(aid), "title": str(title)} for aid, title in result.iter_id_title()]


@app.get("/v1/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
