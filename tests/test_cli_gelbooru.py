"""``jmbooru gelbooru`` and ``jmbooru check``, in-process and once as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from tests.fakes.gelbooru import GelbooruDouble, make_post, make_posts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gb(monkeypatch: pytest.MonkeyPatch) -> Iterator[GelbooruDouble]:
    posts = make_posts(12)
    posts.append(make_post(5000, ["1girl", "hifumi_(blue_archive)", "long_hair"]))  # newest: always selected
    with GelbooruDouble(posts) as double:
        for name in list(os.environ):
            if name.startswith("JMBOORU_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("JMBOORU_GELBOORU_URL", double.base_url)
        monkeypatch.setenv("JMBOORU_GELBOORU_API_KEY", double.api_key)
        monkeypatch.setenv("JMBOORU_GELBOORU_USER_ID", double.user_id)
        monkeypatch.setenv("JMBOORU_GELBOORU_API_RATE", "1000")
        yield double


def files(folder: Path, suffix: str = "") -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(suffix))


def newest_caption(gb: GelbooruDouble, out: Path) -> str:
    return (out / f"{gb.posts[-1]['md5']}.txt").read_text(encoding="utf-8")


def test_download_into_empty_then_existing_folder(gb: GelbooruDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert main(["gelbooru", "1girl", "--max", "5", "--out", str(out), "--quiet"]) == 0
    assert "downloaded 5, skipped 0, failed 0" in capsys.readouterr().out
    assert len(files(out, ".png")) == 5 and len(files(out, ".txt")) == 5
    assert newest_caption(gb, out) == r"1girl, hifumi \(blue archive\), long hair"

    images = gb.hits("image")
    files(out, ".txt")[0].unlink()
    assert main(["gelbooru", "1girl", "--max", "5", "--out", str(out), "-q"]) == 0
    assert "downloaded 0, skipped 5, failed 0, captions written 1" in capsys.readouterr().out
    assert gb.hits("image") == images


def test_caption_and_filter_flags(gb: GelbooruDouble, tmp_path: Path) -> None:
    code = main([
        "gelbooru", "1girl", "--max", "3", "--out", str(tmp_path), "-q", "--keep-underscores", "--no-escape",
        "--separator", " | ", "--category-order", "character,general", "--rating", "general,sensitive",
        "--blacklist", "cat_ears smile",
    ])
    assert code == 0
    assert newest_caption(gb, tmp_path) == "hifumi_(blue_archive) | 1girl | long_hair"
    kept = {p.stem for p in files(tmp_path, ".png")}
    allowed = {p["md5"] for p in gb.posts if p["rating"] in ("general", "sensitive")
               and not {"cat_ears", "smile"} & set(p["tags"].split())}
    assert len(kept) == 3 and kept <= allowed


def test_original_downloader_flag_names(gb: GelbooruDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([
        "gelbooru", "--tags=1girl", "--max_images_number=4", f"--download_dir={tmp_path}", "--max_workers=2",
        "--unit=100", "--timeout=10", "--add_comma", "false", "--remove_underscore", "--use_escape=false", "-q",
    ])
    assert code == 0
    assert len(files(tmp_path, ".png")) == 4  # exactly --max, not rounded up to --unit
    assert newest_caption(gb, tmp_path) == "1girl hifumi (blue archive) long hair"


def test_original_boolean_flag_directly_before_the_tags(gb: GelbooruDouble, tmp_path: Path) -> None:
    assert main(["gelbooru", "--remove_underscore", "1girl", "--max", "2", "--out", str(tmp_path), "-q"]) == 0
    assert len(files(tmp_path, ".png")) == 2


def test_user_name_instead_of_user_id_is_exit_2_with_a_sentence(gb: GelbooruDouble, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gelbooru", "1girl", "--out", str(tmp_path), "--user-id", "SomeName"]) == 2
    err = capsys.readouterr().err
    assert "numeric user id" in err and "--user-id" in err and "Traceback" not in err
    assert gb.hits("all") == 0


def test_pasted_credentials_line_is_accepted(gb: GelbooruDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JMBOORU_GELBOORU_USER_ID")
    line = f"&api_key={gb.api_key}&user_id={gb.user_id}"
    assert main(["gelbooru", "1girl", "--max", "1", "--out", str(tmp_path), "-q", "--api-key", line]) == 0


def test_refused_credentials_are_exit_2(gb: GelbooruDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gelbooru", "1girl", "--out", str(tmp_path), "--api-key", "wrong"]) == 2
    assert "JMBOORU_GELBOORU_API_KEY" in capsys.readouterr().err


def test_bad_caption_option_is_exit_2(gb: GelbooruDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gelbooru", "1girl", "--out", str(tmp_path), "--drop-categories", "colour"]) == 2
    assert "unknown tag category 'colour'" in capsys.readouterr().err


def test_tags_matching_nothing_is_exit_2(gb: GelbooruDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gelbooru", "no_such_tag", "--out", str(tmp_path)]) == 2
    assert "No Gelbooru posts match the tags 'no_such_tag'" in capsys.readouterr().err


def test_some_failed_images_are_exit_1(gb: GelbooruDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gb.corrupt(gb.posts[-1]["md5"], times=None)
    assert main(["gelbooru", "1girl", "--max", "3", "--out", str(tmp_path), "-q"]) == 1
    captured = capsys.readouterr()
    assert "downloaded 2, skipped 0, failed 1" in captured.out and gb.posts[-1]["md5"] in captured.err


def test_check_command_reports_then_deletes(gb: GelbooruDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gelbooru", "1girl", "--max", "3", "--out", str(tmp_path), "-q"]) == 0
    broken = files(tmp_path, ".png")[0]
    broken.write_bytes(b"")
    capsys.readouterr()

    assert main(["check", str(tmp_path)]) == 1
    assert "checked 3, ok 2, problems 1" in capsys.readouterr().out
    assert main(["check", str(tmp_path), "--mode", "2"]) == 0  # the original's numeric mode: delete
    assert not broken.exists() and not broken.with_suffix(".txt").exists()


def test_check_after_download_fixes_other_broken_images(gb: GelbooruDouble, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    oldest = gb.posts[0]  # not among the 2 newest the download selects
    broken = tmp_path / f"{oldest['md5']}.png"
    broken.write_bytes(oldest["_data"][:60])

    assert main(["gelbooru", "1girl", "--max", "2", "--out", str(tmp_path), "-q", "--check_images_mode", "1"]) == 0

    assert "fixed 2" in capsys.readouterr().out  # the image fetched again, and its missing caption written
    assert broken.read_bytes() == oldest["_data"]
    assert broken.with_suffix(".txt").read_text()


def test_subprocess_download(gb: GelbooruDouble, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
    env.update(
        JMBOORU_GELBOORU_URL=gb.base_url, JMBOORU_GELBOORU_API_KEY=gb.api_key,
        JMBOORU_GELBOORU_USER_ID=gb.user_id, JMBOORU_GELBOORU_API_RATE="1000",
    )
    out = tmp_path / "sub"
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "gelbooru", "1girl", "--max", "3", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "downloaded 3, skipped 0, failed 0" in proc.stdout  # printed before the process left at once
    assert "img/s" not in proc.stderr  # no progress bar when stderr is not a terminal
    assert len(files(out, ".png")) == 3 and len(files(out, ".txt")) == 3


def test_a_download_loads_only_what_it_uses(gb: GelbooruDouble, tmp_path: Path) -> None:
    """What a plain dataset download does not use is never loaded (issue 26): the archive formats
    (the jm command's choices), Pillow (exports and de-duplication only), tqdm (no bar to draw), the
    other booru families, httpx's own command line, the web stack, jmcomic and Prometheus (nobody
    could read its counters)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
    env.update(JMBOORU_GELBOORU_URL=gb.base_url, JMBOORU_GELBOORU_API_KEY=gb.api_key,
               JMBOORU_GELBOORU_USER_ID=gb.user_id, JMBOORU_GELBOORU_API_RATE="1000")
    unused = ("app.archives", "app.cli.jm", "PIL", "tqdm", "app.sources.booru.danbooru", "app.sources.booru.moebooru",
              "app.sources.booru.gelbooru_v02", "httpx._main", "click", "rich", "fastapi", "starlette", "jmcomic",
              "curl_cffi", "apscheduler", "app.outputs.dataset_finish", "app.metrics", "prometheus_client")
    code = (
        "import os, sys; import app.cli\n"
        "def leave(code):\n"
        f"    print('LOADED', sorted(m for m in {unused!r} if sys.modules.get(m) is not None), flush=True)\n"
        "    print('USED', all(m in sys.modules for m in ('httpx', 'app.sources.booru.gelbooru', 'app.sources.dataset')),"
        " flush=True)\n"
        "    os._exit(code)\n"
        "app.cli.leave_at_once = leave\n"
        "sys.argv[1:] = ['gelbooru', '1girl', '--max', '2', '-q', '--out', sys.argv[1]]\n"
        "app.cli.entry()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout and "USED True" in proc.stdout, proc.stdout
    assert len(files(tmp_path / "out", ".png")) == 2


def _plugin_package(root: Path) -> Path:
    """An installed package declaring a pydantic plugin; loading it leaves a file named LOADED."""
    (root / "jmb_fake_plugin.py").write_text(
        "from pathlib import Path\n"
        "Path(__file__).with_name('LOADED').touch()\n"
        "class Plugin:\n"
        "    def new_schema_validator(self, *args, **kwargs):\n"
        "        return None, None, None\n"
        "plugin = Plugin()\n"
    )
    info = root / "jmb_fake_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jmb-fake-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nfake = jmb_fake_plugin:plugin\n")
    return root / "LOADED"


