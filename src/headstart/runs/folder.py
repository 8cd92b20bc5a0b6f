"""Run directories: everything a fit produced, written atomically, enough to predict with nothing else.

    RUN/config.json     data source and every option
    RUN/split.json      how train/val/test were made, item by item
    RUN/history.jsonl   one line per epoch (or per probe candidate)
    RUN/metrics.json    validation and test metrics, parameters, time, memory
    RUN/model/          model.safetensors + headstart.json (+ tokenizer files): rebuilds without the data
                        (+ adapter.safetensors, adapter_config.json for LoRA: see headstart.training.adapters)
    RUN/checkpoints/    only while a fit is in progress: its state after every epoch, for --resume
                        (see headstart.training.checkpoints); the final save replaces the folder without it
    RUN/tensorboard/    with --track tensorboard and no --track-dir: a folder of event files per fit
                        (see headstart.runs.tracking), kept by every save here, --overwrite included
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from headstart.training.adapters import Adapter
from headstart.backbones import Backbone, family_of
from headstart.backbones.registry import MODALITIES
from headstart.backbones.sources import refuse_remote_code
from headstart.data import Dataset, load_items
from headstart.data.dataset import modality, modality_plural
from headstart.training.devices import bf16_supported, resolve_device
from headstart.training.engine import predict_logits
from headstart.training.checkpoints import is_unfinished, saved_epoch
from headstart.core.errors import ModelNotFoundError, RemoteCodeError, RunError, brief
from headstart.core.fileio import read_json_object, staged_dir, to_json, write_json, write_text
from headstart.report.notebook import predictor_html, predictor_repr
from headstart.runs.outdir import KEPT, check_writable, guard_data
from headstart.core.fileio import write_marker
from headstart.report import render_run_report
from headstart.training.heads import Classifier
from headstart.tasks import SingleLabel, Task, task_from_spec

MODEL_FORMAT = 1
DAMAGED = "It is damaged: restore it from a copy of the run, or fit again."
# What ``model/headstart.json`` must hold, and of which type, for a run to be rebuilt.
SPEC_FIELDS = {"name": str, "modality": str, "arch": dict, "source": str, "classes": list, "precision": str,
               "preprocessing": dict}


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _three(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(_finite(v) for v in value)


# The settings of ``preprocessing`` and what each must be: an edited value would otherwise fail in the middle of
# predict. Only those in REQUIRED must be there (runs from before crop_pct existed lack it). Audio's are checked
# as its record is read (families.sfx_cnn).
REQUIRED = {"max_length"}
PREPROCESSING_FIELDS = {
    "text": {"max_length": (_count, "a whole number of tokens, at least 1")},
    "image": {"size": (_count, "a whole number of pixels, at least 1"),
              "crop_pct": (lambda v: _finite(v) and 0 < v <= 1, "a number in (0, 1]"),
              "mean": (_three, "a list of 3 numbers"),
              "std": (lambda v: _three(v) and min(v) > 0, "a list of 3 numbers above 0"),
              "interpolation": (lambda v: v in ("bilinear", "bicubic", "nearest"), "bilinear, bicubic or nearest")},
}


@dataclass
class Predictor:
    """A trained classifier with its preprocessing and class names: inputs in, labels and probabilities out."""

    model: Classifier
    backbone: Backbone  # preprocessing and surface; its module is ``model.backbone``
    classes: list[str]
    precision: str = "fp32"
    columns: dict[str, str] = field(default_factory=dict)  # the run's table columns: {"text": "body", ...}
    run_dir: Path | None = None  # the run directory it was loaded from
    task: Task | None = None  # what the outputs mean (headstart.tasks); None: single-label over ``classes``

    def __post_init__(self) -> None:
        if self.task is None:
            self.task = SingleLabel(list(self.classes))

    def __repr__(self) -> str:
        return predictor_repr(self)

    def _repr_html_(self) -> str:
        return predictor_html(self)

    def predict(self, inputs: Any, device: str = "auto", batch_size: int = 64, **source_options) -> list[dict]:
        """One dict per input: ``input`` (where it came from), then the task's answer (``label`` and
        ``probabilities`` by class; multi-label: ``labels`` above their thresholds and ``probabilities`` by label;
        regression: ``value``), and ``text`` for a text.

        A table or DataFrame is read by the run's own column names when it has them (``text_col=`` etc.
        choose others); on a text model a string that names no file is one text to classify.
        """
        data = inputs if isinstance(inputs, Dataset) else load_items(
            inputs, **{"modality": self.backbone.modality, "run_columns": self.columns, **source_options})
        return self.rows(data, self.outputs(data, device, batch_size))

    def rows(self, data: Dataset, outputs: np.ndarray) -> list[dict]:
        """``predict``'s rows for ``data`` from the model's raw ``outputs`` on it (see ``outputs``; also what an
        ONNX Runtime session of the run's export gives, for ``headstart serve --backend onnx``)."""
        rows = []
        for origin, item, answer in zip(data.origins, data.items, self.task.rows(outputs)):
            row = {"input": origin, **answer}
            if modality(data.modality).texts:
                row["text"] = item
            rows.append(row)
        return rows

    @property
    def temperature(self) -> float:
        """The calibration temperature already folded into ``model.head`` (1 when not calibrated)."""
        return getattr(self.task, "temperature", 1.0)

    def probabilities(self, data: Dataset, device: str = "auto", batch_size: int = 64) -> np.ndarray:
        """``[len(data), n_classes]`` class probabilities (multi-label: each label's own; regression: the values)."""
        return self.task.probabilities(self.outputs(data, device, batch_size))

    def check_modality(self, data: Dataset, given: str = "the data given") -> None:
        """RunError unless ``data`` is of the run's modality; ``given`` names the data in the message."""
        takes, holds = modality_plural(self.backbone.modality), modality_plural(data.modality)
        if data.modality != self.backbone.modality:
            raise RunError(f"This run takes {takes}, but {given} holds {holds}. Give it {takes}, or use a run "
                           f"fitted on {holds}.")

    def outputs(self, data: Dataset, device: str = "auto", batch_size: int = 64) -> np.ndarray:
        """The model's raw outputs ``[len(data), n_outputs]``: logits, or values in the target's units. Outputs
        that are not finite are a RunError: no label is ever given for them."""
        self.check_modality(data)
        dev = resolve_device(device)
        precision = self.precision if bf16_supported(dev) else "fp32"
        self.model.to(dev)
        outputs = predict_logits(self.model, self.backbone, data, dev, precision, batch_size).astype(np.float64)
        broken = np.flatnonzero(~np.isfinite(outputs).all(axis=1))
        if broken.size:
            raise RunError(f"{self.run_dir or 'The model'} gives outputs that are not numbers (nan or inf) for "
                           f"{broken.size} of {len(outputs)} inputs, the first {data.origins[broken[0]]}: its weights "
                           "(model/model.safetensors) were edited or damaged, or its training diverged. Restore the "
                           "run from a copy, or fit again.")
        return outputs


def keep_top(row: dict, k: int) -> dict:
    """``row`` with ``top_k`` (the k most probable classes, most probable first) instead of every probability."""
    ranked = sorted(row["probabilities"].items(), key=lambda item: -item[1])[:k]
    out = {key: value for key, value in row.items() if key != "probabilities"}
    out["top_k"] = [{"label": label, "probability": p} for label, p in ranked]
    return out


def save_run(out: Path, predictor: Predictor, records: dict[str, Any], history: list[dict],
             overwrite: bool = False, report: bool = True) -> Path:
    """Write a run directory atomically, report.html included (unless not ``report``): into a hidden temporary
    sibling, then renamed into place. Until that rename ``out`` is as it was; after it, the run is whole."""
    out = Path(out)
    check_out(out, overwrite)
    try:
        with staged_dir(out) as tmp:
            for name, payload in records.items():
                write_json(tmp / name, payload)
            write_text(tmp / "history.jsonl", "".join(to_json(row) + "\n" for row in history))
            save_model_dir(tmp / "model", predictor)
            keep_logs(out, tmp)
            if report:
                render_run_report(tmp, shown_as=out)
            write_marker(tmp, "run")
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
        raise RunError(f"Could not write the run to {out}: {getattr(exc, 'strerror', None) or exc}. Check that the "
                       "folder is writable and the disk has space; earlier runs were left as they were.") from exc
    return out


def keep_logs(out: Path, new: Path) -> None:
    """Copy the trackers' logs of the folder ``out`` (see headstart.runs.outdir.KEPT) into the run about to replace it."""
    for name in KEPT["run"]:
        if (out / name).is_dir():
            shutil.copytree(out / name, new / name, symlinks=True)
        elif (out / name).exists():
            shutil.copy2(out / name, new / name)


def check_out(out: Path, overwrite: bool = False, resume: bool = False, inputs: Iterable[Any] = ()) -> None:
    """RunError unless ``out`` may receive a run (see headstart.runs.outdir); checked before any work.

    With ``resume`` ``out`` must instead hold an unfinished run (``out/checkpoints/``, see headstart.training.checkpoints).
    """
    out = Path(out)
    guard_data(out, inputs)
    if resume:
        if not is_unfinished(out):
            what = "a finished run" if (out / "model").is_dir() else "no unfinished run"
            raise RunError(f"Nothing to resume: {out} holds {what} (no checkpoints/config.json). Resume "
                           "continues a fit that was started with --out and stopped before it finished.")
        return
    if not overwrite and out.is_dir() and is_unfinished(out):
        raise RunError(f"{out} already holds an unfinished run (last saved epoch: {saved_epoch(out)}). "
                       f"Continue it with `headstart fit --resume {out}`, or pass --overwrite to start again.")
    check_writable(out, "run", overwrite, inputs)


def save_model_dir(folder: Path, predictor: Predictor) -> None:
    """model.safetensors, headstart.json and (text) the tokenizer files."""
    folder.mkdir(parents=True, exist_ok=True)
    bb = predictor.backbone
    save_model(predictor.model, str(folder / "model.safetensors"))
    adapter = getattr(predictor.model, "adapter", None)  # LoRA: the adapter merged into those weights
    if isinstance(adapter, Adapter):
        adapter.save(folder)
    spec = {
        "format": MODEL_FORMAT, "name": bb.name, "modality": bb.modality, "arch": bb.arch, "source": bb.source,
        "feature_dim": bb.feature_dim, "classes": predictor.classes, "precision": predictor.precision,
        "preprocessing": bb.preprocessing.to_dict(),
        "temperature": predictor.temperature, "temperature_folded": True,  # the head's logits are already / T
        "task": predictor.task.spec(),
    }
    write_json(folder / "headstart.json", spec)
    bb.preprocessing.save(folder)
    # safetensors writes its files 0600: give them the umask's permissions, like every other file of the run
    mode = stat.S_IMODE((folder / "headstart.json").stat().st_mode)
    for weights in folder.glob("*.safetensors"):
        os.chmod(weights, mode)


def load_predictor(run: Path) -> Predictor:
    """Rebuild a trained model from ``RUN/model`` alone: no training data, no network.

    A missing, damaged or edited file is a RunError naming it; a folder whose config files ask for code
    of their own is a RemoteCodeError, before anything in it is read by transformers.
    """
    folder = Path(run) / "model"
    spec_file = folder / "headstart.json"
    spec = _read_spec(Path(run), spec_file)
    refuse_remote_code(folder)
    try:
        family = family_of(spec["arch"])
        module = family.build(spec["arch"])
        feature_dim, matcher = family.surface(spec["arch"], module)
    except RemoteCodeError:
        raise
    except (ModelNotFoundError, RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunError(f"{spec_file} describes an architecture headstart cannot build "
                       f"({brief(exc)}). The file was edited or damaged: restore it from a copy of the "
                       "run, or fit again.") from None
    try:
        task = task_from_spec(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{spec_file}: its 'task' record is damaged ({brief(exc)}). Restore the file from a copy "
                       "of the run, or fit again.") from None
    model = Classifier(module, torch.nn.Linear(feature_dim, task.outputs))
    _load_weights(model, folder / "model.safetensors", spec_file)
    try:
        adapter = Adapter.load(folder)
    except (OSError, ValueError, SafetensorError) as exc:
        raise RunError(f"Cannot read the LoRA adapter in {folder} (adapter_config.json, adapter.safetensors): "
                       f"{brief(exc)}. Restore the run's model folder from a copy, or fit again.") from None
    if adapter is not None:  # kept so the predictor saves it again
        model.adapter = adapter
    backbone = Backbone(spec["name"], spec["modality"], model.backbone, feature_dim, matcher,
                        family.load_preprocessing(spec["preprocessing"], folder), spec["arch"], spec["source"], "run")
    config = Path(run) / "config.json"
    try:
        columns = item_columns(json.loads(config.read_text(encoding="utf-8")).get("config", {}))
    except (OSError, ValueError, AttributeError):  # predicting needs only model/: columns are a convenience
        columns = {}
    return Predictor(model.eval(), backbone, spec["classes"], spec["precision"], columns, Path(run), task)


def item_columns(config: dict) -> dict[str, str]:
    """The table columns a fit's config named: ``{"text": ..., "image": ..., "label": ...}`` (those given)."""
    return {role: config[f"{role}_col"] for role in ("text", "image", "label")
            if isinstance(config.get(f"{role}_col"), str)}


def _read_spec(run: Path, spec_file: Path) -> dict:
    """``model/headstart.json``, checked: every field present with its type, classes distinct names."""
    if not spec_file.is_file():
        raise RunError(f"{run} is not a headstart run directory (no model/headstart.json). "
                       "Pass the folder that `headstart fit --out` wrote.")
    spec = read_json_object(spec_file, RunError, "the model's record", DAMAGED)
    if not isinstance(spec.get("format", 0), int):
        raise RunError(f"{spec_file}: 'format' must be a whole number; restore the file from a copy of the run.")
    if spec.get("format", 0) > MODEL_FORMAT:
        raise RunError(f"{run} was written by a newer headstart (model format {spec['format']}); upgrade headstart.")
    problems = [f"{key!r} must be a {kind.__name__}" for key, kind in SPEC_FIELDS.items()
                if not isinstance(spec.get(key), kind)]
    if not problems:
        classes = spec["classes"]
        if not classes or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
            problems.append("'classes' must be a non-empty list of distinct names")
        if spec["modality"] not in MODALITIES or spec["preprocessing"].get("kind") != spec["modality"]:
            problems.append("'modality' and 'preprocessing.kind' must be the same: 'image', 'text' or 'audio'")
        prep = spec["preprocessing"]
        for key, (ok, what) in PREPROCESSING_FIELDS.get(spec["modality"], {}).items():
            if (key in prep or key in REQUIRED) and not ok(prep.get(key)):
                problems.append(f"'preprocessing.{key}' must be {what}, not {prep.get(key)!r}")
        if not isinstance(spec["arch"].get("family"), str):
            problems.append("'arch.family' must be a string")
    if problems:
        raise RunError(f"{spec_file} was edited or is damaged: {'; '.join(problems)}. Restore it from a copy of "
                       "the run, or fit again.")
    return spec


def _load_weights(model: Classifier, path: Path, spec_file: Path) -> None:
    """The run's weights into ``model``, with errors that say which file is wrong and how."""
    if not path.is_file():
        raise RunError(f"{path} is missing: the run's weights are gone. Copy the run's model folder whole, "
                       "or fit again.")
    try:
        with safe_open(str(path), "pt") as weights:
            head = weights.get_slice("head.weight").get_shape() if "head.weight" in weights.keys() else None
    except (OSError, SafetensorError) as exc:
        raise RunError(f"Cannot read {path}: {getattr(exc, 'strerror', None) or 'damaged or truncated'}. "
                       "Restore the run's model folder from a copy, or fit again.") from None
    classes = model.head.out_features
    if head is not None and head[0] != classes:
        raise RunError(f"{spec_file} asks for a head of {classes} outputs (its 'classes' and 'task') but the head in "
                       f"{path} has {head[0]}: the file was edited. Restore headstart.json from a copy of the run, "
                       "or fit again.")
    try:
        load_model(model, str(path))
    except (OSError, SafetensorError) as exc:
        raise RunError(f"Cannot read {path}: {getattr(exc, 'strerror', None) or 'damaged or truncated'}. "
                       "Restore the run's model folder from a copy, or fit again.") from None
    except RuntimeError as exc:
        raise RunError(f"{path} does not fit the architecture in {spec_file} ({brief(exc)}): one of them "
                       "was edited or comes from another run. Restore the model folder from a copy, or fit "
                       "again.") from None


def read_json(run: Path, name: str) -> dict:
    """A JSON record of a run directory, with an error that names what is missing."""
    path = Path(run) / name
    if not path.exists():
        raise RunError(f"{path} is missing: is {run} a complete headstart run?")
    return read_json_object(path, RunError, f"a record of the run, {name}", DAMAGED)
