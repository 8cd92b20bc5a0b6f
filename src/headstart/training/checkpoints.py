"""Crash safety: training state saved after every epoch, and runs resumed from it.

While a fit with ``out=RUN`` is in progress its run directory holds what a resume needs:

    RUN/checkpoints/config.json          {"config": FitConfig, "data": where the data came from}
    RUN/checkpoints/split.json           the split, item by item (checked again on resume)
    RUN/checkpoints/state.json           the commit point: epoch, history, best epoch, scheduler, RNG
                                         states, optimizer index, and the tensor file's name and sha256
    RUN/checkpoints/state-NNNN.safetensors  model, optimizer and best-epoch tensors of epoch NNNN
    RUN/config.json, RUN/split.json      the same records at the top, when RUN was new (or unfinished)

Every file is written under a temporary name and renamed into place. The tensors of epoch N go to their
own file first; ``state.json`` naming them is replaced last, so a kill at any moment leaves either the
previous epoch's complete state or the new one, never a mix; stale tensor files are removed after.
Nothing is pickled: tensors are safetensors, the rest is JSON.

When the run finishes, ``runs.save_run`` swaps the complete run directory in with one rename, which
drops ``checkpoints/``. When ``--overwrite`` replaces a finished run, that run's files stay untouched
until then (only ``RUN/checkpoints/`` is added, and with ``--track tensorboard`` the new fit's own
``RUN/tensorboard/TIME``), so a failed or killed new fit leaves it intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from headstart.core.errors import RunError
from headstart.core.fileio import MARKER, read_json_object, write_json, write_marker, write_with

CHECKPOINTS = "checkpoints"
STATE = "state.json"
STATE_FORMAT = 1
# Every field of state.json (see engine._checkpoint) and its type: what a resume reads back.
STATE_FIELDS = {"format": int, "epoch": int, "total_steps": int, "history": list, "best_epoch": int, "best_key": list,
                "best_is_current": bool, "stopped_early": bool, "out_of_time": bool, "scheduler": dict,
                "optimizer": dict, "rng": dict, "tensors": str, "sha256": str}


# ---- the run directory while a fit is in progress ----------------------------------------------------

def checkpoint_dir(run: Path) -> Path:
    return Path(run) / CHECKPOINTS


def is_unfinished(run: Path) -> bool:
    """Whether ``run`` holds the records of a fit that started with ``out=run`` and has not finished."""
    return (checkpoint_dir(run) / "config.json").is_file()


def saved_epoch(run: Path) -> int:
    """The last epoch whose state ``run`` holds (0: none yet)."""
    try:
        return int(json.loads((checkpoint_dir(run) / STATE).read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def data_record(data: Any, val: Any, test: Any) -> dict:
    """Where the data came from, as JSON: paths (as given and absolute) or the kind of in-memory object."""
    def one(source: Any) -> dict | None:
        if source is None:
            return None
        if isinstance(source, (str, os.PathLike)):
            return {"path": str(source), "absolute": os.path.abspath(source)}
        return {"in_memory": type(source).__name__}

    return {"train": one(data), "val": one(val), "test": one(test), "cwd": os.getcwd()}


def start_run(run: Path, config: dict, data: dict, split: dict, overwrite: bool) -> list[Path]:
    """Write ``RUN/checkpoints/{config,split}.json`` (+ top-level copies unless RUN holds a finished run).

    Returns what was created, so a fit that fails before its first checkpoint can remove it again.
    """
    run = Path(run)
    records = {"config.json": {"config": config, "data": data}, "split.json": split}
    finished = (run / "model").is_dir() or (run / "metrics.json").is_file()
    created: list[Path] = []
    try:
        if not run.exists():
            created.append(run)
        run.mkdir(parents=True, exist_ok=True)
        if not (run / MARKER).exists():
            write_marker(run, "run")
            created.append(run / MARKER)
        folder = checkpoint_dir(run)
        if folder.exists():  # --overwrite of an unfinished run: start again
            shutil.rmtree(folder)
        folder.mkdir()
        created.append(folder)
        for name, payload in records.items():
            write_json(folder / name, payload, indent=1)
            if not finished:  # a finished run's own records stay until the new run replaces it
                write_json(run / name, payload, indent=1)
                created.append(run / name)
    except OSError as exc:
        discard(created)
        raise RunError(f"Could not write the run to {run}: {exc.strerror or exc}. Check that the folder is "
                       "writable and the disk has space; earlier runs were left as they were.") from exc
    return created


def discard(created: list[Path]) -> None:
    """Remove what ``start_run`` created (a fit that failed before saving any epoch leaves nothing)."""
    for path in reversed(created):
        try:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        except OSError:  # never hide the error that brought us here
            pass


def read_record(run: Path, name: str) -> dict:
    """``RUN/checkpoints/NAME``, a JSON object; RunError naming it, and what to do, when it is not."""
    return read_json_object(checkpoint_dir(run) / name, RunError, "a record of the unfinished run", unusable(run))


def unusable(run: Path) -> str:
    """What to do when a record of an unfinished run is damaged."""
    return (f"It was edited or damaged, and {run} cannot be resumed without it: restore {run}/checkpoints from a "
            f"copy, or fit again without --resume, into a new --out (or with --overwrite {run}).")


def resolve_source(record: dict | None, given: Any, role: str, run: Path) -> Any:
    """The data source to resume with: what was given again, else the saved path."""
    if given is not None:
        return given
    if record is None:
        return None
    if "in_memory" in record:
        raise RunError(f"{run} was fitted on in-memory {role} data ({record['in_memory']}), which a run "
                       f"directory cannot hold. Pass the same {role} data again: headstart.fit(data, "
                       f"resume={str(run)!r}{'' if role == 'train' else f', {role}=...'}).")
    path = record["path"]
    if os.path.abspath(path) == record["absolute"] or not os.path.exists(record["absolute"]):
        return path
    return record["absolute"]


def check_split(run: Path, saved: dict, now: dict, cwd: str) -> None:
    """RunError unless the data loaded again gives the split the run started with, item by item."""
    def norm(origins: list[str], base: str) -> list[str]:
        return [os.path.normpath(os.path.join(base, o)) for o in origins]

    for key in ("train_origins", "val_origins", "test_origins"):
        before, after = saved.get(key, []), now.get(key, [])
        if before == after or norm(before, cwd) == norm(after, os.getcwd()):
            continue
        differ = len(set(before) ^ set(after)) if len(before) == len(after) else abs(len(before) - len(after))
        raise RunError(f"Cannot resume {run}: the data no longer gives the split it started with "
                       f"({key.split('_')[0]}: {len(before)} items then, {len(after)} now, {differ} differ). "
                       "Resume needs the same data; start a new run otherwise.")


# ---- training state ---------------------------------------------------------------------------------

def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Tensors to ``state-NNNN.safetensors``, then ``state.json`` (the commit point), atomically."""
    folder = Path(folder)
    name = f"state-{state['epoch']:04d}.safetensors"
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    try:
        write_with(folder / name, lambda tmp: save_file(tensors, str(tmp)))
        write_json(folder / STATE, {**state, "format": STATE_FORMAT, "tensors": name,
                                    "sha256": _sha256(folder / name)}, indent=1)
    except (OSError, SafetensorError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise RunError(f"Could not write the checkpoint to {folder}: {why}. Check that the folder is writable "
                       "and the disk has space.") from exc
    for stale in folder.glob("state-*.safetensors"):
        if stale.name != name:
            stale.unlink(missing_ok=True)


def load_checkpoint(folder: str | Path, epochs: int) -> tuple[dict[str, torch.Tensor], dict] | None:
    """``(tensors, state)`` of the last saved epoch of a fit of ``epochs`` epochs, or None when none was saved."""
    folder = Path(folder)
    if not (folder / STATE).is_file():
        return None
    state = _read_state(folder / STATE, epochs)
    path = folder / state["tensors"]
    if not path.is_file() or _sha256(path) != state["sha256"]:
        raise RunError(f"{path} is missing or does not match its checksum in {folder / STATE}; the checkpoint "
                       "is damaged. Start the run again with --overwrite.")
    try:
        return load_file(str(path)), state
    except (OSError, SafetensorError):
        raise RunError(f"Cannot read {path}; the checkpoint is damaged. Start the run again with "
                       "--overwrite.") from None


def _read_state(path: Path, epochs: int) -> dict:
    """``state.json``, checked: valid JSON with every field of its type, naming a tensor file beside it, its
    epoch one of the fit's ``epochs`` and its best epoch no later."""
    damaged = "the checkpoint is damaged. Start the run again with --overwrite (its earlier epochs are lost)."
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"Cannot resume: {path} cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                       f"{damaged}") from None
    if not isinstance(state, dict):
        raise RunError(f"Cannot resume: {path} does not hold a JSON object; {damaged}")
    if isinstance(state.get("format"), int) and state["format"] > STATE_FORMAT:
        raise RunError(f"{path.parent} was written by a newer headstart (checkpoint format {state['format']}).")
    wrong = [key for key, kind in STATE_FIELDS.items() if not isinstance(state.get(key), kind)]
    if not wrong and Path(state["tensors"]).name != state["tensors"]:
        wrong.append("tensors")
    if wrong:
        raise RunError(f"Cannot resume: {path} lacks or has wrong values for {', '.join(wrong)}; {damaged}")
    if not 1 <= state["epoch"] <= epochs or not 0 <= state["best_epoch"] <= state["epoch"]:
        raise RunError(f"Cannot resume: {path} says epoch {state['epoch']} (best: {state['best_epoch']}) of a "
                       f"{epochs}-epoch fit (checkpoints/config.json), which no fit saves: it was edited or is "
                       "damaged. Start the run again with --overwrite (its earlier epochs are lost).")
    return state


def rng_state(generator: torch.Generator) -> dict:
    """Every random stream training draws from, as JSON lists and ints."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": torch.get_rng_state().tolist(),
        "loader": generator.get_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    """Inverse of ``rng_state``."""
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    generator.set_state(torch.tensor(state["loader"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """AdamW state flattened to ``optimizer.{param}.{key}`` tensors, plus a JSON index of the rest."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], index: dict) -> None:
    """Inverse of ``optimizer_tensors``; state tensors take their parameter's memory format."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict] = {int(k): dict(v) for k, v in index["scalars"].items()}
    for name, value in tensors.items():
        if not name.startswith("optimizer."):
            continue
        _, idx, key = name.split(".", 2)
        param = params[int(idx)]
        if value.shape == param.shape:  # exp_avg, exp_avg_sq: laid out like the parameter (channels_last)
            value = torch.empty_like(param, dtype=value.dtype).copy_(value)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": index["param_groups"]})


def scheduler_state(scheduler: Any) -> dict:
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def load_scheduler(scheduler: Any, state: dict) -> None:
    scheduler.load_state_dict({**state, "lr_lambdas": [None] * len(scheduler.lr_lambdas)})


# ---- helpers ----------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
