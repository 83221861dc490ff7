"""The reader library's naming rule, layout and atomic filing, and the Komga/Kavita scan triggers
against fakes of their scan endpoints (library.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.outputs.library import Library, OutsideLibrary, album_paths, library_name, pool_path
from app.outputs.scans import ScanTriggers
from tests.conftest import make_settings
from tests.fakes.readers import KavitaFake, KomgaFake


@pytest.mark.parametrize(("title", "name"), [
    ('Vol.1: A/B "test"? <x>|* .', "Vol.1_ A_B _test__ _x___"),
    ("../../Evil: <Pool>?|*.", "_.._Evil_ _Pool____"),
    ("tab\there\nnewline\x7f", "tab_here_newline_"),
    ("  spaces   inside  ", "spaces inside"),
    ("...", "Untitled 42"),
    ("", "Untitled 42"),
    ("x" * 150 + " .", "x" * 100),
    ("a" * 99 + " .b", "a" * 99),
])
def test_titles_become_names_safe_on_every_file_system(title: str, name: str) -> None:
    assert library_name(title, 42) == name


def test_album_and_pool_layout() -> None:
    assert album_paths("Two Chapters", "200001", [(1, "第1話"), (2, "第2話")]) == [
        "JM/Two Chapters/Two Chapters - c001 第1話.cbz", "JM/Two Chapters/Two Chapters - c002 第2話.cbz"]
    assert album_paths("Plain Album", "100001", [(1, "Plain Album")]) == ["JM/Plain Album/Plain Album - c001.cbz"]
    assert album_paths("A/B", "7", [(3, "")]) == ["JM/A_B/A_B - c003.cbz"]
    assert pool_path("Danbooru", "Miku's Comic Day", 5) == "Danbooru Pools/Miku's Comic Day/Miku's Comic Day.cbz"
    assert pool_path("yande.re", "../../x", 9) == "yande.re Pools/_.._x/_.._x.cbz"


def test_filing_is_atomic_replaces_in_place_and_never_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "library"
    library = Library(root)
    first, second = tmp_path / "one.cbz", tmp_path / "two.cbz"
    first.write_bytes(b"one")
    second.write_bytes(b"two, longer")
    path = library.file(first, "JM/A/A - c001.cbz")
    assert path.read_bytes() == b"one"
    library.file(second, "JM/A/A - c001.cbz")
    assert path.read_bytes() == b"two, longer"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == ["JM", "JM/A", "JM/A/A - c001.cbz"]
    for bad in ("../escape.cbz", "/etc/passwd", "JM/../../x.cbz", ""):
        with pytest.raises(OutsideLibrary):
            library.target(bad)


async def test_scan_triggers_call_komga_and_kavita_once_each_and_renew_kavita_tokens(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with KomgaFake() as komga, KavitaFake() as kavita:
        settings = make_settings(tmp_path, None, komga_url=komga.url, komga_api_key=komga.api_key,
                                 komga_library_id=komga.library_id, kavita_url=kavita.url,
                                 kavita_api_key=kavita.api_key, kavita_library_id=kavita.library_id)
        triggers = ScanTriggers(settings, "jmbooru/test")
        caplog.set_level(logging.DEBUG)
        await triggers.scan()
        [komga_scan] = komga.scans()
        assert komga_scan["headers"]["X-API-Key"] == komga.api_key
        [kavita_scan] = kavita.scans()
        assert kavita_scan["query"] == {"libraryId": "3"}
        assert len([c for c in kavita.calls if c["path"] == "/api/Plugin/authenticate"]) == 1
        kavita.expire_tokens()
        await triggers.scan()  # an expired token: one new login, then the scan
        assert len(kavita.scans()) == 3 and len(komga.scans()) == 2
        assert len([c for c in kavita.calls if c["path"] == "/api/Plugin/authenticate"]) == 2
        assert komga.api_key not in caplog.text and kavita.api_key not in caplog.text


async def test_a_failing_reader_is_logged_without_its_key_and_never_raises(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with KomgaFake() as komga:
        komga.fail_status = 500
        settings = make_settings(tmp_path, None, komga_url=komga.url, komga_api_key="wrong-key-0123456789",
                                 komga_library_id="nope", kavita_url="http://127.0.0.1:9",
                                 kavita_api_key="kavita-key-0123456789", kavita_library_id="1")
        caplog.set_level(logging.WARNING)
        await ScanTriggers(settings, "jmbooru/test").scan()
        assert "komga refused the scan request (HTTP 500)" in caplog.text
        assert "kavita scan request failed" in caplog.text
        assert "wrong-key-0123456789" not in caplog.text and "kavita-key-0123456789" not in caplog.text
