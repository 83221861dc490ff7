"""A loopback Danbooru 2 (danbooru.donmai.us): ``posts.json``, ``counts/posts.json``, ``tags.json``
and ``/original/..`` images.

Quirks served: ``limit`` silently capped at 200; numbered pages end at 1000 (410 beyond) while
``page=b<id>``/``a<id>`` go anywhere; more than 2 plain tags is a 422 for anonymous and basic
accounts (Gold: 6); restricted posts have no ``md5``/``file_url`` keys at all; Cloudflare's 403
"Just a moment..." page for a missing or HTTP-library User-Agent, on every path; HTTP Basic or
``login``/``api_key`` parameters, 401 for a wrong key.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from fnmatch import fnmatchcase
from typing import Any

from tests.fakes.booru import BooruDouble, Handler, plain_tags

LETTERS = {"general": "g", "sensitive": "s", "questionable": "q", "explicit": "e"}
FIELDS = {0: "tag_string_general", 1: "tag_string_artist", 3: "tag_string_copyright", 4: "tag_string_character",
          5: "tag_string_meta"}
METATAG_PREFIXES = ("rating:", "order:", "id:", "status:", "score:", "md5:", "user:", "fav:", "width:", "height:")


def _json(h: Handler, status: int, doc: Any) -> None:
    h.send(status, json.dumps(doc).encode(), "application/json; charset=utf-8")


class DanbooruDouble(BooruDouble):
    refuse_library_agents = True

    def __init__(self, posts: list[dict[str, Any]] | None = None, *, accounts: dict[str, tuple[str, str]] | None = None,
                 tag_types: dict[str, int] | None = None) -> None:
        super().__init__(posts, tag_types=tag_types)
        self.accounts = dict(accounts or {})  # login -> (api_key, "member" | "gold")

    def classify(self, path: str, query: dict[str, list[str]]) -> tuple[str, str]:
        if path.startswith(("/original/", "/sample/", "/preview/")):
            return "image", path.rsplit("/", 1)[-1].split(".")[0].removeprefix("sample-")
        if path == "/posts.json":
            return "post", ""
        if path == "/counts/posts.json":
            return "count", ""
        if path == "/tags.json":
            return "tag", ""
        if path == "/pools.json" or (path.startswith("/pools/") and path.endswith(".json")):
            return "pool", ""
        return "other", ""

    def account(self, h: Handler, query: dict[str, list[str]]) -> tuple[bool, str]:
        """(credentials acceptable, level): none given is anonymous, wrong ones are refused."""
        login, key = query.get("login", [""])[-1], query.get("api_key", [""])[-1]
        header = h.headers.get("Authorization", "")
        if header.startswith("Basic "):
            login, _, key = base64.b64decode(header[6:]).decode().partition(":")
        if not login and not key:
            return True, "anonymous"
        known = self.accounts.get(login)
        return (known is not None and known[0] == key), known[1] if known else ""

    def serve_api(self, h: Handler, kind: str, path: str, query: dict[str, list[str]]) -> None:
        ok, level = self.account(h, query)
        if not ok:
            _json(h, 401, {"success": False, "error": "SessionLoader::AuthenticationFailure",
                           "message": "Invalid API key"})
            return
        tags = query.get("tags", [""])[-1]
        if path.startswith("/pools"):
            self.serve_pools(h, path, query)
            return
        if path == "/tags.json":
            names = query.get("search[name_comma]", [""])[-1].split(",")
            _json(h, 200, [{"id": i, "name": n, "post_count": 10, "category": self.tag_types[n]}
                           for i, n in enumerate(names) if n in self.tag_types])
            return
        plain = [t for t in tags.split() if not t.lower().lstrip("-~").startswith(METATAG_PREFIXES)]
        allowed = 6 if level == "gold" else 2
        if len(plain) > allowed:
            _json(h, 422, {"success": False, "error": "PostQuery::TagLimitError",
                           "message": f"You cannot search for more than {allowed} tags at a time. Upgrade your "
                                      "account to search for more tags at once."})
            return
        matches = self.search(tags, letters={v: k for k, v in LETTERS.items()})
        if path == "/counts/posts.json":
            _json(h, 200, {"counts": {"posts": len(matches)}})
            return
        limit = min(200, max(1, int(query.get("limit", ["20"])[-1] or 20)))
        page = query.get("page", ["1"])[-1] or "1"
        if page[:1] in ("b", "a"):
            edge = int(page[1:])
            chosen = [p for p in matches if p["id"] < edge][:limit] if page[0] == "b" else \
                [p for p in matches if p["id"] > edge][-limit:]
        else:
            number = int(page)
            if number > 1000:
                _json(h, 410, {"success": False, "error": "PaginationExtension::PaginationError",
                               "message": "You cannot go beyond page 1000. Try narrowing your search terms, or "
                                          "upgrade your account to go beyond page 1000."})
                return
            chosen = matches[(number - 1) * limit : number * limit]
        _json(h, 200, [self.render(p) for p in chosen])

    def pool_json(self, pool_id: int) -> dict[str, Any]:
        pool = self.pools[pool_id]
        return {"id": pool_id, "name": pool["name"], "created_at": "2026-01-02T03:04:05.000-05:00",
                "updated_at": "2026-01-02T03:04:05.000-05:00", "description": pool["description"],
                "is_active": True, "is_deleted": False, "post_ids": list(pool["post_ids"]),
                "category": pool["category"], "post_count": len(pool["post_ids"])}

    def serve_pools(self, h: Handler, path: str, query: dict[str, list[str]]) -> None:
        """``/pools/{id}.json`` (404 JSON when unknown) and ``/pools.json?search[name_matches]=``."""
        if path == "/pools.json":
            pattern = (query.get("search[name_matches]") or query.get("search[name_contains]") or [""])[-1]
            wanted = pattern.lower().replace(" ", "_") or "*"  # Danbooru: * wildcards, spaces are underscores
            found = [self.pool_json(i) for i in sorted(self.pools, reverse=True)
                     if fnmatchcase(self.pools[i]["name"].lower(), wanted)]
            _json(h, 200, found[:20])
            return
        ident = path.removeprefix("/pools/").removesuffix(".json")
        if not ident.isdigit() or int(ident) not in self.pools:
            _json(h, 404, {"success": False, "error": "ActiveRecord::RecordNotFound",
                           "message": "That record was not found."})
            return
        _json(h, 200, self.pool_json(int(ident)))

    def render(self, post: dict[str, Any]) -> dict[str, Any]:
        tags = plain_tags(post)
        md5, ext = post["md5"], post.get("_ext", "png")
        out: dict[str, Any] = {
            "id": post["id"],
            "created_at": dt.datetime.fromtimestamp(1_790_000_000 + post["id"], dt.UTC).isoformat(),
            "uploader_id": 1, "score": post.get("score", 0), "source": post.get("source", ""),
            "md5": md5, "rating": LETTERS.get(post["rating"], post["rating"]),
            "image_width": post["width"], "image_height": post["height"], "tag_string": " ".join(tags),
            "fav_count": 0, "file_ext": ext, "parent_id": post.get("parent_id") or None,  # null, as Danbooru
            "has_children": str(post.get("has_children", "false")).lower() == "true", "is_deleted": False,
            "is_banned": False, "file_size": len(post.get("_data", b"")),
            "file_url": post.get("_file_url") or f"{self.base_url}/original/{md5[:2]}/{md5[2:4]}/{md5}.{ext}",
            "large_file_url": f"{self.base_url}/sample/{md5[:2]}/{md5[2:4]}/sample-{md5}.jpg",
            "preview_file_url": f"{self.base_url}/preview/{md5[:2]}/{md5[2:4]}/{md5}.jpg",
        }
        for type_id, field in FIELDS.items():
            out[field] = " ".join(t for t in tags if self.tag_types.get(t, 0) == type_id)
        if post.get("_restricted"):  # gold-only or banned artist: the keys are simply absent
            for key in ("md5", "file_url", "large_file_url", "preview_file_url"):
                del out[key]
        out.update(post.get("_wire") or {})
        return out
