"""Favourites of the server owner's JM account, through the JM double's /login and /favorite."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.jm import FakeAccount, FakeAlbum, JmDouble

PASSWORD = "correct horse battery"


def reader(jm: JmDouble, extra: int = 0) -> FakeAccount:
    """An account with favourites in two folders (newest first), and ``extra`` more in folder 0."""
    favorites = [("200001", "0"), ("100001", "11"), ("500001", "11"), ("100003", "12")]
    for i in range(extra):
        aid = str(180000 + i)
        jm.add_album(FakeAlbum.single(aid, f"Favourite {i}", 1))
        favorites.append((aid, "0"))
    return jm.accounts.add(FakeAccount("reader", PASSWORD, "4242", favorites, {"11": "Best", "12": "Later"}))


@pytest.fixture
async def logged(tmp_path: Path, jm_double: JmDouble) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path / "data", jm_double, jm_username="reader", jm_password=PASSWORD)
    async with app_client(settings) as client:
        yield client


async def test_without_an_account_both_endpoints_name_the_settings(client: httpx.AsyncClient,
                                                                    jm_double: JmDouble) -> None:
    for resp in (await client.get("/v1/favorites"), await client.post("/v1/download/favorites", json={})):
        assert resp.status_code == 409
        assert "JMBOORU_JM_USERNAME" in resp.json()["detail"] and "JMBOORU_JM_PASSWORD" in resp.json()["detail"]
    assert jm_double.hits("/login") == 0


async def test_favourites_list_pages_and_folders_with_one_login(logged: httpx.AsyncClient, jm_double: JmDouble) -> None:
    reader(jm_double, extra=21)  # 25 favourites: two pages of 20
    first = (await logged.get("/v1/favorites")).json()
    assert first["total"] == 25 and first["page"] == 1 and first["page_count"] == 2
    assert [a["album_id"] for a in first["albums"][:4]] == ["200001", "100001", "500001", "100003"]
    assert first["albums"][0] == {"album_id": "200001", "title": "Two Chapters", "author": "Carol, Dave"}
    assert len(first["albums"]) == 20
    assert first["folders"] == [{"folder_id": "11", "name": "Best"}, {"folder_id": "12", "name": "Later"}]
    second = (await logged.get("/v1/favorites", params={"page": 2})).json()
    assert [a["album_id"] for a in second["albums"]] == [str(180000 + i) for i in range(16, 21)]
    best = (await logged.get("/v1/favorites", params={"folder": "11"})).json()
    assert [a["title"] for a in best["albums"]] == ["Plain Album", "Scrambled Album"] and best["total"] == 2
    assert jm_double.accounts.logins == 1  # logged in once, on first use
    assert (await logged.get("/v1/favorites", params={"page": 0})).status_code == 422
    assert (await logged.get("/v1/favorites", params={"folder": "../1"})).status_code == 422


async def test_an_expired_session_logs_in_again(logged: httpx.AsyncClient, jm_double: JmDouble) -> None:
    reader(jm_double)
    assert (await logged.get("/v1/favorites")).status_code == 200
    jm_double.accounts.expire_sessions()
    resp = await logged.get("/v1/favorites")
    assert resp.status_code == 200 and resp.json()["total"] == 4
    assert jm_double.accounts.logins == 2


async def test_a_wrong_password_is_a_502_sentence_and_never_shown(
    tmp_path: Path, jm_double: JmDouble, caplog: pytest.LogCaptureFixture
) -> None:
    reader(jm_double)
    wrong = "not-the-password-9f8e7d"
    settings = make_settings(tmp_path / "data", jm_double, jm_username="reader", jm_password=wrong)
    caplog.set_level(logging.DEBUG)
    async with app_client(settings) as client:
        first = await client.get("/v1/favorites")
        again = await client.post("/v1/download/favorites", json={})
        openapi = (await client.get("/openapi.json")).text
    for resp in (first, again):
        assert resp.status_code == 502
        assert "user name or password is wrong" in resp.json()["detail"]
        assert wrong not in resp.text and "Traceback" not in resp.text
    assert jm_double.hits("/login") == 1  # a refused password is not tried again at once
    assert wrong not in caplog.text and "帳號" not in first.text
    assert wrong not in repr(settings) and wrong not in openapi


async def test_downloading_favourites_starts_one_album_job_each(logged: httpx.AsyncClient, jm_double: JmDouble) -> None:
    reader(jm_double)
    running = (await logged.post("/v1/download/album/100001", json={"format": "cbz"})).json()
    resp = await logged.post("/v1/download/favorites",
                             json={"folder": "11", "format": "cbz", "client_id": "phone"})
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "processing" and body["count"] == 2 and body["total"] == 2
    assert [(j["album_id"], j["title"]) for j in body["jobs"]] == [("100001", "Plain Album"),
                                                                   ("500001", "Scrambled Album")]
    assert body["jobs"][0]["job_id"] == running["job_id"] and body["jobs"][0]["joined"] is True

    async def all_ready() -> list[dict[str, Any]] | None:
        states = [(await logged.get(j["status_url"])).json() for j in body["jobs"]]
        return states if all(s["state"] == "ready" for s in states) else None

    for job in await wait_for(all_ready, timeout=30):
        assert job["file_name"].endswith(".cbz") and job["params"]["format"] == "cbz"
    limited = (await logged.post("/v1/download/favorites", json={"limit": 1})).json()
    assert [j["album_id"] for j in limited["jobs"]] == ["200001"]


async def test_favourite_downloads_refuse_bad_options_and_empty_folders(logged: httpx.AsyncClient,
                                                                         jm_double: JmDouble) -> None:
    reader(jm_double)
    bad = await logged.post("/v1/download/favorites", json={"format": "pdf", "layout": "chapters"})
    assert bad.status_code == 422 and "only a zip" in bad.json()["detail"]
    assert jm_double.hits("/favorite") == 0
    unknown_key = await logged.post("/v1/download/favorites", json={"albums": "all"})
    assert unknown_key.status_code == 422
    empty = await logged.post("/v1/download/favorites", json={"folder": "99"})
    assert empty.status_code == 404
    assert "no favourites in folder 99" in empty.json()["detail"] and "11 (Best)" in empty.json()["detail"]


async def test_openapi_declares_the_favourites_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    listing = spec["paths"]["/v1/favorites"]["get"]["responses"]
    assert {"200", "409", "502"} <= set(listing)
    assert listing["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/FavoritesOut")
    start = spec["paths"]["/v1/download/favorites"]["post"]["responses"]
    assert start["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/FavoritesAccepted")
    assert start["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_the_jm_password_is_redacted_from_logs_and_masked_in_config(tmp_path: Path, jm_double: JmDouble) -> None:
    from app import logs
    from app.config_files import mask

    settings = make_settings(tmp_path, jm_double, jm_username="reader", jm_password="hunter2-hunter2")
    assert "hunter2-hunter2" in logs.settings_secrets(settings)
    assert mask("jm_password", settings.jm_password) == "*** (15 characters)"
    logs.install_redaction(logs.settings_secrets(settings))
    assert "hunter2-hunter2" not in logs.redact("login with hunter2-hunter2 failed")
