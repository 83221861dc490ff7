"""The JM double (tests/fakes/jm.py) against the real jmcomic library, end to end on 127.0.0.1."""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jmcomic
import pytest
from jmcomic import (
    JmcomicText,
    JmModuleConfig,
    JmOption,
    MissingAlbumPhotoException,
    PartialDownloadFailedException,
    RequestRetryAllFailException,
)
from PIL import Image, ImageChops

from tests.fakes import images
from tests.fakes.jm import (
    CONTENT_SECRET,
    ILLEGAL_TITLE,
    SAME_TITLE,
    FakeAlbum,
    JmDouble,
    big_album,
    configure_jmcomic_for,
    decrypt_data,
    jm_option_dict,
    sign_headers,
    strip_count,
)

LIST_ITEM_KEYS = {"id", "author", "description", "name", "image", "category", "category_sub", "liked",
                  "is_favorite", "update_at"}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def jm() -> Iterator[JmDouble]:
    with JmDouble() as double:
        yield double


@pytest.fixture(autouse=True)
def _fresh(jm: JmDouble) -> Iterator[None]:
    configure_jmcomic_for(jm)
    jm.clear_faults()
    jm.reset_hits()
    yield
    jm.clear_faults()


def make_option(jm: JmDouble, base_dir: Path, **kw) -> JmOption:
    return JmOption.construct(jm_option_dict(jm, str(base_dir), **kw))


def client_for(jm: JmDouble, tmp_path: Path, **kw):
    return make_option(jm, tmp_path, **kw).new_jm_client()


