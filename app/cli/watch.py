"""``jmbooru watch``: subscriptions on a running jmbooru server (add, ls, check, rm).

The subscriptions live with the server (its scheduler checks them and its jobs download what is
new), so the command talks to the server's API rather than keeping a store of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:8000"


def register(commands: Any) -> None:
    watch = commands.add_parser(
        "watch", help="follow a JM album, your JM favourites or a booru search on a running server",
        description="Subscriptions on a running jmbooru server: it checks them on a schedule and downloads "
                    "only what is new. The server is --server (or JMBOORU_SERVER), the key --api-key (or "
                    "JMBOORU_API_KEY).")
    watch.add_argument("--server", default=os.environ.get("JMBOORU_SERVER", DEFAULT_SERVER),
                       help=f"the server's URL (default {DEFAULT_SERVER}, or JMBOORU_SERVER)")
    watch.add_argument("--api-key", default=os.environ.get("JMBOORU_API_KEY", ""), help=argparse.SUPPRESS)
    verbs = watch.add_subparsers(dest="verb", required=True, metavar="VERB")

    add = verbs.add_parser("add", help="subscribe: album ID | favorites | booru SITE TAGS...")
    add.add_argument("what", choices=["album", "favorites", "booru"])
    add.add_argument("args", nargs="*", help="album: the album id; booru: the site, then the tags")
    add.add_argument("--name")
    add.add_argument("--interval", type=float, metavar="MINUTES", help="minutes between checks (default 360)")
    add.add_argument("--seed", choices=["latest", "all"], default="latest",
                     help="latest: only what comes from now on (default); all: download what is there now too")
    add.add_argument("--format", choices=["zip", "cbz", "pdf"], help="album archives (JM kinds)")
    add.add_argument("--folder", default=None, help="favourites folder id (default 0: every favourite)")
    add.add_argument("--max-images", type=int, help="booru: posts per check")
    add.add_argument("--client-id", help="the notifications socket that hears of the jobs")
    add.add_argument("--notify", action="append", default=[], metavar="URL", help="apprise URL (repeatable)")
    add.set_defaults(func=_add)

    ls = verbs.add_parser("ls", help="list subscriptions")
    ls.add_argument("--json", action="store_true", help="print the server's JSON")
    ls.set_defaults(func=_ls)

    check = verbs.add_parser("check", help="check a subscription now")
    check.add_argument("id")
    check.set_defaults(func=_check)

    rm = verbs.add_parser("rm", help="remove a subscription (its jobs are not touched)")
    rm.add_argument("id")
    rm.set_defaults(func=_rm)


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    import httpx

    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    url = args.server.rstrip("/") + path
    try:
        resp = httpx.request(method, url, json=body, headers=headers, timeout=120)
    except httpx.HTTPError:
        raise SystemExit(f"jmbooru watch: no jmbooru server answers at {args.server} (start one with "
                         "'jmbooru serve', or give --server)") from None
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail") or resp.text
        except ValueError:
            detail = resp.text[:200]
        raise SystemExit(f"jmbooru watch: {detail}")
    return resp.json() if resp.content else None


def _add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"seed": args.seed}
    if args.what == "album":
        if len(args.args) != 1:
            raise SystemExit("jmbooru watch add album: give one album id, like: jmbooru watch add album 710")
        body.update(kind="jm_album", target={"album_id": args.args[0]})
    elif args.what == "favorites":
        body.update(kind="jm_favorites", target={"folder": args.folder} if args.folder else {})
    else:
        if len(args.args) < 2:
            raise SystemExit("jmbooru watch add booru: give the site and the tags, like: "
                             "jmbooru watch add booru danbooru kagamine_rin")
        body.update(kind="booru_query", target={"site": args.args[0], "tags": " ".join(args.args[1:])})
    for key, value in (("name", args.name), ("interval_minutes", args.interval), ("format", args.format),
                       ("max_images", args.max_images), ("client_id", args.client_id)):
        if value is not None:
            body[key] = value
    if args.notify:
        body["notify"] = args.notify
    sub = _request(args, "POST", "/v1/subscriptions", body)
    jobs = len(sub["last_jobs"])
    started = f"; {jobs} download{'s' if jobs != 1 else ''} started" if jobs else ""
    print(f"{sub['id']}  {sub['name']}  (every {sub['interval_minutes']:g} min{started})")
    return 0


def _ls(args: argparse.Namespace) -> int:
    subs = _request(args, "GET", "/v1/subscriptions")
    if args.json:
        print(json.dumps(subs, indent=2, ensure_ascii=False))
        return 0
    if not subs:
        print("no subscriptions (add one with: jmbooru watch add album ID)")
    for sub in subs:
        state = "paused" if not sub["enabled"] else f"next {sub['next_check_at']}"
        error = f"  last error: {sub['last_error']}" if sub["last_error"] else ""
        print(f"{sub['id']}  {sub['kind']:<12} {sub['name']}  (last {sub['last_checked_at']}, {state}, "
              f"{sub['last_new']} new){error}")
    return 0


def _check(args: argparse.Namespace) -> int:
    answer = _request(args, "POST", f"/v1/subscriptions/{args.id}/check")
    new, jobs = answer["new"], answer["jobs"]
    if not new:
        print("nothing new")
        return 0
    print(f"{len(new)} new, {len(jobs)} download{'s' if len(jobs) != 1 else ''} started:")
    for job in jobs:
        print(f"  {job['job_id']}  {job['status_url']}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    _request(args, "DELETE", f"/v1/subscriptions/{args.id}")
    print(f"removed {args.id}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: jmbooru watch ...")
