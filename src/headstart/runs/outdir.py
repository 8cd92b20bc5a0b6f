"""Output folders: what headstart may replace, and what it never touches.

Every folder headstart writes (a run, a comparison, an audit) carries a marker file, ``.headstart``, naming
its kind. ``--overwrite`` replaces only such a folder, of the same kind, holding nothing headstart did not
write; a folder that contains the data, or sits inside a data folder, is refused whatever the flags. A run
folder's tracker logs (``tensorboard/``) are kept: every fit saved there adds to them, and a folder that
holds nothing else takes a new run as an empty one would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from headstart.core.errors import RunError, option
from headstart.core.fileio import MARKER

# What each kind of folder holds, beside the marker; anything else is the user's and blocks --overwrite.
CONTENTS = {
    "run": {"config.json", "split.json", "history.jsonl", "metrics.json", "model", "report.html", "checkpoints",
            "tensorboard"},
    "comparison": {"comparison.json", "report.html", "runs"},
    "audit": {"audit.json", "report.html"},
}
# What a new folder of each kind keeps from the one it replaces: the trackers' logs (see headstart.runs.tracking).
KEPT = {"run": ("tensorboard",), "comparison": (), "audit": ()}
# Folders written before the marker existed are recognised by a file only headstart writes there.
LEGACY_SIGNS = {"run": ("model/headstart.json", "checkpoints/config.json"), "comparison": ("comparison.json",),
                "audit": ("audit.json",)}


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
    if not out.is_dir() or all(p.name in KEPT[kind] for p in out.iterdir()):
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
    clash = data_clash(out, inputs, holding=True)
    if clash:
        where, source = clash
        raise RunError(f"--out {out} is {where} {source}; headstart never writes into, or replaces, your "
                       "data. Choose an --out outside it (e.g. runs/NAME).")


@contextmanager
def hold(folder: str | Path, what: str, inputs: Iterable[Any] = ()) -> Iterator[None]:
    """Hold ``folder``'s lock while the block writes ``what`` there (``headstart.core.locks.hold``), after refusing
    a folder that is, holds or lies inside one of the call's data sources in ``inputs`` (``guard_data``)."""
    from headstart.core import locks  # here, not at the top: `headstart compare --help` need not load filelock

    guard_data(Path(folder), inputs)
    with locks.hold(folder, what):
        yield


def guard_folders(folders: dict[str, Any], inputs: Iterable[Any]) -> None:
    """RunError when a folder headstart adds files to (the feature cache, the trackers' logs), given as
    ``{option name or environment variable: path}``, is or lies inside a data folder in ``inputs``."""
    inputs = list(inputs)
    for name, folder in folders.items():
        clash = data_clash(folder, inputs, holding=False) if folder else None
        if clash:
            where, source = clash
            shown = f"{name}={folder}" if name.isupper() else option(name, str(folder))
            raise RunError(f"{shown} is {where} {source}: headstart would write its own files into your data, "
                           "and the next fit on that folder would stop on them. Point it outside the data folder.")


def data_clash(folder: Any, inputs: Iterable[Any], holding: bool) -> tuple[str, Any] | None:
    """``(where, source)`` when ``folder`` is the data folder ``source`` in ``inputs`` or lies inside it (or, with
    ``holding``, holds it); else None. Links are followed on both sides."""
    target = Path(os.path.realpath(folder))
    for source in inputs:
        if not isinstance(source, (str, os.PathLike)) or not os.path.exists(source):
            continue
        data = Path(os.path.realpath(source))
        if target == data:
            return "the data folder", source
        if holding and target in data.parents:
            return "a folder that holds the data", source
        if data.is_dir() and data in target.parents:
            return "inside the data folder", source
    return None


def enclosing_folder(path: Path) -> tuple[Path, str] | None:
    """The nearest headstart folder (run, comparison, audit) that ``path`` lies inside, with its kind; or None."""
    for parent in Path(os.path.realpath(path)).parents:
        kind = folder_kind(parent)
        if kind is not None:
            return parent, kind
    return None


def _listing(paths: Iterable[Path], most: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in paths)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more
