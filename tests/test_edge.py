"""The outermost layer: request ids, CORS only where a browser asks, and /v1/health's documented shape."""

from __future__ import annotations

import httpx

from app.api.schemas import Health


async def test_health_answers_its_documented_shape(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/health")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    health = Health.model_validate(resp.json())
    assert health.app == "jmcomic_server_api" and health.status == "ok"
    assert set(resp.json()) == set(Health.model_fields)


async def test_request_ids_are_echoed_or_made_up(client: httpx.AsyncClient) -> None:
    given = await client.get("/v1/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/v1/health", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces" and len(made.headers["x-request-id"]) == 16


async def test_cors_headers_only_for_browsers_but_every_answer_varies_by_origin(client: httpx.AsyncClient) -> None:
    plain = await client.get("/v1/health")
    assert "access-control-allow-origin" not in plain.headers and "Origin" in plain.headers["vary"]
    browser = await client.get("/v1/health", headers={"Origin": "https://app.example"})
    assert browser.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in browser.headers["access-control-expose-headers"].lower()
    preflight = await client.options("/v1/download/album/100001", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"


async def test_health_answered_at_the_edge_is_the_routed_answer_and_is_counted(client: httpx.AsyncClient) -> None:
    """A monitor's GET /v1/health is answered by the outermost layer; a browser's (with Origin) is
    routed. Both say the same thing with the same headers (bar CORS), and both are counted."""
    from app.metrics import HTTP_REQUESTS

    counted = HTTP_REQUESTS.labels(method="GET", route="/v1/health", status="200")
    before = counted._value.get()
    edge = await client.get("/v1/health", headers={"X-Request-ID": "edge-1"})
    routed = await client.get("/v1/health", headers={"X-Request-ID": "routed-1", "Origin": "https://app.example"})
    assert counted._value.get() - before == 2
    e, r = edge.json(), routed.json()
    assert abs(e.pop("server_time") - r.pop("server_time")) < 60_000 and e == r
    assert edge.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert int(edge.headers["content-length"]) == len(edge.content)
    assert edge.headers["x-request-id"] == "edge-1" and routed.headers["x-request-id"] == "routed-1"
    assert edge.headers["vary"] == "Origin"
    # Not for the edge: a HEAD, and a GET with a body, go through the stack like any request.
    head = await client.head("/v1/health")
    assert head.status_code in (200, 405) and head.headers.get("x-request-id")
    with_body = await client.request("GET", "/v1/health", content=b"x" * 10)
    assert with_body.status_code == 200 and with_body.json()["status"] == "ok"
