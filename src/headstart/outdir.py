"""Output folders: what headstart may replace, and what it never touches.

Every folder headstart writes (a run, a comparison, an audit) carries a marker file, ``.headstart``, naming
its kind. ``--overwrite`` replaces only such a folder, of the same kind, holding nothing headstart did not
write; a folder that contains the data, or sits inside a data folder, is refused whatever the flags.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from headstart.errors import RunError

MARKER = ".headstart"
# What each kind of folder holds, beside the marker; anything else is the user's and blocks --overwrite.
CONTENTS = {
    "run": {"config.json", "split.json", "history.jsonl", "metrics.json", "model", "report.html", "checkpoints"},
    "comparison": {"comparison.json", "report.html", "runs"},
    "audit": {"audit.json", "report.html"},
}
# Folders written before the marker existed are recognised by a file only headstart writes there.
LEGACY_SIGNS = {"run": ("model/headstart.json", "checkpoints/config.json"), "comparison": ("comparison.json",),
                "audit": ("audit.json",)}


def write_marker(folder: Path, kind: str) -> None:
    """Mark ``folder`` as one headstart wrote (called on the temporary folder before it is moved in place)."""
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind}) + "\n")


def folder_kind(folder: Path) -> str | None:
    """The kind of headstart folder ``folder`` is ('run', 'comparison', 'audit'), or None."""
    folder = Path(folder)
    try:
        kind = json.loads((folder / MARKER).read_text()).get("kind")
        if kind in CONTENTS:
            return kind
    except (OSError, ValueError, AttributeError):
        pass
    for kind, signs in LEGACY_SIGNS.items():
        if any((folder / sign).is_file() for sign in signs):
            return kind
    return None


def check_writable(out: Path, kind: str, overwrite: bool, inputs: Iterable[Any] = ()) -> None:
    """RunError unless ``out`` may receive a new ``kind`` folder; checked before any work.

    ``out`` may be new or empty; with ``overwrite`` it may be a folder headstart wrote, of the same kind,
    that holds nothing else. ``inputs`` are the data sources of the call: ``out`` must neither contain
    one nor lie inside a data folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file, not a folder. Choose another --out for the {kind}.")
    guard_data(out, inputs)
    if not out.is_dir() or not any(out.iterdir()):
        return
    found = folder_kind(out)
    if found is None:
        raise RunError(f"{out} is not a headstart {kind} folder: it holds {_listing(out.iterdir())}. headstart "
                       "only replaces folders it wrote, whatever the flags. Choose a new or empty --out.")
    if found != kind:
        raise RunError(f"{out} holds a headstart {found}, not a {kind}; headstart does not replace one with the "
                       f"other. Choose another --out.")
    foreign = [p for p in out.iterdir() if p.name != MARKER and p.name not in CONTENTS[kind]]
    if foreign:
        raise RunError(f"{out} is a headstart {kind} folder, but it also holds {_listing(foreign)}, which "
                       "headstart did not write. Move them elsewhere, or choose another --out.")
    if not overwrite:
        raise RunError(f"{out} already holds a headstart {kind}. Choose another --out, or pass --overwrite "
                       f"(overwrite=True) to replace it.")


def guard_data(out: Path, inputs: Iterable[Any]) -> None:
    """RunError when ``out`` is, contains, or lies inside one of the data sources (paths) in ``inputs``."""
    target = Path(os.path.realpath(out))
    for source in inputs:
        if not isinstance(source, (str, os.PathLike)) or not os.path.exists(source):
            continue
        data = Path(os.path.realpath(source))
        if target == data or target in data.parents or (data.is_dir() and data in target.parents):
            where = ("the data folder" if target == data else "a folder that holds the data"
                     if target in data.parents else "inside the data folder")
            raise RunError(f"--out {out} is {where} {source}; headstart never writes into, or replaces, your "
                           "data. Choose an --out outside it (e.g. runs/NAME).")


def _listing(paths: Iterable[Path], most: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in paths)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more