def raw_get(jm: JmDouble, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(jm.url(path), headers=headers or {})
    try:
        with NO_PROXY.open(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def page_of(path: str) -> int:
    return int(Path(path).stem)


# ---- metadata --------------------------------------------------------------------------------


def test_configure_points_every_jmcomic_url_at_the_double(jm: JmDouble) -> None:
    assert JmModuleConfig.PROT == "http://"
    assert JmcomicText.get_album_cover_url("100001") == f"http://{jm.host}/media/albums/100001.jpg"
    assert JmcomicText.format_url("/album?id=1", JmModuleConfig.DOMAIN_API_LIST[0]).startswith(jm.base_url)
    assert JmModuleConfig.DEFAULT_PROXIES == {}


def test_client_creation_fetches_setting_cookies(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path)
    assert jm.hits("/setting") == 1
    assert client.get_meta_data("cookies")["ipcountry"] == "US"


@pytest.mark.parametrize("album_id", [a.album_id for a in JmDouble().albums.values() if not a.login_only])
def test_album_detail_matches_catalogue(jm: JmDouble, tmp_path: Path, album_id: str) -> None:
    fake = jm.albums[album_id]
    album = client_for(jm, tmp_path).get_album_detail(album_id)
    assert album.album_id == album_id
    assert album.name == fake.name
    assert album.authors == fake.authors
    assert album.tags == fake.tags
    assert album.works == fake.works and album.actors == fake.actors
    assert int(album.views) == fake.views and int(album.likes) == fake.likes
    assert album.description == fake.description
    assert album.page_count == fake.total_pages
    assert album.comment_count == fake.comment_total
    assert album.pub_date  # parsed from addtime
    assert [(str(pid), title) for pid, _sort, title in album.episode_list] == \
        [(ch.photo_id, ch.title if len(fake.chapters) > 1 else fake.name) for ch in fake.chapters]


def test_catalogue_covers_the_awkward_cases(jm: JmDouble) -> None:
    names = [a.name for a in jm.albums.values()]
    assert names.count(SAME_TITLE) == 2
    assert ILLEGAL_TITLE in names and all(c in ILLEGAL_TITLE for c in '/\\:*?"<>|')
    assert any(a.login_only for a in jm.albums.values())
    assert any(len(a.chapters) > 1 for a in jm.albums.values())
    ids = [int(ch.photo_id) for a in jm.albums.values() for ch in a.chapters]
    assert min(ids) < 220980 and max(ids) > 421926
    assert any(220980 <= i < 268850 for i in ids) and any(268850 <= i < 421926 for i in ids)


def test_chapter_id_redirects_to_its_album(jm: JmDouble, tmp_path: Path) -> None:
    album = client_for(jm, tmp_path).get_album_detail("200002")
    assert album.album_id == "200001"
    assert [str(e[0]) for e in album.episode_list] == ["200001", "200002"]


def test_photo_detail_of_second_chapter(jm: JmDouble, tmp_path: Path) -> None:
    photo = client_for(jm, tmp_path).get_photo_detail("200002")
    assert photo.photo_id == "200002"
    assert photo.album_id == "200001"
    assert photo.sort == 2 and photo.album_index == 2
    assert photo.page_arr == ["00001.webp", "00002.webp"]
    assert photo.scramble_id == "220980"
    assert photo.from_album.name == "Two Chapters"
    assert photo[0].download_url == f"http://{jm.host}/media/photos/200002/00001.webp"


def test_one_chapter_photo_is_its_own_album(jm: JmDouble, tmp_path: Path) -> None:
    photo = client_for(jm, tmp_path).get_photo_detail("500001", fetch_album=False)
    assert photo.is_single_album and photo.album_id == "500001"
    assert len(photo) == 4


@pytest.mark.parametrize("album_id", ["999999", "300001"], ids=["unknown", "login-only"])
def test_missing_and_login_only_albums_raise_missing(jm: JmDouble, tmp_path: Path, album_id: str) -> None:
    client = client_for(jm, tmp_path, retry_times=2)
    with pytest.raises(MissingAlbumPhotoException) as info:
        client.get_album_detail(album_id)
    assert info.value.error_jmid == album_id
    assert jm.hits("/album") == 1  # an answer, not an error: not retried
    with pytest.raises(MissingAlbumPhotoException):
        client.get_photo_detail(album_id, fetch_album=False)


def test_download_of_unknown_album_raises_missing(jm: JmDouble, tmp_path: Path) -> None:
    with pytest.raises(MissingAlbumPhotoException):
        jmcomic.download_album("999999", make_option(jm, tmp_path))


# ---- search and rankings ---------------------------------------------------------------------


def test_search_by_text_matches_name_or_tag_case_insensitively(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path)
    page = client.search_site("ROMANCE")
    assert not page.is_single_album
    ids = list(page.iter_id())
    assert len(ids) >= 3 and ids == jm.search_ids("romance")
    assert page.total == len(ids)
    for _aid, info in page.content:
        assert LIST_ITEM_KEYS <= set(info)
    assert list(client.search_site("plain album").iter_id()) == ["100001"]  # by name, two terms
    assert list(client.search_author("alice").iter_id()) == ["100001"]
    assert set(client.search_tag("twin").iter_id()) == {"100003", "100004"}


def test_search_with_no_result_has_null_total(jm: JmDouble, tmp_path: Path) -> None:
    page = client_for(jm, tmp_path).search_site("no such thing anywhere")
    assert page.total == 0 and len(page) == 0


@pytest.mark.parametrize("query", ["100001", "JM100001"])
def test_search_by_album_id_returns_that_album(jm: JmDouble, tmp_path: Path, query: str) -> None:
    page = client_for(jm, tmp_path).search_site(query)
    assert page.is_single_album
    assert page.single_album.album_id == "100001"
    assert page.single_album.name == "Plain Album"


def test_rankings_list_every_album_ordered_by_period_views(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path)
    orders = {}
    for name, period in (("day", "t"), ("week", "w"), ("month", "m")):
        page = getattr(client, f"{name}_ranking")(1)
        orders[name] = list(page.iter_id())
        assert orders[name] == jm.ranking(period)
        assert page.total == len(jm.albums) == len(orders[name])
        for _aid, info in page.content:
            assert LIST_ITEM_KEYS <= set(info)
    assert len({tuple(o) for o in orders.values()}) > 1  # periods give different orders
    assert jm.hits("/categories/filter") == 3


def test_ranking_by_category(jm: JmDouble, tmp_path: Path) -> None:
    page = client_for(jm, tmp_path).week_ranking(1, category="hanman")
    assert set(page.iter_id()) == {a.album_id for a in jm.albums.values() if a.category == "hanman"}


def test_list_totals_vary_in_type_as_on_the_site(jm: JmDouble) -> None:
    ts = "1700000000"
    h = sign_headers(ts)
    _, _, body = raw_get(jm, "/search?main_tag=0&search_query=romance&page=1&o=mr&t=a", h)
    assert isinstance(decrypt_data(json.loads(body)["data"], ts)["total"], str)
    _, _, body = raw_get(jm, "/categories/filter?page=1&order=&c=0&o=mv_w", h)
    assert isinstance(decrypt_data(json.loads(body)["data"], ts)["total"], int)
    _, _, body = raw_get(jm, "/search?main_tag=0&search_query=zzzz&page=1&o=mr&t=a", h)
    assert decrypt_data(json.loads(body)["data"], ts)["total"] is None


# ---- protocol --------------------------------------------------------------------------------


def test_wrong_token_gets_400_not_legal(jm: JmDouble) -> None:
    ts = "1700000000"
    for headers in ({}, {**sign_headers(ts), "token": "0" * 32}, sign_headers(ts, secret=CONTENT_SECRET)):
        status, _, body = raw_get(jm, "/album?id=100001", headers)
        assert status == 400
        assert json.loads(body) == {"code": 400, "data": [], "errorMsg": "Not legal."}


def test_signed_request_is_encrypted_with_the_request_ts(jm: JmDouble) -> None:
    ts = "1711111111"
    status, headers, body = raw_get(jm, "/album?id=100001", sign_headers(ts))
    assert status == 200 and int(headers["Content-Length"]) == len(body)
    outer = json.loads(body)
    assert outer["code"] == 200 and isinstance(outer["data"], str)
    assert decrypt_data(outer["data"], ts)["name"] == "Plain Album"
    with pytest.raises(Exception):  # noqa: B017 - wrong key: garbage or bad padding
        assert decrypt_data(outer["data"], "1700000000")["name"] == "Plain Album"


def test_chapter_view_template_accepts_both_secrets(jm: JmDouble) -> None:
    for secret in ("185Hcomic3PAPP7R", CONTENT_SECRET):
        status, _, body = raw_get(jm, "/chapter_view_template?id=500001&mode=vertical&page=0",
                                  sign_headers("1700000000", secret=secret))
        assert status == 200 and b"var scramble_id = 220980;" in body


def test_images_need_no_token_and_unknown_pages_are_404(jm: JmDouble) -> None:
    status, headers, body = raw_get(jm, "/media/photos/100001/00001.webp")
    assert status == 200 and body == jm.served_bytes("100001", 1)
    assert headers["Content-Type"] == "image/webp"
    assert raw_get(jm, "/media/photos/100001/00006.webp")[0] == 404
    assert raw_get(jm, "/media/photos/123/00001.webp")[0] == 404


def test_keep_alive_and_no_nagle_stall(jm: JmDouble) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", jm.port, timeout=5)
    started = time.perf_counter()
    for _ in range(30):
        conn.request("GET", "/media/photos/100001/00002.webp")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == jm.served_bytes("100001", 2)
        assert resp.getheader("Connection") == "keep-alive"
    elapsed = time.perf_counter() - started
    conn.close()
    assert jm.hits("/media/photos/100001/00002.webp") == 30
    assert elapsed < 1.0  # ~40 ms per request if headers and body were two delayed segments


def test_burst_of_connections_is_accepted(jm: JmDouble) -> None:
    assert jm._server is not None and jm._server.request_queue_size >= 1024

    def one(_: int) -> int:
        return raw_get(jm, "/media/albums/100001.jpg")[0]

    with ThreadPoolExecutor(64) as pool:
        assert set(pool.map(one, range(256))) == {200}


# ---- downloads -------------------------------------------------------------------------------


def test_download_plain_album_writes_served_bytes(jm: JmDouble, tmp_path: Path) -> None:
    result = jmcomic.download_album("100001", make_option(jm, tmp_path))
    files = result.manifest.image_filepath_list
    assert sorted(page_of(f) for f in files) == [1, 2, 3, 4, 5]
    for f in files:
        assert Path(f).read_bytes() == jm.served_bytes("100001", page_of(f))
        assert Path(f).is_relative_to(tmp_path)
    assert jm.hits("/media/photos/100001/") == 5


def test_download_two_chapter_album(jm: JmDouble, tmp_path: Path) -> None:
    result = jmcomic.download_album("200001", make_option(jm, tmp_path))
    files = result.manifest.image_filepath_list
    by_chapter: dict[str, list[int]] = {}
    for f in files:
        chapter_dir = Path(f).parent.name  # rule Bd_Aid_Pindex: <base>/<aid>/<index>/
        by_chapter.setdefault(chapter_dir, []).append(page_of(f))
    assert {k: sorted(v) for k, v in by_chapter.items()} == {"1": [1, 2, 3], "2": [1, 2]}
    for f in files:
        photo_id = "200001" if Path(f).parent.name == "1" else "200002"
        assert Path(f).read_bytes() == jm.served_bytes(photo_id, page_of(f))


@pytest.mark.parametrize("album_id", ["500001", "250001", "300002"])
def test_download_scrambled_album_restores_original_pixels(jm: JmDouble, tmp_path: Path, album_id: str) -> None:
    pages = jm.albums[album_id].chapters[0].pages
    nums = [strip_count(album_id, f"{p:05d}") for p in range(1, pages + 1)]
    assert all(n >= 2 for n in nums)
    served = Image.open(io.BytesIO(jm.served_bytes(album_id, 1))).convert("RGB")
    assert served.tobytes() != jm.expected_image(album_id, 1).tobytes()  # really scrambled

    result = jmcomic.download_album(album_id, make_option(jm, tmp_path, suffix=".png"))
    files = result.manifest.image_filepath_list
    assert sorted(page_of(f) for f in files) == list(range(1, pages + 1))
    for f in files:
        assert f.endswith(".png")
        with Image.open(f) as got:
            assert got.convert("RGB").tobytes() == jm.expected_image(album_id, page_of(f)).tobytes()


def test_scramble_is_the_inverse_of_jmcomic_descramble(jm: JmDouble) -> None:
    original = jm.expected_image("500001", 1)
    for num in (2, 4, 7, 10, 16):
        assert images.unscramble(images.scramble(original, num), num).tobytes() == original.tobytes()


def test_scrambled_album_kept_as_webp_is_reencoded_lossy(jm: JmDouble, tmp_path: Path) -> None:
    # jmcomic saves descrambled pages through Pillow; with a .webp name that is lossy WebP
    result = jmcomic.download_album("500001", make_option(jm, tmp_path))
    f = result.manifest.image_filepath_list[0]
    with Image.open(f) as got:
        diff = ImageChops.difference(got.convert("RGB"), jm.expected_image("500001", page_of(f)))
    mean = sum(i * n for i, n in enumerate(diff.convert("L").histogram())) / (200 * 300)
    assert mean < 8  # close to the original...
    assert diff.getbbox() is not None  # ...but not exact


def test_cover_bytes_through_the_client(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path)
    for size in ("", "_3x4"):
        url = JmcomicText.get_album_cover_url("500001", size=size)
        assert url == f"http://{jm.host}/media/albums/500001{size}.jpg"
        assert client.get_jm_image(url).content == jm.cover_bytes("500001", size)
    with Image.open(io.BytesIO(jm.cover_bytes("500001", "_3x4"))) as cover:
        assert cover.format == "JPEG" and cover.size == (300, 400)
    with pytest.raises(jmcomic.JmcomicException):
        client.get_jm_image(JmcomicText.get_album_cover_url("999999"))


def test_big_album_pages_are_generated_lazily(tmp_path: Path) -> None:
    album = big_album("700001", pages=200)
    double = JmDouble([album])
    with double:
        configure_jmcomic_for(double)
        client = client_for(double, tmp_path)
        assert client.get_album_detail("700001").page_count == 200
        photo = client.get_photo_detail("700001", fetch_album=False)
        assert len(photo) == 200
        assert not double._bytes_cache
        last = client.get_jm_image(photo[199].download_url).content
        assert last == double.served_bytes("700001", 200)
        assert len(double._bytes_cache) == 1


def test_add_album_serves_it(jm: JmDouble, tmp_path: Path) -> None:
    jm.add_album(FakeAlbum.single("100099", "Added Later", 1))
    try:
        assert client_for(jm, tmp_path).get_album_detail("100099").name == "Added Later"
    finally:
        del jm.albums["100099"]


# ---- fault injection -------------------------------------------------------------------------


def test_permanent_500_is_retried_then_gives_up(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path, retry_times=2)
    jm.fail("/album", status=500)
    with pytest.raises(RequestRetryAllFailException):
        client.get_album_detail("100001")
    assert jm.hits("/album") == 3  # retry_times + 1 on the only domain
    jm.clear_faults()
    assert client.get_album_detail("100001").name == "Plain Album"


def test_fail_times_then_recovers(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path, retry_times=1)
    jm.fail("/album", status=502, times=1)
    assert client.get_album_detail("100001").name == "Plain Album"
    assert jm.hits("/album") == 2


def test_json_4xx_is_not_retried(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path, retry_times=3)
    jm.fail("/album", status=403, body=b'{"code": 403, "data": [], "errorMsg": "Forbidden"}',
            content_type="application/json")
    with pytest.raises(jmcomic.JmcomicException) as info:
        client.get_album_detail("100001")
    assert not isinstance(info.value, RequestRetryAllFailException)
    assert jm.hits("/album") == 1


def test_cloudflare_page_blocks_the_api_but_not_images(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path, retry_times=1)
    jm.cloudflare()
    with pytest.raises(RequestRetryAllFailException):
        client.get_album_detail("100001")
    assert jm.hits("/album") == 2
    status, headers, body = raw_get(jm, "/album?id=100001", sign_headers("1700000000"))
    assert status == 403 and b"Just a moment..." in body and headers["Content-Type"].startswith("text/html")
    assert raw_get(jm, "/media/photos/100001/00001.webp")[0] == 200
    jm.cloudflare(False)
    assert client.get_album_detail("100001").album_id == "100001"


def test_cloudflare_with_zero_retries_raises_the_bare_error(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path, retry_times=0)
    jm.cloudflare()
    with pytest.raises(jmcomic.JmcomicException) as info:
        client.get_album_detail("100001")
    # retry_times=0 re-raises the first error as is: no RequestRetryAllFailException wrapper
    assert not isinstance(info.value, RequestRetryAllFailException)


def test_latency_applies_by_prefix(jm: JmDouble, tmp_path: Path) -> None:
    client = client_for(jm, tmp_path)
    jm.set_latency(0.3, "/album")
    started = time.perf_counter()
    client.get_album_detail("100001")
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    client.search_site("romance")
    assert time.perf_counter() - started < 0.25
    jm.set_latency(0)
    jm.latency = 0.2
    assert jm.latency == 0.2
    started = time.perf_counter()
    raw_get(jm, "/media/albums/100001.jpg")
    assert time.perf_counter() - started >= 0.2
    jm.clear_faults()
    assert jm.latency == 0


def test_images_fail_after_n_ok_gives_partial_download(jm: JmDouble, tmp_path: Path) -> None:
    jm.fail_images_after(2, status=503)
    with pytest.raises(PartialDownloadFailedException) as info:
        jmcomic.download_album("100001", make_option(jm, tmp_path, image_threads=2))
    written = [p for p in tmp_path.rglob("*.webp")]
    assert len(written) == 2
    assert len(info.value.downloader.download_failed_image) == 3
    assert jm.hits("/media/photos") == 5


def test_fail_prefix_on_images_and_hits_reset(jm: JmDouble) -> None:
    jm.fail("/media/photos/100001/00003", status=404, times=2)
    assert raw_get(jm, "/media/photos/100001/00003.webp")[0] == 404
    assert raw_get(jm, "/media/photos/100001/00003.webp")[0] == 404
    assert raw_get(jm, "/media/photos/100001/00003.webp")[0] == 200
    assert raw_get(jm, "/media/photos/100001/00004.webp")[0] == 200
    assert jm.hits("/media/photos/100001/00003") == 3
    assert jm.hits("/media") == 4
    jm.reset_hits()
    assert jm.hits("") == 0


def test_faults_are_safe_to_change_during_requests(jm: JmDouble) -> None:
    stop = threading.Event()

    def toggler() -> None:
        while not stop.is_set():
            jm.fail("/media/photos/100001/", status=500, times=1)
            jm.set_latency(0.001, "/media")
            jm.clear_faults()

    t = threading.Thread(target=toggler)
    t.start()
    try:
        codes = [raw_get(jm, "/media/photos/100001/00001.webp")[0] for _ in range(50)]
    finally:
        stop.set()
        t.join()
    assert set(codes) <= {200, 500} and 200 in codes
    assert jm.hits("/media/photos/100001/00001.webp") == 50


def test_stop_frees_the_port_and_cuts_keep_alive_connections() -> None:
    double = JmDouble().start()
    port = double.port
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    kept.request("GET", "/media/albums/100001.jpg")
    assert kept.getresponse().read()
    double.stop()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/setting")
    with pytest.raises((OSError, http.client.HTTPException)):
        kept.request("GET", "/media/albums/100001.jpg")
        kept.getresponse().read()
    kept.close()


async def test_async_client_download_works_too(jm: JmDouble, tmp_path: Path) -> None:
    # the async client signs /chapter_view_template with the other secret
    result = await jmcomic.download_album_async("500001", make_option(jm, tmp_path, suffix=".png"))
    files = result.manifest.image_filepath_list
    assert sorted(page_of(f) for f in files) == [1, 2, 3, 4]
    for f in files:
        with Image.open(f) as got:
            assert got.convert("RGB").tobytes() == jm.expected_image("500001", page_of(f)).tobytes()
