"""The run folder's guard rails: one writer at a time, and never clobber a folder we did not make."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgekd.errors import EdgeKDError
from edgekd.pipeline.manifest import MANIFEST

LOCK = ".lock"


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir``; a second edgekd on the same folder is refused."""
    _refuse_foreign(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK, "a+")
    except OSError as exc:
        raise EdgeKDError(f"cannot write the run folder {run_dir} ({exc.strerror}); choose another --out") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EdgeKDError(
                f"another edgekd is running on {run_dir}; wait for it or choose another --out"
            ) from None
        yield
    finally:
        handle.close()


def prepare(run_dir: Path, fresh: bool) -> None:
    """Empty ``run_dir`` when ``fresh``; drop half-written stage folders."""
    _refuse_foreign(run_dir)
    for entry in run_dir.iterdir():
        if entry.name == LOCK:
            continue
        if fresh or entry.name.endswith(".partial"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@contextmanager
def writable(run_dir: Path) -> Iterator[None]:
    """Turn a full disk or a read-only run folder into a one-line error; finished stages stay valid."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _WRITE_ERRORS:
            raise
        where = exc.filename or run_dir
        raise EdgeKDError(
            f"cannot write {where}: {exc.strerror}; free space or choose another --out"
            " (finished stages are kept; the same command resumes)"
        ) from None


def _refuse_foreign(run_dir: Path) -> None:
    """Refuse a folder (or file) that holds something other than an edgekd run: never clobber it."""
    if run_dir.exists() and not run_dir.is_dir():
        raise EdgeKDError(f"--out {run_dir} is a file; give a folder")
    if run_dir.is_dir() and not (run_dir / MANIFEST).exists():
        if any(not _ours(p) for p in run_dir.iterdir()):
            raise EdgeKDError(f"{run_dir} already holds files that are not an edgekd run; choose an empty or new --out")


def _ours(entry: Path) -> bool:
    """The lock, or a stage folder being written before the first manifest exists."""
    return entry.name == LOCK or (entry.name.startswith(".") and entry.name.endswith(".partial"))


def promote(work_dir: Path, final_dir: Path) -> None:
    """Replace ``final_dir`` by the finished ``work_dir``."""
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(work_dir, final_dir)
