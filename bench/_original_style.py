"""A minimal Gelbooru dataset downloader in the shape of the original Gelbooru-API-Downloader (written
here from its README's description, none of its code): list a page of posts, download that page's
images with a 16-thread pool (requests-style, one blocking client), write ``<md5>.<ext>`` and a
``<md5>.txt`` caption, then the next page. The reference for bench/bench_cli_dataset.py.

    python bench/_original_style.py BASE_URL TAGS MAX OUT_DIR [--workers 16] [--api-key K --user-id U]
"""

from __future__ import annotations

import argparse
import html
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx


def caption(tags: str) -> str:
    words = [html.unescape(t) for t in tags.split()]
    return ", ".join((t.replace("_", " ") if len(t) > 3 else t).replace("(", r"\(").replace(")", r"\)")
                     for t in words)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("tags")
    ap.add_argument("max", type=int)
    ap.add_argument("out")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--user-id", default="")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=args.workers + 2))

    def fetch(post: dict) -> None:
        name = f"{post['md5']}.{post['image'].rsplit('.', 1)[-1]}"
        data = client.get(post["file_url"], headers={"Referer": args.base + "/"}).content
        (out / name).write_bytes(data)
        (out / name).with_suffix(".txt").write_text(caption(post.get("tags", "")), encoding="utf-8")

    done, pid = 0, 0
    with ThreadPoolExecutor(args.workers) as pool:
        while done < args.max:
            params = {"page": "dapi", "s": "post", "q": "index", "json": 1, "tags": args.tags, "limit": 100,
                      "pid": pid, "api_key": args.api_key, "user_id": args.user_id}
            posts = client.get(f"{args.base}/index.php", params=params).json().get("post", [])
            if not posts:
                break
            batch = posts[: args.max - done]
            list(pool.map(fetch, batch))
            done += len(batch)
            pid += 1
    client.close()
    print(f"downloaded {done} -> {out}", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
