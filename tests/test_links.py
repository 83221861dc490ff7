"""Pasted links to what they point at (app.sources.links): every URL shape of the real sites."""

from __future__ import annotations

import pytest

from app.errors import Unprocessable
from app.sources.booru.sites import SITES
from app.sources.links import Link, SiteHosts, resolve_link

LOCAL_DANBOORU = "http://127.0.0.1:8123"


def hosts(**configured: str) -> list[SiteHosts]:
    """Every registered site at its public domain, or at ``configured[site]`` when given."""
    return [SiteHosts(site=e.site, name=e.name, family=e.family, public_url=e.url,
                      configured_url=configured.get(e.site, e.url)) for e in SITES.values()]


@pytest.mark.parametrize(("url", "expected"), [
    # JM album pages on two of its domains, with and without the title slug; the id without zeros
    ("https://18comic.vip/album/350234/some-title-slug", Link("jm_album", album_id="350234")),
    ("https://jmcomic-zzz.one/album/0350234", Link("jm_album", album_id="350234")),
    ("18comic.org/album/100001/", Link("jm_album", album_id="100001")),
    # JM chapter (reader) pages on two domains
    ("https://18comic.vip/photo/200002", Link("jm_chapter", chapter_id="200002")),
    ("https://jm-comic.me/photo/600002/?page=3", Link("jm_chapter", chapter_id="600002")),
    # Gelbooru and Gelbooru 0.2 (safebooru): list, post, pool
    ("https://gelbooru.com/index.php?page=post&s=list&tags=cat_ears+solo",
     Link("booru_posts", site="gelbooru", tags="cat_ears solo")),
    ("https://safebooru.org/index.php?page=post&s=list&tags=landscape%20sky",
     Link("booru_posts", site="safebooru", tags="landscape sky")),
    ("https://gelbooru.com/index.php?page=post&s=view&id=9001&tags=solo",
     Link("booru_post", site="gelbooru", post_id="9001", tags="id:9001")),
    ("https://www.safebooru.org/index.php?id=42&page=post&s=view",
     Link("booru_post", site="safebooru", post_id="42", tags="id:42")),
    ("https://gelbooru.com/index.php?page=pool&s=show&id=77", Link("booru_pool", site="gelbooru", pool_id="77")),
    # Danbooru: /posts?tags=, /posts/<id>, /pools/<id>
    ("https://danbooru.donmai.us/posts?tags=scenery+rating%3Ag&z=1",
     Link("booru_posts", site="danbooru", tags="scenery rating:g")),
    ("https://danbooru.donmai.us/posts/123456?q=scenery",
     Link("booru_post", site="danbooru", post_id="123456", tags="id:123456")),
    ("https://danbooru.donmai.us/pools/9", Link("booru_pool", site="danbooru", pool_id="9")),
    # Moebooru (yande.re, konachan): /post?tags=, /post/show/<id>/<slug>, /pool/show/<id>
    ("https://yande.re/post?tags=dress", Link("booru_posts", site="yandere", tags="dress")),
    ("https://konachan.com/post?page=2&tags=sky+clouds", Link("booru_posts", site="konachan", tags="sky clouds")),
    ("https://yande.re/post/show/51824/some-tags-here",
     Link("booru_post", site="yandere", post_id="51824", tags="id:51824")),
    ("https://konachan.com/pool/show/12", Link("booru_pool", site="konachan", pool_id="12")),
])
def test_link_shapes(url: str, expected: Link) -> None:
    assert resolve_link(url, hosts()) == expected


def test_a_configured_host_is_that_site_and_its_port_counts() -> None:
    sites = hosts(danbooru=LOCAL_DANBOORU)
    assert resolve_link(f"{LOCAL_DANBOORU}/posts?tags=sky", sites) == Link("booru_posts", site="danbooru", tags="sky")
    assert resolve_link(f"{LOCAL_DANBOORU}/posts/5", sites).kind == "booru_post"
    # The public domain still works while a mirror is configured.
    assert resolve_link("https://danbooru.donmai.us/posts/5", sites).site == "danbooru"
    with pytest.raises(Unprocessable):
        resolve_link("http://127.0.0.1:8124/posts?tags=sky", sites)  # another port: not that site


@pytest.mark.parametrize(("url", "words"), [
    ("https://example.com/watch?v=abc", ["example.com is not JM", "/album/<id>", "/photo/<id>", "gelbooru.com",
                                         "/posts?tags=", "/post/show/<id>", "pools"]),
    ("https://danbooru.donmai.us/artists/12", ["Danbooru page but not a post list"]),
    ("ftp://18comic.vip/album/1", ["not an http(s) link"]),
    ("two links https://yande.re/post?tags=a", ["not one link"]),
    ("https://gelbooru.com/index.php?page=post&s=list&tags=all", ["lists every post"]),
    ("https://yande.re/post", ["lists every post"]),
])
def test_links_jmbooru_cannot_use_are_422_with_what_it_understands(url: str, words: list[str]) -> None:
    with pytest.raises(Unprocessable) as caught:
        resolve_link(url, hosts())
    assert all(w in caught.value.detail for w in words), caught.value.detail
