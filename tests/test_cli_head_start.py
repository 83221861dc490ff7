"""The dataset command's head start (``app/cli/head_start.py``): configured by its flags alone, it asks
for the first page of posts before it reads the settings, while the rest of the command loads; any
other configuration, and the settings are read first, as always."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import app.cli.booru_run as booru_run
import app.cli.head_start as head_start
from app.cli import build_parser, main
from app.cli.loop import start_up_over, start_up_without_gc
from app.config import Settings
from app.sources.booru.http import SiteHttp
from app.sources.booru.registry import SITES, site_config
from tests.fakes.gelbooru import GelbooruDouble, make_posts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[GelbooruDouble]:
    """The double, and a process configured by nothing but the command line: no JMBOORU_ variable,
    no ./.env (the working folder is empty), no user config file."""
    with GelbooruDouble(make_posts(12)) as double:
        for name in list(os.environ):
            if name.upper().startswith("JMBOORU_"):
                monkeypatch.delenv(name)
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        yield double


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """"settings" when the command reads its settings, "page N" when a listing page is asked for."""
    seen: list[str] = []
    real_settings, real_get = booru_run._settings, SiteHttp.get

    def settings() -> Settings:
        seen.append("settings")
        return real_settings()

    async def get(self: SiteHttp, path: str, params: Any = None) -> Any:
        if params and params.get("s") == "post":
            seen.append(f"page {params.get('pid')}")
        return await real_get(self, path, params)

    monkeypatch.setattr(booru_run, "_settings", settings)
    monkeypatch.setattr(SiteHttp, "get", get)
    return seen


@pytest.fixture
def heads(monkeypatch: pytest.MonkeyPatch) -> list[head_start.HeadStart | None]:
    """What each ``begin`` call gave."""
    made: list[head_start.HeadStart | None] = []
    real = head_start.begin

    def begin(args: Any, load: Any = head_start.DOWNLOAD_MODULES) -> head_start.HeadStart | None:
        made.append(real(args, load))
        return made[-1]

    monkeypatch.setattr(head_start, "begin", begin)
    return made


def flags(gb: GelbooruDouble, *extra: str) -> list[str]:
    return ["--url", gb.base_url, "--api-key", gb.api_key, "--user-id", gb.user_id, "--rate", "1000", *extra]


def images(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def test_flags_alone_ask_for_the_first_page_before_the_settings_are_read(
        gb: GelbooruDouble, tmp_path: Path, events: list[str], heads: list[Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert main(["gelbooru", "1girl", "--max", "5", "--out", str(out), "-q", *flags(gb)]) == 0
    assert events[:2] == ["page 0", "settings"]
    assert events.count("page 0") == 1  # the head start's request is the download's, not one more
    assert heads and heads[0] is not None and heads[0].taken
    assert "downloaded 5, skipped 0, failed 0" in capsys.readouterr().out
    assert len(images(out)) == 5 and len(list(out.glob("*.txt"))) == 5


def _set(where: str, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, value = line.split("=", 1)
    if where == "environment":
        monkeypatch.setenv(name.lower(), value)  # pydantic-settings reads names in any case
    elif where == "dotenv":
        Path(".env").write_text(line + "\n")
    else:
        (tmp_path / "config" / "jmbooru").mkdir(parents=True, exist_ok=True)
        (tmp_path / "config" / "jmbooru" / "jmbooru.env").write_text(line + "\n")


WHERE = ["environment", "dotenv", "user config file"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("line", ["JMBOORU_USER_AGENT=my-trainer/2", "JMBOORU_DOWNLOAD_WORKERS=4",
                                  "JMBOORU_GELBOORU_IMAGE_HOSTS=img*.example.com", "JMBOORU_GELBOORU_API_RATE=fast",
                                  "JMBOORU_GELBOORU_API_RATE=nan", "JMBOORU_GELBOORU_TIMEOUT_SECONDS=-1"])
def test_other_settings_are_read_before_anything_is_asked(
        gb: GelbooruDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: list[str], heads: list[Any],
        where: str, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A setting beyond the site's own (a proxy, a user agent) shapes the very first request: nothing
    goes out before the settings are read."""
    _set(where, line, tmp_path, monkeypatch)
    code = main(["gelbooru", "1girl", "--max", "3", "--out", str(tmp_path / "ds"), "-q", *flags(gb)])
    assert heads == [None]
    if line.endswith(("=fast", "=nan", "=-1")):  # the settings say what is wrong, having asked nothing
        assert code == 2 and line.split("=")[0] in capsys.readouterr().err
        assert gb.hits("all") == 0
        return
    assert code == 0
    assert events[0] == "settings"
    if "USER_AGENT" in line:
        assert {k.lower(): v for k, v in gb.requests[0][2].items()}["user-agent"] == "my-trainer/2"


