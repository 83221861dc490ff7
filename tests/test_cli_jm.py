"""``jmbooru jm`` against the JM double: formats, skipping, the summary, exit codes, and Ctrl-C on a
real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader

from app.cli import main
from tests.conftest import wait_until
from tests.fakes.jm import FakeAlbum, JmDouble

ROOT = Path(__file__).resolve().parents[1]


def jm_env(jm: JmDouble, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JMBOORU_")}
    env.update(JMBOORU_JM_API_DOMAINS=jm.host, JMBOORU_JM_IMAGE_DOMAINS=jm.host, JMBOORU_JM_SCHEME="http",
               JMBOORU_JM_RETRY_TIMES="0", JMBOORU_JM_TIMEOUT_SECONDS="5", **extra)
    return env


@pytest.fixture
def jm_cli(jm_double: JmDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[JmDouble]:
    for name in list(os.environ):
        if name.startswith("JMBOORU_"):
            monkeypatch.delenv(name)
    for name, value in jm_env(jm_double).items():
        if name.startswith("JMBOORU_"):
            monkeypatch.setenv(name, value)
    yield jm_double


def test_downloads_each_album_then_skips_them(jm_cli: JmDouble, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "comics"
    assert main(["jm", "100001", "JM200001", "-o", str(out), "--format", "cbz", "-q"]) == 0
    assert f"downloaded 2, skipped 0, failed 0 -> {out}" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["Plain Album [JM100001].cbz", "Two Chapters [JM200001].cbz"]
    with zipfile.ZipFile(out / names[1]) as cbz:
        assert cbz.namelist() == [f"{n:05d}.webp" for n in range(1, 6)] + ["ComicInfo.xml"]
        assert cbz.read("00004.webp") == jm_cli.served_bytes("200002", 1)

    pages = jm_cli.hits("/media/photos")
    assert main(["jm", "100001", "200001", "--out", str(out), "--format", "cbz"]) == 0
    captured = capsys.readouterr()
    assert "downloaded 0, skipped 2, failed 0" in captured.out
    assert "Plain Album [JM100001].cbz is already there" in captured.err
    assert jm_cli.hits("/media/photos") == pages  # nothing fetched again
    # Another format or chapter choice of the same album is another file.
    assert main(["jm", "200001", "-o", str(out), "--format", "pdf", "--chapters", "200002", "-q"]) == 0
    pdf = out / "Two Chapters [JM200001] (ch 200002).pdf"
    assert len(PdfReader(pdf).pages) == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.name.endswith(".part")]


def test_zip_layouts(jm_cli: JmDouble, tmp_path: Path) -> None:
    assert main(["jm", "200001", "-o", str(tmp_path), "-q"]) == 0
    assert main(["jm", "200001", "-o", str(tmp_path), "-q", "--layout", "chapters"]) == 0
    flat = zipfile.ZipFile(tmp_path / "Two Chapters [JM200001].zip")
    assert flat.namelist() == ["cover.jpg"] + [f"{n:05d}.webp" for n in range(1, 6)]
    folders = zipfile.ZipFile(tmp_path / "Two Chapters [JM200001] (chapters).zip")
    assert "002 第2話/00002.webp" in folders.namelist()


@pytest.mark.parametrize(("args", "words"), [
    (["200001", "--format", "pdf", "--layout", "chapters"], ["layout 'chapters'", "only a zip"]),
    (["two hundred"], ["is not an album id"]),
    (["200001", "600001", "--chapters", "200002"], ["single ALBUM_ID"]),
    (["200001", "--chapters", "x1"], ["chapter id 'x1'"]),
])
def test_bad_arguments_are_exit_2_with_a_sentence(jm_cli: JmDouble, tmp_path: Path, args: list[str],
                                                  words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jm", *args, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
    assert "Traceback" not in err and jm_cli.hits("") == 0


def test_unknown_album_or_chapter_fails_that_album_only(jm_cli: JmDouble, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jm", "999999", "100001", "-o", str(tmp_path), "-q"]) == 2
    captured = capsys.readouterr()
    assert "downloaded 1, skipped 0, failed 1" in captured.out
    assert "failed JM999999: This JM album does not exist" in captured.err
    assert main(["jm", "200001", "--chapters", "123", "-o", str(tmp_path), "-q"]) == 2
    assert "has no chapter 123; its chapters are 200001 (第1話), 200002 (第2話)" in capsys.readouterr().err
    jm_cli.fail("/media/photos/100003/", status=503)
    assert main(["jm", "100003", "-o", str(tmp_path), "-q"]) == 1  # upstream trouble: try again later
    assert [p.name for p in tmp_path.iterdir()] == ["Plain Album [JM100001].zip"]


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_on_a_real_process_exits_130_and_leaves_no_partial_file(jm_double: JmDouble, tmp_path: Path) -> None:
    jm_double.add_album(FakeAlbum.single("190800", "Interrupted", 40))
    jm_double.set_latency(0.5, "/media/photos/190800/")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "jm", "190800", "-o", str(out), "--format", "pdf"],
        cwd=ROOT, env=jm_env(jm_double, JMBOORU_ALBUM_IMAGE_THREADS="4"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell that started the tests in the background hands its children SIGINT ignored, and
        # Python then never raises KeyboardInterrupt: a user's terminal delivers it, so the child does.
        preexec_fn=default_sigint,
    )
    try:
        def mid_download() -> bool:  # some pages are on disk
            assert proc.poll() is None, proc.communicate()
            return jm_double.hits("/media/photos/190800/") >= 6

        wait_until(mid_download, timeout=30, message="the download did not get six pages in")
        assert any(p.name.startswith(".jmbooru-") for p in out.iterdir())
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        stdout, stderr = proc.communicate(timeout=20)  # returns when the process has exited
        stopped_after = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stopped_after < 1.0, f"took {stopped_after:.2f} s to stop after Ctrl-C"
    assert "interrupted; partial files were removed" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert list(out.iterdir()) == []
    assert jm_double.hits("/media/photos/190800/") < 40
    assert "%|" not in stderr  # no progress bar when stderr is not a terminal


def test_progress_bar_on_a_terminal(jm_double: JmDouble, tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    jm_double.set_latency(0.3, "/media/photos")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "jm", "200001", "-o", str(tmp_path)],
                            cwd=ROOT, env=jm_env(jm_double), stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        stdout = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0
    assert b"%|" in seen and b"page" in seen  # tqdm's bar
    assert b"downloaded 1, skipped 0, failed 0" in stdout
    assert (tmp_path / "Two Chapters [JM200001].zip").is_file()
