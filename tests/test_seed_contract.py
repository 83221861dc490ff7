"""The HTTP contract that JMComic_Server_API's own test suite pins down (tests/test_integration.py
and the HTTP classes of tests/test_unit.py), as tests of ours against the JM double.

Where the seed is stricter and jmbooru deliberately is not (a POST without ``client_id`` is
accepted; invalid JSON is 422 rather than 400), the test says so.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fakes.jm import JmDouble

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("stamp", [lambda: str(int(time.time() * 1000)), lambda: str(time.time() * 1000)],
                         ids=["int-ms", "float-ms"])
async def test_clock_answers_like_the_seed(client: httpx.AsyncClient, stamp) -> None:
    resp = await client.get(f"/v1/{stamp()}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok" and body["app"] == "jmcomic_server_api" and body["version"]
    assert 0 <= int(body["latency"]) < 10_000


async def test_health_names_the_app(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/health")).json()
    assert body["status"] == "ok" and body["app"] == "jmcomic_server_api"


async def test_a_word_is_not_a_clock(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/foo")).status_code == 404


@pytest.mark.parametrize("page", ["0", "101", "-1"])
async def test_search_page_outside_1_to_100_is_400(client: httpx.AsyncClient, page: str) -> None:
    resp = await client.get(f"/v1/search/test/{page}")
    assert resp.status_code == 400
    assert "num must be between 1 and 100" in resp.json()["detail"]


async def test_search_results_are_album_id_and_title_strings(client: httpx.AsyncClient) -> None:
    for page in ("1", "100"):
        assert (await client.get(f"/v1/search/filler/{page}")).status_code == 200
    results = (await client.get("/v1/search/filler/1")).json()
    assert results and all(isinstance(r["album_id"], str) and isinstance(r["title"], str) for r in results)


async def test_unknown_rank_period_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/rank/invalid")).status_code == 422


@pytest.mark.parametrize("period", ["day", "week", "month", "all"])
async def test_rank_results_are_aid_and_title_strings(client: httpx.AsyncClient, period: str) -> None:
    results = (await client.get(f"/v1/rank/{period}")).json()
    assert results and all(isinstance(r["aid"], str) and isinstance(r["title"], str) for r in results)


async def test_info_has_the_fields_the_seed_reads(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/info/100001")).json()
    assert body["status"] == "success" and body["method"] in ("html", "api")
    assert isinstance(body["tag"], list) and body["tag"]
    assert int(body["view_count"]) > 0 and int(body["like_count"]) > 0
    assert int(body["page_count"]) == 5


async def test_unknown_album_info_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/info/999999999")).status_code == 404


async def test_cover_is_jpeg_and_a_bad_id_is_400_invalid_album_id(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/get/cover/100001")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    bad = await client.get("/v1/get/cover/test<script>")
    assert bad.status_code == 400 and "Invalid album ID" in bad.json()["detail"]
    assert (await client.get("/v1/get/cover/999999999")).status_code == 404
    assert (await client.get("/v1/get/cover/../../etc/passwd")).status_code in (400, 404, 422)


@pytest.mark.parametrize("page", ["0", "-1"])
async def test_comments_page_below_1_is_400(client: httpx.AsyncClient, page: str) -> None:
    resp = await client.get(f"/v1/comments/12345?page={page}")
    assert resp.status_code == 400 and "page must be >= 1" in resp.json()["detail"]


async def test_missing_archive_is_404_with_status_and_msg(client: httpx.AsyncClient) -> None:
    for name in ("this-album-does-not-exist-12345", "nonexistent-album-title"):
        resp = await client.get(f"/v1/download/{name}")
        assert resp.status_code == 404
        assert resp.json()["status"] == "error" and resp.json()["msg"] and resp.json()["detail"]
    assert (await client.get("/v1/download/../../etc/passwd")).status_code in (400, 404, 422)


async def test_cors_preflight_is_answered(client: httpx.AsyncClient) -> None:
    resp = await client.options(
        "/v1/123456", headers={"Origin": "http://example.com", "Access-Control-Request-Method": "GET"}
    )
    assert resp.status_code == 200 and "access-control-allow-origin" in resp.headers


async def test_where_jmbooru_is_more_permissive_than_the_seed(client: httpx.AsyncClient) -> None:
    # The seed answers 400 to a POST without client_id; jmbooru accepts it (the job is polled or
    # followed on /ws/jobs/{id}). Invalid JSON is a 422 with a sentence, not the seed's 400.
    accepted = await client.post("/v1/download/album/100001", json={})
    assert accepted.status_code == 202 and accepted.json()["status"] == "processing"
    broken = await client.post("/v1/download/album/100001", content="not json",
                               headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["detail"]


# --- comments, against the double's /forum endpoint ------------------------------------------


async def test_comments_page_in_the_seeds_shape(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    resp = await client.get("/v1/comments/600001?page=1")
    assert resp.status_code == 200
    body = resp.json()
    assert body["aid"] == "600001" and body["page"] == 1
    assert (body["page_size"], body["total"], body["page_count"]) == (10, 23, 3)
    comments = body["comments"]
    assert len(comments) == 10
    assert body["comment_count"] == 12  # ten comments and the two nested replies
    first, second = comments[0], comments[1]
    assert first["content"] == "First line\nsecond line & more"  # <br> became a newline, no tags
    assert first["comment_id"] == "6000010001" and first["album_id"] == "600001"
    assert first["parent_comment_id"] is None and first["is_spoiler"] is False
    assert first["username"] == "reader1" and first["nickname"] == "Reader 1"
    assert first["user_id"] == "5001" and first["likes"] == 1 and first["created_at"]
    assert second["is_spoiler"] is True
    reply = second["replies"][0]
    assert reply["content"] == "I agree\ncompletely" and reply["parent_comment_id"] == second["comment_id"]
    assert reply["replies"][0]["content"] == "a reply to the reply"
    assert set(reply) == set(first)


async def test_comments_last_page_and_an_album_without_comments(client: httpx.AsyncClient) -> None:
    last = (await client.get("/v1/comments/600001?page=3")).json()
    assert len(last["comments"]) == 3 and last["comments"][-1]["content"].startswith("Comment number 23")
    empty = (await client.get("/v1/comments/999999")).json()
    assert empty["comments"] == [] and empty["total"] == 0


async def test_comments_are_cached_and_upstream_failures_are_sentences(
    client: httpx.AsyncClient, jm_double: JmDouble
) -> None:
    assert (await client.get("/v1/comments/100001?page=1")).status_code == 200
    hits = jm_double.hits("/forum")
    assert (await client.get("/v1/comments/100001?page=1")).status_code == 200
    assert jm_double.hits("/forum") == hits
    jm_double.cloudflare()
    resp = await client.get("/v1/comments/100001?page=2")
    assert resp.status_code == 502 and "://" not in resp.json()["detail"]
