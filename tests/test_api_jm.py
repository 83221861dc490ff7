"""The JM read endpoints, end to end through jmcomic against the JM double."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.jm import ILLEGAL_TITLE, FakeAlbum, JmDouble


def assert_clean_error(resp: httpx.Response, jm: JmDouble) -> str:
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and detail.endswith(".")
    assert "Traceback" not in detail and jm.host not in detail and "http://" not in detail
    return detail


async def test_health_reports_version(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok" and body["version"] == "0.1.0" and body["mode"] == "embedded"


async def test_timestamp_echoes_latency_as_string(client: httpx.AsyncClient) -> None:
    sent = time.time() * 1000 - 1500.25
    resp = await client.get(f"/v1/{sent}")
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body["latency"], str)
    assert 1400 < float(body["latency"]) < 5000
    assert body["status"] == "ok" and body["version"]


async def test_non_number_timestamp_and_unknown_paths_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/v1/foo", "/v1/nan", "/v1/inf", "/nothing/here", "/v1/rank/day/extra"):
        resp = await client.get(path)
        assert resp.status_code == 404, path
        assert isinstance(resp.json()["detail"], str)


async def test_rank_lists_aid_and_title(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    for period in ("day", "week", "month", "all"):
        resp = await client.get(f"/v1/rank/{period}")
        assert resp.status_code == 200, resp.text
        items = resp.json()
        assert items and set(items[0]) == {"aid", "title"}
        expected = jm_double.ranking({"day": "t", "week": "w", "month": "m", "all": "a"}[period])
        assert [i["aid"] for i in items] == expected[: len(items)]
    assert (await client.get("/v1/rank/day?page=2")).status_code == 200


async def test_rank_rejects_unknown_period_and_bad_page(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/rank/year")
    assert resp.status_code == 422 and "'day', 'week', 'month' or 'all'" in resp.json()["detail"]
    assert (await client.get("/v1/rank/day?page=0")).status_code == 400
    assert (await client.get("/v1/rank/day?page=abc")).status_code == 422


async def test_search_by_text_returns_album_id_and_title(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/search/Plain/1")
    assert resp.status_code == 200
    items = resp.json()
    assert {"album_id": "100001", "title": "Plain Album"} in items
    assert all(set(i) == {"album_id", "title"} for i in items)


async def test_search_by_id_returns_that_album(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/search/200001/1")
    assert resp.json() == [{"album_id": "200001", "title": "Two Chapters"}]


async def test_search_rejects_page_zero(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/search/x/0")).status_code == 400
    assert (await client.get("/v1/search/x/one")).status_code == 422


async def test_info_has_every_compatible_field(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/info/200001")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "success" and body["title"] == "Two Chapters"
    assert body["tag"] == ["series", "chinese"]
    assert body["authors"] == ["Carol", "Dave"]
    assert body["method"] == "api"
    assert isinstance(body["page_count"], int)
    assert body["view_count"] is not None and body["like_count"] is not None
    assert body["chapters"] == [
        {"id": "200001", "title": "第1話", "sort": 1},
        {"id": "200002", "title": "第2話", "sort": 2},
    ]


async def test_info_keeps_odd_titles_verbatim(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/info/100002")).json()
    assert body["title"] == ILLEGAL_TITLE.strip()


async def test_unknown_and_login_only_albums_are_404(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    for aid in ("999999", "300001"):
        resp = await client.get(f"/v1/info/{aid}")
        assert resp.status_code == 404, resp.text
        assert "does not exist" in assert_clean_error(resp, jm_double)


async def test_bad_album_ids_are_400(client: httpx.AsyncClient) -> None:
    for aid in ("abc", "0", "-5", "12a"):
        resp = await client.get(f"/v1/info/{aid}")
        assert resp.status_code == 400, aid
        assert "Invalid album ID" in resp.json()["detail"]


async def test_cover_is_jpeg_and_cacheable(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    resp = await client.get("/v1/get/cover/100001")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/jpeg"
    assert resp.content == jm_double.cover_bytes("100001", "_3x4")
    assert "max-age" in resp.headers["cache-control"]
    etag = resp.headers["etag"]
    again = await client.get("/v1/get/cover/100001", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


async def test_cover_of_unknown_album_is_404(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    resp = await client.get("/v1/get/cover/999999")
    assert resp.status_code == 404
    assert_clean_error(resp, jm_double)


async def test_answers_are_cached(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    for _ in range(3):
        assert (await client.get("/v1/info/100001")).status_code == 200
        assert (await client.get("/v1/rank/week")).status_code == 200
    assert jm_double.hits("/album") == 1
    assert jm_double.hits("/categories/filter") == 1


async def test_identical_requests_in_flight_make_one_upstream_call(
    client: httpx.AsyncClient, jm_double: JmDouble
) -> None:
    await client.get("/v1/health")
    jm_double.set_latency(0.3, "/album")
    jm_double.reset_hits()
    responses = await asyncio.gather(*(client.get("/v1/info/200001") for _ in range(20)))
    assert all(r.status_code == 200 for r in responses)
    assert jm_double.hits("/album") == 1


async def test_unreachable_upstream_is_503(tmp_path: Path) -> None:
    with JmDouble() as jm:
        settings = make_settings(tmp_path, jm)
    # The double is stopped: nothing listens on its port any more.
    async with app_client(settings) as c:
        resp = await c.get("/v1/rank/day")
        assert resp.status_code == 503
        assert "unreachable" in assert_clean_error(resp, jm)


async def test_cloudflare_page_is_502(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    await client.get("/v1/info/100001")  # client created, cookies fetched
    jm_double.cloudflare(True)
    resp = await client.get("/v1/rank/month")
    assert resp.status_code == 502
    assert_clean_error(resp, jm_double)


async def test_http_403_and_500_are_502(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    await client.get("/v1/info/100001")
    jm_double.fail("/search", status=403, body=b"<html>Restricted Access!</html>", content_type="text/html")
    assert (await client.get("/v1/search/anything/1")).status_code == 502
    jm_double.fail("/categories", status=500)
    assert (await client.get("/v1/rank/day")).status_code == 502


async def test_slow_upstream_is_504(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path, jm_double, jm_timeout_seconds=0.5)
    async with app_client(settings) as c:
        await c.get("/v1/info/100001")
        jm_double.set_latency(2.0, "/album")
        resp = await c.get("/v1/info/200001")
        assert resp.status_code == 504
        assert_clean_error(resp, jm_double)


async def test_slow_upstream_does_not_stall_health(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path, jm_double, cache_ttl_seconds=0)
    async with app_client(settings) as c:
        await c.get("/v1/info/100001")
        jm_double.set_latency(1.5, "/search")
        before = jm_double.hits("/search")
        slow = [asyncio.create_task(c.get(f"/v1/search/q{i}/1")) for i in range(40)]
        await wait_for(lambda: jm_double.hits("/search") - before == 40, timeout=5, interval=0.01,
                       message="the 40 slow searches did not all reach the upstream")
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            assert (await c.get("/v1/health")).status_code == 200
            latencies.append(time.perf_counter() - started)
        assert not any(t.done() for t in slow), "the slow requests should still be waiting"
        assert max(latencies) < 0.25
        await asyncio.gather(*slow)


async def test_replayed_answers_keep_cors_and_errors_are_not_replayed(
    client: httpx.AsyncClient, jm_double: JmDouble
) -> None:
    first = await client.get("/v1/rank/day", headers={"Origin": "https://app.example"})
    again = await client.get("/v1/rank/day", headers={"Origin": "https://app.example"})
    assert again.content == first.content
    assert again.headers["access-control-allow-origin"] == "*"
    assert again.headers["content-type"] == "application/json"
    assert (await client.get("/v1/info/777777")).status_code == 404
    jm_double.add_album(FakeAlbum.single("777777", "Arrived Later", 1))
    assert (await client.get("/v1/info/777777")).status_code == 200
