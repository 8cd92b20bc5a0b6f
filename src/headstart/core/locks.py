"""Locks: one headstart process at a time writes a folder (a run, a comparison, an audit) or the feature cache.

A lock is an OS file lock (filelock: flock on Unix, LockFileEx on Windows) on a hidden file beside the folder,
``.NAME.lock``, which names the process holding it. The OS drops the lock when that process ends, however it
ends (kill -9 included), so a lock never outlives its process; the file is removed when the lock is released,
and one left by a killed process is simply locked again. A second process that wants the same folder is
refused at once (``hold``), with an error naming the folder and the process; writers of the feature cache
wait their turn instead (``wait``), since each holds the lock for one shard only.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from headstart.core.errors import RunError


def lock_file(folder: Path) -> Path:
    """The lock file of ``folder``: ``.NAME.lock`` beside it."""
    folder = Path(os.path.abspath(folder))
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def hold(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock while the block writes ``what`` there (e.g. "run"); RunError at once if another
    process holds it. (``headstart.runs.outdir.hold`` first refuses a folder inside the call's data.)"""
    folder = Path(folder)
    busy = (f"{folder} is in use by another headstart process ({{holder}}). Wait for it to finish (or stop it), or "
            f"choose another --out for the {what}; two processes never write one folder.")
    with _locked(folder, f"the {what}", 0, busy):
        yield


@contextmanager
def wait(folder: Path, what: str, seconds: float = 120) -> Iterator[None]:
    """Hold ``folder``'s lock while the block writes ``what`` there, waiting up to ``seconds`` for another
    process's turn; RunError if it is still held then."""
    busy = (f"{folder} is locked: another headstart process ({{holder}}) has been writing {what} there for over "
            f"{seconds:.0f} s. Wait for it to finish, or stop it.")
    with _locked(Path(folder), what, seconds, busy):
        yield


def holder(folder: Path) -> str:
    """Who holds ``folder``'s lock, in words: "process 1234 on HOST since 2026-12-07 18:02:11: headstart fit ..."."""
    try:
        info = json.loads(lock_file(folder).read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']} since {info['since']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its lock file does not say which"


@contextmanager
def _locked(folder: Path, what: str, timeout: float, busy: str) -> Iterator[None]:
    """``folder``'s lock, taken within ``timeout`` seconds, else RunError ``busy`` (its {holder} filled in)."""
    path = lock_file(folder)
    lock = FileLock(path, timeout=timeout, on_acquired=_write_holder)
    made = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise RunError(busy.replace("{holder}", holder(folder))) from None
    except OSError as exc:
        raise RunError(f"Could not write {what} to {folder}: {exc.strerror or exc} (making its lock file {path}). "
                       "Check that the folder is writable and the disk has space.") from None
    try:
        yield
    finally:
        try:  # removed while still held: filelock takes again a lock whose file was unlinked meanwhile
            path.unlink(missing_ok=True)
        except OSError:  # Windows: an open file cannot be removed; filelock removes it on release
            pass
        lock.release()
        if made:  # a fit refused or stopped early leaves no empty folder behind
            _remove_if_empty(path.parent)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (the run is in it), or another process wrote there meanwhile
        pass


def _write_holder(fd: int) -> None:
    """filelock's ``on_acquired``: write who holds the lock into the lock file."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    command = " ".join(["headstart" if script == "__main__.py" else script, *sys.argv[1:]])
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300],
            "since": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))
