"""Run the loopback doubles by hand, to try jmbooru without the internet (README, "Try it offline").

    .venv/bin/python -m tests.fakes.serve --env-file doubles.env &
    JMBOORU_ENV_FILE=doubles.env make run

Starts the JM double (its albums: ``tests/fakes/jm.py``) and one double per built-in booru site
(40 posts each, tagged ``1girl`` plus a few of ``DEFAULT_TAGS_POOL``), writes the settings that
point jmbooru at them into the env file, and serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path
from typing import Any

from tests.fakes.booru import make_posts
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru import GelbooruDouble
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.jm import JmDouble
from tests.fakes.moebooru import MoebooruDouble

POSTS = 40


def start_doubles() -> tuple[JmDouble, dict[str, Any]]:
    jm = JmDouble().start()
    boorus: dict[str, Any] = {
        "gelbooru": GelbooruDouble(make_posts(POSTS)),
        "safebooru": GelbooruV02Double(make_posts(POSTS, start_id=2000)),
        "danbooru": DanbooruDouble(make_posts(POSTS, start_id=3000)),
        "yandere": MoebooruDouble(make_posts(POSTS, start_id=4000)),
        "konachan": MoebooruDouble(make_posts(POSTS, start_id=5000), site_name="konachan.com"),
    }
    for double in boorus.values():
        double.start()
    return jm, boorus


def env_lines(jm: JmDouble, boorus: dict[str, Any]) -> list[str]:
    lines = [f"JMBOORU_JM_API_DOMAINS={jm.host}", f"JMBOORU_JM_IMAGE_DOMAINS={jm.host}", "JMBOORU_JM_SCHEME=http"]
    for site, double in boorus.items():
        lines.append(f"JMBOORU_{site.upper()}_URL={double.base_url}")
    gelbooru = boorus["gelbooru"]
    lines += [f"JMBOORU_GELBOORU_API_KEY={gelbooru.api_key}", f"JMBOORU_GELBOORU_USER_ID={gelbooru.user_id}"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", default="doubles.env", help="where to write the settings (default: doubles.env)")
    args = parser.parse_args()
    jm, boorus = start_doubles()
    path = Path(args.env_file)
    path.write_text("# written by python -m tests.fakes.serve: jmbooru against the loopback doubles\n"
                    + "\n".join(env_lines(jm, boorus)) + "\n")
    print(f"doubles running; settings in {path} (use JMBOORU_ENV_FILE={path}); Ctrl-C stops them", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    for double in boorus.values():
        double.stop()
    jm.stop()


if __name__ == "__main__":
    main()
