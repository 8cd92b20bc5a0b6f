"""Files written whole or not at all, and JSON records read with errors that name the file.

Every writer here fills a hidden temporary sibling (``.NAME.tmp-PID-XXXX``), flushes and fsyncs it,
renames it over the target and fsyncs the folder, so a crash or a full disk leaves either the old file or
the new one, never a mix, and no temporary file behind. OSError (and whatever the payload writer raises)
propagates: callers turn it into an error that says what could not be written.

JSON is written strict (RFC 8259, see ``to_json``): a number that is not finite (NaN, an infinity, e.g. a
metric of a regression whose predictions overflowed) is written as ``null``, "no value", never as the
``NaN``/``Infinity`` tokens that most JSON readers refuse.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from headstart.core.errors import HeadstartError


MARKER = ".headstart"  # the file that marks a folder headstart wrote (a run, comparison, audit: runs.outdir)


def write_marker(folder: Path, kind: str) -> None:
    """Mark ``folder`` as one headstart wrote (called on the temporary folder before it is moved in place)."""
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind}) + "\n")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see the module doc)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    write_with(path, write)


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, payload: Any, indent: int | None = 2) -> None:
    """Replace ``path`` with ``payload`` as JSON (numpy values, tuples and paths allowed) and a newline."""
    write_text(path, to_json(payload, indent) + "\n")


def to_json(payload: Any, indent: int | None = None, default: Callable[[Any], Any] | None = None) -> str:
    """``payload`` as strict JSON: non-finite numbers as null (see the module doc); ``default`` (default:
    ``json_default``) turns other values (numpy's, paths) into JSON's."""
    return json.dumps(_finite(payload, default or json_default), indent=indent, allow_nan=False)


def _finite(value: Any, default: Callable[[Any], Any]) -> Any:
    """``value`` with every non-finite float replaced by None, and what JSON lacks converted by ``default``."""
    if isinstance(value, np.generic):  # numpy's scalars
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, dict):
        return {key: _finite(item, default) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item, default) for item in value]
    return _finite(default(value), default)


def write_with(path: str | Path, write: Callable[[Path], None]) -> None:
    """Replace ``path`` with what ``write(tmp)`` writes to a temporary sibling (e.g. safetensors' save_file)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # ours alone; the umask applies
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace(source: str | Path, target: str | Path) -> None:
    """``os.replace(source, target)``, then fsync the target's folder so the rename itself is durable."""
    os.replace(source, target)
    _fsync_folder(Path(target).parent)


@contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """A hidden empty sibling folder of ``out`` to fill; when the block ends, it takes ``out``'s place.

    An existing ``out`` is moved aside first and removed once the new folder is in place. If the block
    raises, the staged folder is removed and ``out`` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            try:
                replace(tmp, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old)
        else:
            replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_json_object(path: Path, error: type[HeadstartError], what: str, fix: str) -> dict:
    """The JSON object in ``path``; ``error`` naming the file, saying it must be ``what``, and ``fix``, if not."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"Cannot read {path}: {getattr(exc, 'strerror', None) or exc}. {fix}") from None
    if not isinstance(record, dict):
        raise error(f"{path} must hold a JSON object ({what}). {fix}")
    return record


def json_default(value: Any) -> Any:
    """``json.dumps`` default for numpy scalars and arrays, tuples and paths."""
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # platforms where a folder cannot be opened: the rename is atomic all the same
        return
    try:
        os.fsync(fd)
    except OSError:  # file systems that cannot fsync a folder
        pass
    finally:
        os.close(fd)
