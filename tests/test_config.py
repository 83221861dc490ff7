"""One configuration story: the environment, ./.env and the user's config file, in that order;
``jmbooru config`` shows what is in force and where it came from; missing extras get a sentence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
    env.update({"PYTHONPATH": str(ROOT), **extra})
    return env


def test_environment_beats_dotenv_beats_user_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("JMBOORU_")]:
        monkeypatch.delenv(key)
    user = tmp_path / "user.env"
    user.write_text("JMBOORU_FILE_TTL_SECONDS=111\nJMBOORU_CACHE_TTL_SECONDS=7\nJMBOORU_MAX_IMAGES_PER_JOB=9\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text("JMBOORU_FILE_TTL_SECONDS=222\nJMBOORU_CACHE_TTL_SECONDS=8\n")
    monkeypatch.chdir(work)
    monkeypatch.setenv("JMBOORU_ENV_FILE", str(user))
    monkeypatch.setenv("JMBOORU_CACHE_TTL_SECONDS", "9")
    settings = Settings()
    assert settings.cache_ttl_seconds == 9  # environment
    assert settings.file_ttl_seconds == 222  # ./.env over the user file
    assert settings.max_images_per_job == 9  # only in the user file
    assert Settings(_env_file=None).file_ttl_seconds == 1800  # explicit: no files


def test_user_file_defaults_to_xdg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("JMBOORU_")]:
        monkeypatch.delenv(key)
    (tmp_path / "cfg" / "jmbooru").mkdir(parents=True)
    (tmp_path / "cfg" / "jmbooru" / "jmbooru.env").write_text("JMBOORU_FILE_TTL_SECONDS=444\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.chdir(tmp_path)  # no ./.env here
    assert Settings().file_ttl_seconds == 444


def test_config_command_masks_secrets_and_names_sources(tmp_path: Path) -> None:
    user = tmp_path / "user.env"
    user.write_text("JMBOORU_GELBOORU_API_KEY=abcdef0123456789\nJMBOORU_FILE_TTL_SECONDS=600\n")
    (tmp_path / ".env").write_text("JMBOORU_CACHE_TTL_SECONDS=12\n")
    env = clean_env(JMBOORU_ENV_FILE=str(user), JMBOORU_API_KEY="server-secret-key",
                    JMBOORU_REDIS_URL="redis://:redispass@db:6379/0")
    out = subprocess.run([sys.executable, "-m", "app.cli", "config"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for secret in ("abcdef0123456789", "server-secret-key", "redispass"):
        assert secret not in text
    lines = {line.split("=", 1)[0]: line for line in text.splitlines() if line.startswith("JMBOORU_")}
    assert lines["JMBOORU_API_KEY"].endswith("# environment") and "***" in lines["JMBOORU_API_KEY"]
    assert lines["JMBOORU_FILE_TTL_SECONDS"] == f"JMBOORU_FILE_TTL_SECONDS=600  # {user}"
    assert lines["JMBOORU_CACHE_TTL_SECONDS"] == "JMBOORU_CACHE_TTL_SECONDS=12.0  # .env"
    assert lines["JMBOORU_DATA_DIR"].endswith("# default")
    assert "redis://***@db:6379/0" in lines["JMBOORU_REDIS_URL"]


BLOCK_REDIS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("redis", "taskiq", "taskiq_redis"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [["worker"], ["serve", "--port", "1"]])
def test_scale_out_without_the_redis_extra_says_how_to_install_it(tmp_path: Path, command: list[str]) -> None:
    env = clean_env(JMBOORU_REDIS_URL="redis://127.0.0.1:1/0", JMBOORU_DATA_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", BLOCK_REDIS, *command], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "pip install 'jmbooru[redis]'" in out.stderr
    assert "Traceback" not in out.stderr


async def test_jmbooru_proxy_carries_the_jm_client_too(tmp_path: Path) -> None:
    from tests.conftest import app_client, make_settings
    from tests.fakes.jm import JmDouble
    from tests.fakes.network import CountingProxy

    with JmDouble() as jm, CountingProxy() as proxy:
        settings = make_settings(tmp_path, jm, proxy=proxy.url)
        async with app_client(settings) as client:
            assert (await client.get("/v1/info/100001")).status_code == 200
            assert (await client.get("/v1/get/cover/100001")).status_code == 200
        assert proxy.hosts[jm.host] >= 3  # /setting, /album, the cover: every JM request went through it
        assert proxy.hosts[jm.host] == jm.hits("")


async def test_jmbooru_proxy_carries_every_booru_site(tmp_path: Path) -> None:
    from tests.conftest import app_client, make_settings
    from tests.fakes.booru import make_posts
    from tests.fakes.danbooru import DanbooruDouble
    from tests.fakes.gelbooru import GelbooruDouble
    from tests.fakes.gelbooru_v02 import GelbooruV02Double
    from tests.fakes.moebooru import MoebooruDouble
    from tests.fakes.network import CountingProxy

    doubles = {"gelbooru": GelbooruDouble(make_posts(2)), "safebooru": GelbooruV02Double(make_posts(2)),
               "danbooru": DanbooruDouble(make_posts(2)), "yandere": MoebooruDouble(make_posts(2)),
               "konachan": MoebooruDouble(make_posts(2))}
    with CountingProxy() as proxy:
        for double in doubles.values():
            double.start()
        try:
            urls = {f"{site}_url": double.base_url for site, double in doubles.items()}
            settings = make_settings(tmp_path, proxy=proxy.url, gelbooru_api_key="testkey",
                                     gelbooru_user_id="12345", **urls)
            async with app_client(settings) as client:
                for site in doubles:
                    resp = await client.get(f"/v1/booru/{site}/posts", params={"tags": "1girl"})
                    assert resp.status_code == 200, (site, resp.text)
            for site, double in doubles.items():
                host = double.base_url.removeprefix("http://")
                assert proxy.hosts[host] == double.hits("all") >= 1, site  # every request, through the proxy
        finally:
            for double in doubles.values():
                double.stop()
