"""A wrong method on a known path: 405, the path's methods in ``Allow`` and in the sentence (api.md Part 2).

Found broken once by a framework upgrade (FastAPI 0.165 nests included routers): the answer named
no method at all. These paths cover a fixed path, path parameters, and a path with two methods.
"""

from __future__ import annotations

import httpx
import pytest

CASES = [
    ("PUT", "/v1/download/album/123456", ["POST"]),
    ("POST", "/v1/jobs/0123456789abcdef", ["DELETE", "GET"]),
    ("PATCH", "/v1/jobs/0123456789abcdef/file", ["GET"]),
    ("DELETE", "/v1/health", ["GET"]),
    ("POST", "/v1/search/hero/1", ["GET"]),
    ("PUT", "/v1/booru/gelbooru/posts", ["GET"]),
    # A concrete path next to a templated one (/v1/download/{file_name} takes GET): its own methods.
    ("OPTIONS", "/v1/download/favorites", ["POST"]),
]


@pytest.mark.parametrize(("method", "path", "allowed"), CASES)
async def test_wrong_method_names_the_methods_the_path_takes(
    client: httpx.AsyncClient, method: str, path: str, allowed: list[str]
) -> None:
    resp = await client.request(method, path)
    assert resp.status_code == 405
    header = sorted(m.strip() for m in resp.headers["allow"].split(","))
    assert [m for m in header if m != "HEAD"] == allowed
    detail = resp.json()["detail"]
    assert detail.startswith(f"{method} is not allowed here; use ")
    assert detail.endswith(".") and not detail.endswith("use .")
    for name in allowed:
        assert name in detail
    # Nothing was started by the refused request.
    assert (await client.get("/v1/jobs/0123456789abcdef")).status_code == 404


async def test_two_methods_read_as_a_sentence(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/jobs/0123456789abcdef")
    assert resp.json() == {"detail": "POST is not allowed here; use GET or DELETE."}
    assert resp.headers["allow"] == "GET, DELETE"


async def test_one_method_reads_as_the_contract_says(client: httpx.AsyncClient) -> None:
    resp = await client.put("/v1/download/album/123456")
    assert resp.json() == {"detail": "PUT is not allowed here; use POST."}
    assert resp.headers["allow"] == "POST"


async def test_the_page_and_its_files_say_get(client: httpx.AsyncClient) -> None:
    for path in ("/", "/web/app.css"):
        resp = await client.post(path)
        assert resp.status_code == 405, path
        assert "GET" in resp.headers["allow"]
        assert resp.json()["detail"] == "POST is not allowed here; use GET."


async def test_the_openapi_document_describes_the_refusal(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    refusal = document["components"]["responses"]["MethodNotAllowed"]
    assert "Allow" in refusal["headers"]
    assert refusal["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
