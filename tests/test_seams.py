"""The seams design.md promises, tried the way a contributor would: a new job kind is one module plus
one ``KINDS`` line, a new archive format is one builder plus one ``FORMATS`` line, and each shows up
everywhere it should (jobs, the job list, downloads; the API's formats, its schema, the CLI).

The "module" of each is written here, in the test, and registered the way its one line would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from app.archives import FORMATS, ArchiveContent, ArchiveFormat, atomic_output
from app.archives.base import check_cancel
from app.jobs.kinds import KINDS, Kind, RunnerParts
from app.jobs.runner import RunContext, RunOutput
from app.jobs.specs import JobSpec
from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.jm import FakeAlbum, JmDouble

REPO = Path(__file__).resolve().parents[1]


# --- a new job kind: its spec and runner (what its module would hold) -----------------------------


class NoteSpec(JobSpec):
    kind: ClassVar[str] = "note"
    text: str

    def dedupe_key(self) -> str:
        return f"note:{self.text}"

    def title(self) -> str:
        return f"Note {self.text}"


class NoteRunner:
    def __init__(self, parts: RunnerParts) -> None:
        self.settings = parts.settings

    async def run(self, ctx: RunContext[NoteSpec]) -> RunOutput:
        page = ctx.work_dir / "note.txt"
        page.write_text(ctx.spec.text)
        ctx.progress.update(done=1, total=1)
        return RunOutput(entries=[("note.txt", page)], title=ctx.spec.title(), file_stem="note",
                         download_name=f"{ctx.spec.title()}.zip")


def settle(client: httpx.AsyncClient, job_id: str) -> Any:
    async def finished() -> dict[str, Any] | None:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["state"] in ("ready", "failed", "cancelled") else None

    return wait_for(finished, timeout=30)


async def test_a_new_kind_is_one_module_and_one_kinds_line(
    tmp_path: Path, jm_double: JmDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KINDS, NoteSpec.kind, Kind(NoteSpec, NoteRunner))  # the one line
    settings = make_settings(tmp_path / "data", jm_double)
    async with app_client(settings) as client:
        jobs = client.app.state.jobs  # type: ignore[attr-defined]
        job, created = await jobs.submit(NoteSpec(text="hello seams"), "seam-client")
        assert created
        joined, again = await jobs.submit(NoteSpec(text="hello seams"), None)
        assert not again and joined.job_id == job.job_id  # its dedupe key is honoured
        done = await settle(client, job.job_id)
        assert done["state"] == "ready", done
        assert done["kind"] == "note" and done["title"] == "Note hello seams"
        listed = (await client.get("/v1/jobs", params={"client_id": "seam-client"})).json()
        assert [j["job_id"] for j in listed["jobs"]] == [job.job_id]
        archive = await client.get(done["download_url"])
        assert archive.status_code == 200
        import io
        import zipfile
        assert zipfile.ZipFile(io.BytesIO(archive.content)).read("note.txt") == b"hello seams"


# --- a new archive format: its builder (what its module would hold) -------------------------------


def build_tar(content: ArchiveContent, dest: Path, scratch: Path, cancel: threading.Event | None = None) -> int:
    with atomic_output(dest) as part, tarfile.open(part, "w") as tar:
        for name, path in content.entries:
            check_cancel(cancel)
            tar.add(path, arcname=name)
    return dest.stat().st_size


TAR = ArchiveFormat("tar", ".tar", "application/x-tar", build_tar, "a tar of the pages")


async def test_a_new_format_is_one_builder_and_one_formats_line(
    tmp_path: Path, jm_double: JmDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(FORMATS, "tar", TAR)  # the one line
    jm_double.add_album(FakeAlbum.single("730001", "Tarred", 3))
    settings = make_settings(tmp_path / "data", jm_double)
    async with app_client(settings) as client:
        formats = (await client.get("/v1/formats")).json()
        assert "tar" in [f["name"] for f in formats["formats"]], formats
        resp = await client.post("/v1/download/album/730001", json={"format": "tar"})
        assert resp.status_code == 202, resp.text
        done = await settle(client, resp.json()["job_id"])
        assert done["state"] == "ready" and done["file_name"].endswith(".tar"), done
        archive = await client.get(done["download_url"])
        assert archive.status_code == 200 and archive.headers["content-type"] == "application/x-tar"
        import io
        names = tarfile.open(fileobj=io.BytesIO(archive.content)).getnames()
        assert len([n for n in names if n != "cover.jpg"]) == 3, names
        wrong = await client.post("/v1/download/album/730001", json={"format": "rar"})
        assert wrong.status_code == 422 and "tar" in wrong.text  # the sentence lists the new one too


def test_a_new_format_reaches_the_schema_and_the_command_line(tmp_path: Path) -> None:
    """Registered before the app is imported (as a module in app/archives would be): the OpenAPI
    enum and ``jmbooru jm --format`` offer it."""
    script = f"""
import json, sys
sys.path.insert(0, {str(REPO / "tests")!r})
from app.archives import FORMATS
from test_seams import TAR
FORMATS["tar"] = TAR
from app.main import create_app
from app.cli import build_parser
schema = create_app().openapi()
enums = [s.get("enum") for s in json.loads(json.dumps(schema))["components"]["schemas"].get("AlbumDownloadRequest", {{}})
         .get("properties", {{}}).values()]
args = build_parser().parse_args(["jm", "--format", "tar", "350234"])
print(json.dumps({{"enums": enums, "format": args.format}}))
"""
    env = {**os.environ, "JMBOORU_ENV_FILE": str(tmp_path / "none"), "JMBOORU_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert ["zip", "cbz", "pdf", "tar"] in answer["enums"], answer
    assert answer["format"] == "tar"