@pytest.mark.parametrize("where", WHERE)
def test_the_sites_own_settings_keep_the_head_start(
        gb: GelbooruDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: list[str], heads: list[Any],
        where: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Credentials in the user config file (what the README advises), an address, a rate: read as
    they stand, they build the same site the settings do; other sites' settings do not matter."""
    lines = [f"JMBOORU_GELBOORU_URL={gb.base_url}", f"JMBOORU_GELBOORU_API_KEY={gb.api_key}",
             f"JMBOORU_GELBOORU_USER_ID={gb.user_id}", "JMBOORU_GELBOORU_API_RATE=1000",
             "JMBOORU_GELBOORU_TIMEOUT_SECONDS=12", "JMBOORU_DANBOORU_LOGIN=someone",
             f"JMBOORU_ENV_FILE={tmp_path / 'config' / 'jmbooru' / 'jmbooru.env'}"]
    if where == "environment":
        for line in lines:
            name, value = line.split("=", 1)
            monkeypatch.setenv(name, value)
    else:
        target = Path(".env") if where == "dotenv" else tmp_path / "config" / "jmbooru" / "jmbooru.env"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines[:-1]) + "\n")
    out = tmp_path / "ds"
    assert main(["gelbooru", "1girl", "--max", "3", "--out", str(out), "-q"]) == 0
    assert heads and heads[0] is not None and heads[0].taken
    assert events[:2] == ["page 0", "settings"] and events.count("page 0") == 1
    assert heads[0].config.http.timeout == 12.0 and heads[0].config.api_key == gb.api_key
    assert "downloaded 3" in capsys.readouterr().out


