"""Answers are their documented models (issue 20, "wire shapes enforced"): an endpoint with a
response model returns it, so FastAPI checks every answer against it; the 202s that start jobs
keep their Location header and body."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response

import app.api
from app.api.favorites import FavoritesAccepted
from app.api.paste import PasteAccepted
from app.api.schemas import Accepted
from tests.conftest import app_client, make_settings
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru import GelbooruDouble, make_posts
from tests.fakes.jm import FakeAccount, JmDouble
from tests.test_pools import TAG_TYPES, pool_posts

# Encoded by hand on purpose, and checked against its model elsewhere (tests/test_edge.py).
HAND_ENCODED = {"/v1/health": "monitors poll it hardest"}


def api_routes() -> Iterator[APIRoute]:
    for module in pkgutil.iter_modules(app.api.__path__):
        for value in vars(importlib.import_module(f"app.api.{module.name}")).values():
            if isinstance(value, APIRouter):
                yield from (r for r in value.routes if isinstance(r, APIRoute))


def test_an_endpoint_with_a_response_model_returns_it_not_a_response() -> None:
    """A Response (a JSONResponse) would go out as built, never checked against the documented model."""
    checked = []
    for route in api_routes():
        model = route.response_model
        if route.path in HAND_ENCODED or not (inspect.isclass(model) and issubclass(model, BaseModel)):
            continue
        returns = typing.get_type_hints(route.endpoint).get("return")
        assert not (inspect.isclass(returns) and issubclass(returns, Response)), \
            f"{route.path} returns a {returns.__name__}: return its {model.__name__} instead"
        checked.append(route.path)
    assert {"/v1/download/album/{album_id}", "/v1/download/booru/{site}", "/v1/download/url",
            "/v1/download/booru/{site}/pool/{pool_id}", "/v1/download/favorites"} <= set(checked)


@pytest.fixture
async def client(tmp_path: Path, jm_double: JmDouble) -> AsyncIterator[httpx.AsyncClient]:
    jm_double.accounts.add(FakeAccount("reader", "correct horse", "4242", [("100003", "0")], {}))
    with GelbooruDouble(make_posts(3)) as gelbooru, DanbooruDouble(pool_posts(), tag_types=TAG_TYPES) as danbooru:
        danbooru.add_pool(7, "Miku's_Comic_Day", [13, 10, 12])
        settings = make_settings(tmp_path / "data", jm_double, gelbooru_url=gelbooru.base_url,
                                 gelbooru_api_key=gelbooru.api_key, gelbooru_user_id=gelbooru.user_id,
                                 danbooru_url=danbooru.base_url, jm_username="reader", jm_password="correct horse")
        async with app_client(settings) as c:
            yield c


@pytest.mark.parametrize(("path", "body", "model", "added"), [
    ("/v1/download/album/100001", {}, Accepted, {"album_id": "100001"}),
    ("/v1/download/booru/gelbooru", {"tags": "1girl", "max_images": 2}, Accepted, {}),
    ("/v1/download/booru/danbooru/pool/7", {}, Accepted, {"site": "danbooru", "pool_id": 7}),
    ("/v1/download/url", {"url": "https://18comic.vip/album/100002/"}, PasteAccepted, {"album_id": "100002"}),
], ids=["album", "booru", "pool", "paste"])
async def test_a_started_job_is_202_with_its_location_and_the_same_body(
        client: httpx.AsyncClient, path: str, body: dict[str, object], model: type[Accepted],
        added: dict[str, object]) -> None:
    resp = await client.post(path, json={**body, "client_id": "answers"})
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    job_id = answer["job_id"]
    assert resp.headers["location"] == answer["status_url"] == f"/v1/jobs/{job_id}"
    assert resp.headers["content-type"] == "application/json"
    model.model_validate(answer)
    expected = {"status": "processing", "job_id": job_id, "status_url": f"/v1/jobs/{job_id}",
                "events_url": f"/ws/jobs/{job_id}", "state": "queued", "joined": False, "client_id": "answers",
                **added}
    assert {k: v for k, v in answer.items() if k not in ("message", "resolved")} == expected
    assert answer["message"]


async def test_favourites_are_202_without_a_location(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/download/favorites", json={"client_id": "answers"})
    assert resp.status_code == 202, resp.text
    assert "location" not in resp.headers  # several jobs: no one place to point at
    answer = FavoritesAccepted.model_validate(resp.json())
    assert answer.count == answer.total == 1 and answer.jobs[0].album_id == "100003"
    assert set(resp.json()) == set(FavoritesAccepted.model_fields)
