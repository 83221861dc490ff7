"""A booru site is one SiteEntry: its JMBOORU_<SITE>_* settings come from the entry, so a new site's
URL setting works (and its errors, which name it, are true)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.config import Settings
from app.sources.booru.sites import SITES

REPO = Path(__file__).resolve().parent.parent


def test_every_site_has_its_settings_with_the_entry_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, entry in SITES.items():
        assert getattr(settings, f"{name}_url") == entry.url
        assert getattr(settings, f"{name}_api_rate") == entry.rate
        assert getattr(settings, f"{name}_image_hosts") is None


def test_site_settings_come_from_the_environment(monkeypatch: object) -> None:
    env = {"JMBOORU_DANBOORU_URL": "http://mirror.lan:3000/", "JMBOORU_KONACHAN_IMAGE_HOSTS": "a.example, b.example",
           "JMBOORU_DANBOORU_TAG_LIMIT": "6"}
    settings = Settings(_env_file=None, **{k.removeprefix("JMBOORU_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    assert settings.model_dump()["danbooru_url"] == "http://mirror.lan:3000"
    assert settings.model_dump()["konachan_image_hosts"] == ["a.example", "b.example"]
    assert settings.model_dump()["danbooru_tag_limit"] == 6


def test_a_site_added_to_the_registry_alone_gets_a_working_url_setting(tmp_path: Path) -> None:
    script = """
import json
from app.sources.booru import sites
sites.SITES["rule34"] = sites.SiteEntry("rule34", "Rule 34", "gelbooru_v02", "https://api.rule34.xxx")
from app.config import Settings
from app.sources.booru.registry import build_site
settings = Settings()
site = build_site("rule34", settings)
print(json.dumps({"setting": settings.rule34_url, "site_url": site.info.url, "rate": settings.rule34_api_rate}))
"""
    env = {**os.environ, "JMBOORU_RULE34_URL": "http://127.0.0.1:9/mirror", "JMBOORU_ENV_FILE": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=60, check=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer == {"setting": "http://127.0.0.1:9/mirror", "site_url": "http://127.0.0.1:9/mirror", "rate": 2.0}