@pytest.mark.parametrize(("setting", "loaded"), [(None, False), ("", True)])
def test_a_dataset_command_skips_pydantic_plugins_unless_asked(gb: GelbooruDouble, tmp_path: Path,
                                                                setting: str | None, loaded: bool) -> None:
    """The command's process does not read every package's entry points for pydantic plugins;
    PYDANTIC_DISABLE_PLUGINS set (empty: disable none) restores pydantic's own behaviour."""
    site = tmp_path / "site"
    site.mkdir()
    marker = _plugin_package(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JMBOORU_", "PYDANTIC_"))}
    env.update(JMBOORU_GELBOORU_URL=gb.base_url, JMBOORU_GELBOORU_API_KEY=gb.api_key,
               JMBOORU_GELBOORU_USER_ID=gb.user_id, JMBOORU_GELBOORU_API_RATE="1000",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(site)]))
    if setting is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = setting
    proc = subprocess.run([sys.executable, "-m", "app.cli", "gelbooru", "1girl", "--max", "2", "-q",
                           "--out", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(files(tmp_path / "out", ".png")) == 2
    assert marker.exists() is loaded


def test_subprocess_exit_status_of_a_failed_command(gb: GelbooruDouble, tmp_path: Path) -> None:
    """The dataset commands leave without the interpreter's teardown; the status and the sentence still arrive."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "gelbooru", "--out", str(tmp_path / "x")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "give the tags to search for" in proc.stderr


def test_help_loads_no_http_client_no_pydantic_and_no_jmcomic() -> None:
    """``jmbooru gelbooru --help`` answers at once: building the parser imports none of the heavy stacks."""
    code = (
        "import sys; from app.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('httpx', 'pydantic', 'fastapi', 'jmcomic', 'PIL', 'asyncio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
