"""The data-folder layout and safe names (archives are built by ``app.archives``).

    <data>/jobs.sqlite3          the embedded job store
    <data>/work/<job_id>/        files of a job while it runs (removed when it ends)
    <data>/archives/<file_name>  finished archives (zip, cbz, pdf); ``<name>.part`` while being written
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
import unicodedata
from pathlib import Path

from app.archives import archive_owner

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.work_root = self.root / "work"
        self.archive_root = self.root / "archives"

    def prepare(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.archive_root.mkdir(parents=True, exist_ok=True)

    @property
    def db_path(self) -> Path:
        return self.root / "jobs.sqlite3"

    def work_dir(self, job_id: str) -> Path:
        if not is_safe_key(job_id):
            raise ValueError("unsafe job id")
        return self.work_root / job_id

    def archive_path(self, file_name: str) -> Path | None:
        """The archive for ``file_name``, or None when the name could leave the archive folder."""
        if not is_safe_key(file_name) or file_name.endswith(".part"):
            return None
        path = (self.archive_root / file_name).resolve()
        if path.parent != self.archive_root:
            return None
        return path

    def remove_work(self, job_id: str) -> None:
        shutil.rmtree(self.work_dir(job_id), ignore_errors=True)

    def set_aside_work(self, job_id: str) -> Path | None:
        """Move a job's work folder out of its place at once (one rename), to be removed later.

        The job's final frame can go out right after this instead of after deleting every page;
        a folder left behind by a crash is removed by the sweep like any leftover.
        """
        work = self.work_dir(job_id)
        aside = self.work_root / f".gone-{job_id}-{secrets.token_hex(4)}"
        try:
            os.rename(work, aside)
        except FileNotFoundError:
            return None
        except OSError:  # cannot move it (a permission problem): remove it the slow way
            self.remove_work(job_id)
            return None
        return aside

    def missing_archives(self, file_names: list[str]) -> set[str]:
        missing = set()
        for name in file_names:
            path = self.archive_path(name) if name else None
            if path is None or not path.exists():
                missing.add(name)
        return missing

    def remove_leftovers(self, active_jobs: set[str], keep_files: set[str]) -> None:
        """Work folders and archives that no live job owns (a crash, a restart, a failed job)."""
        grace = time.time() - 60
        active_prefixes = {job_id[:10] for job_id in active_jobs}
        if self.work_root.exists():
            for path in self.work_root.iterdir():
                if path.name not in active_jobs and path.stat().st_mtime < grace:
                    self.remove_work(path.name)
        if self.archive_root.exists():
            for path in self.archive_root.iterdir():
                name = path.name.removesuffix(".part")
                owner = archive_owner(path.name)  # archives are <stem>-<job id[:10]>.<extension>
                if name in keep_files or (owner is not None and owner in active_prefixes) or path.is_dir():
                    continue
                path.unlink(missing_ok=True)

    def archive_usage(self) -> tuple[int, int]:
        """Finished archives on disk: how many, and their bytes (``.part`` files not counted)."""
        files = nbytes = 0
        if self.archive_root.exists():
            for path in self.archive_root.iterdir():
                if not path.name.endswith(".part"):
                    try:
                        nbytes += path.stat().st_size
                        files += 1
                    except OSError:
                        pass
        return files, nbytes

    def remove_archive(self, file_name: str) -> None:
        path = self.archive_path(file_name)
        if path is not None:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".part").unlink(missing_ok=True)


def is_safe_key(name: str) -> bool:
    return bool(_SAFE_KEY.match(name)) and ".." not in name


def safe_component(text: str, fallback: str = "untitled", max_length: int = 120) -> str:
    """A file or folder name made from untrusted text (a title): no separators, no control chars."""
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE_CHARS.sub("_", text).strip().strip(".").strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"_{2,}", "_", text)
    if text.upper().split(".")[0] in _WINDOWS_RESERVED:
        text = "_" + text
    encoded = text.encode("utf-8")[:max_length]
    text = encoded.decode("utf-8", errors="ignore").strip()
    return text or fallback