def test_the_flags_win_over_the_sites_settings(gb: GelbooruDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               events: list[str], heads: list[Any]) -> None:
    monkeypatch.setenv("JMBOORU_GELBOORU_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("JMBOORU_GELBOORU_API_KEY", "wrong")
    assert main(["gelbooru", "1girl", "--max", "2", "--out", str(tmp_path / "ds"), "-q", *flags(gb)]) == 0
    assert heads[0] is not None and heads[0].taken
    assert events[:2] == ["page 0", "settings"] and events.count("page 0") == 1


def test_a_head_start_the_settings_disagree_with_is_dropped_and_closed(
        gb: GelbooruDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: list[str],
        heads: list[Any]) -> None:
    """Should the settings give another site than the flags and defaults did, the download uses theirs."""
    monkeypatch.setattr(head_start, "site_settings", lambda site, sites: {})  # as if nothing were set
    monkeypatch.setenv("JMBOORU_GELBOORU_TIMEOUT_SECONDS", "12")
    out = tmp_path / "ds"
    assert main(["gelbooru", "1girl", "--max", "3", "--out", str(out), "-q",
                 "--url", gb.base_url, "--api-key", gb.api_key, "--user-id", gb.user_id]) == 0
    head = heads[0]
    assert head is not None and head.taken and head.first.done()
    assert head.site.http._http.is_closed  # type: ignore[attr-defined]
    assert events[:3] == ["page 0", "settings", "page 0"]  # asked again by the site the settings gave
    assert len(images(out)) == 3


def test_refused_credentials_are_reported_as_without_a_head_start(
        gb: GelbooruDouble, tmp_path: Path, heads: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["gelbooru", "1girl", "--out", str(tmp_path / "ds"), "--url", gb.base_url,
                 "--api-key", "wrong", "--user-id", gb.user_id])
    assert heads and heads[0] is not None  # the first page was asked for, and refused
    assert code == 2
    assert "--api-key" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").iterdir())


@pytest.mark.parametrize("bad", [["--category-order", "nonsense"], ["--separator", "x" * 40], ["--rating", "pg13"],
                                 ["--min-width", "-5"], ["--resolution", "1000"], ["--exports", "nope"],
                                 ["--trigger", "a,b"], ["--dedupe-keep", "biggest"], ["--skip-variants", "siblings"]],
                         ids=lambda flag: str(flag[0]))
def test_a_bad_flag_asks_nothing_of_the_site(gb: GelbooruDouble, tmp_path: Path, heads: list[Any], bad: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """pydantic checks the caption, filter and trainer flags once it is loaded; a command giving one
    gets no head start, so a bad value is reported before the site is asked anything."""
    out = tmp_path / "ds"
    assert main(["gelbooru", "1girl", "--out", str(out), *bad, *flags(gb)]) == 2
    assert heads == [None]
    assert capsys.readouterr().err.strip()
    assert gb.hits("all") == 0
    assert not out.exists()


def test_switches_keep_the_head_start(gb: GelbooruDouble, tmp_path: Path, events: list[str], heads: list[Any]) -> None:
    """True/false flags cannot hold a bad value: the original downloader's caption switches keep it."""
    out = tmp_path / "ds"
    assert main(["gelbooru", "1girl", "--max", "2", "--out", str(out), "-q", "--remove_underscore", "false",
                 "--add_comma", "false", "--no-escape", "--dedupe", *flags(gb)]) == 0
    assert heads and heads[0] is not None
    assert events[:2] == ["page 0", "settings"]
    assert len(images(out)) == 2


def test_the_flags_checked_later_are_known_to_the_parser() -> None:
    """Should a group be renamed, its flags would no longer keep a head start from asking first."""
    for command in ("gelbooru", "booru"):
        argv = [command, *(["danbooru"] if command == "booru" else []), "1girl"]
        later = build_parser(argv).parse_args(argv).checked_later
        assert {"separator", "category_order", "drop_categories", "rating", "min_width", "min_score", "blacklist",
                "exports", "trigger", "resolution", "keep_tokens", "dedupe_keep", "skip_variants"} <= set(later)
        assert not {"remove_underscore", "escape", "add_comma", "dedupe", "max_images", "workers"} & set(later)


def test_ctrl_c_while_the_command_loads(gb: GelbooruDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    async def interrupted(head: head_start.HeadStart, modules: tuple[str, ...]) -> None:
        head.start()
        raise KeyboardInterrupt

    closed: list[bool] = []
    real_close = head_start.HeadStart.close

    def close(self: head_start.HeadStart) -> None:
        real_close(self)
        closed.append(self.site.http._http.is_closed)  # type: ignore[attr-defined]

    monkeypatch.setattr(head_start, "_overlap", interrupted)
    monkeypatch.setattr(head_start.HeadStart, "close", close)
    assert main(["gelbooru", "1girl", "--out", str(tmp_path / "ds"), *flags(gb)]) == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err
    assert closed == [True]
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("argv", [
    ["booru", "nosuchsite", "1girl"],  # the command names the known sites
    ["gelbooru", "\u200b"],  # no visible tag: the command asks for tags
    ["booru", "danbooru", "--pool", "7"],  # a pool is no tag search
    ["gelbooru", "1girl", "--url", "http://[bad"],  # the command says what is wrong with the URL
], ids=["unknown site", "no tags", "pool", "bad url"])
def test_no_head_start_where_the_command_has_something_to_say(gb: GelbooruDouble, argv: list[str]) -> None:
    args = build_parser(argv).parse_args(argv)
    assert head_start.begin(args) is None
    assert gb.hits("all") == 0


def test_no_request_without_the_credentials_the_site_needs(gb: GelbooruDouble) -> None:
    argv = ["gelbooru", "1girl", "--url", gb.base_url]
    assert head_start.begin(build_parser(argv).parse_args(argv)) is None
    assert gb.hits("all") == 0


@pytest.mark.parametrize("site", list(SITES))
@pytest.mark.parametrize("overrides", [{}, {"url": "http://127.0.0.1:9", "api_key": "k", "user_id": "1", "login": "me",
                                         "timeout": 5.0, "rate": 50.0}], ids=["defaults", "flags"])
def test_the_defaults_and_unset_settings_give_the_same_site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            site: str, overrides: dict[str, Any]) -> None:
    """What the head start relies on: with nothing configured, the settings change no site."""
    for name in list(os.environ):
        if name.upper().startswith("JMBOORU_"):
            monkeypatch.delenv(name)
    entry = SITES[site]
    assert site_config(entry, None, **overrides) == site_config(entry, Settings(_env_file=None), **overrides)


def test_garbage_collection_pauses_for_the_start_up_only() -> None:
    was = gc.isenabled()
    try:
        gc.enable()
        start_up_without_gc()
        assert not gc.isenabled()
        start_up_over()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        gc.disable()  # a program that turned it off itself keeps it off
        start_up_without_gc()
        start_up_over()
        assert not gc.isenabled()
    finally:
        gc.unfreeze()
        if was:
            gc.enable()
        else:
            gc.disable()


def test_a_real_process_configured_by_its_flags(gb: GelbooruDouble, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("JMBOORU_")}
    env.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"))
    out = tmp_path / "sub"
    proc = subprocess.run([sys.executable, "-m", "app.cli", "gelbooru", "1girl", "--max", "4", "--out", str(out),
                           *flags(gb)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "downloaded 4, skipped 0, failed 0" in proc.stdout
    assert len(images(out)) == 4


def test_the_network_backend_loads_under_the_names_it_is_imported_by() -> None:
    """``load_network_backend`` names modules of httpcore and anyio; should either rename them, the
    head start's first request would be slowed again without a word. This says so."""
    code = ("import sys; from app.sources.booru.sockets import load_network_backend; load_network_backend(); "
            "print(all(m in sys.modules for m in ('httpcore._backends.anyio', 'anyio._backends._asyncio')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_a_listing_taken_but_never_read_is_stopped(gb: GelbooruDouble, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, heads: list[Any],
                                                   caplog: pytest.LogCaptureFixture,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The command fails between taking the head start and reading its posts (here the first page
    was already refused): the listing is closed and the page's failure read, not left for the
    garbage collector to report as an exception nobody retrieved."""
    real_overlap = head_start._overlap

    async def slow_imports(head: head_start.HeadStart, modules: tuple[str, ...]) -> None:
        await real_overlap(head, modules)
        await asyncio.wait([head.first])  # the answer arrives before the modules have loaded

    def no_pools() -> Any:
        raise booru_run.AppError("no file threads here.")

    monkeypatch.setattr(head_start, "_overlap", slow_imports)
    monkeypatch.setattr(booru_run.ImagePools, "create", no_pools)
    code = main(["gelbooru", "1girl", "--out", str(tmp_path / "ds"), "--url", gb.base_url, "--api-key", "wrong",
                 "--user-id", gb.user_id])
    assert code == 1 and "no file threads here." in capsys.readouterr().err  # a 500: exit 1
    head = heads.pop()
    assert head is not None and head.taken and not head.read and head.first.done()
    assert head.listing.ag_frame is None  # closed
    del head
    gc.collect()
    assert "never retrieved" not in caplog.text
