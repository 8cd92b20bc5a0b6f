"""Run directories: everything a fit produced, written atomically, enough to predict with nothing else.

    RUN/config.json     data source and every option
    RUN/split.json      how train/val/test were made, item by item
    RUN/history.jsonl   one line per epoch (or per probe candidate)
    RUN/metrics.json    validation and test metrics, parameters, time, memory
    RUN/model/          model.safetensors + headstart.json (+ tokenizer files): rebuilds without the data
                        (+ adapter.safetensors, adapter_config.json for LoRA: see headstart.adapters)
    RUN/checkpoints/    only while a fit is in progress: its state after every epoch, for --resume
                        (see headstart.checkpoints); the final save replaces the folder without it
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from headstart.adapters import Adapter
from headstart.backbones import Backbone, ImagePreprocessing, TextPreprocessing, build_module
from headstart.backbones.build import surface
from headstart.data import Dataset, load_items
from headstart.devices import bf16_supported, resolve_device
from headstart.engine import predict_logits
from headstart.checkpoints import json_default
from headstart.errors import RunError
from headstart.outdir import check_writable, guard_data, write_marker
from headstart.heads import Classifier
from headstart.metrics import softmax

MODEL_FORMAT = 1


@dataclass
class Predictor:
    """A trained classifier with its preprocessing and class names: inputs in, labels and probabilities out."""

    model: Classifier
    backbone: Backbone  # preprocessing and surface; its module is ``model.backbone``
    classes: list[str]
    precision: str = "fp32"

    def predict(self, inputs: Any, device: str = "auto", batch_size: int = 64, **source_options) -> list[dict]:
        """One dict per input: ``input`` (where it came from), ``label``, ``probabilities`` by class (+ ``text``)."""
        data = inputs if isinstance(inputs, Dataset) else load_items(inputs, **source_options)
        probs = self.probabilities(data, device, batch_size)
        rows = []
        for origin, item, p in zip(data.origins, data.items, probs):
            row = {"input": origin, "label": self.classes[int(p.argmax())],
                   "probabilities": {c: float(p[i]) for i, c in enumerate(self.classes)}}
            if data.modality == "text":
                row["text"] = item
            rows.append(row)
        return rows

    def probabilities(self, data: Dataset, device: str = "auto", batch_size: int = 64) -> np.ndarray:
        """``[len(data), n_classes]`` class probabilities."""
        if data.modality != self.backbone.modality:
            raise RunError(f"This model takes {self.backbone.modality} inputs, but {data.modality} were given.")
        dev = resolve_device(device)
        precision = self.precision if bf16_supported(dev) else "fp32"
        self.model.to(dev)
        logits = predict_logits(self.model, self.backbone, data, dev, precision, batch_size)
        return softmax(logits.astype(np.float64))


def save_run(out: Path, predictor: Predictor, records: dict[str, Any], history: list[dict],
             overwrite: bool = False) -> Path:
    """Write a run directory atomically: into a hidden temporary sibling, then renamed into place."""
    out = Path(out)
    check_out(out, overwrite)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, payload in records.items():
            (tmp / name).write_text(json.dumps(payload, indent=2, default=json_default) + "\n")
        (tmp / "history.jsonl").write_text("".join(json.dumps(row, default=json_default) + "\n" for row in history))
        save_model_dir(tmp / "model", predictor)
        write_marker(tmp, "run")
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
        if tmp is not None:  # a half-written copy must not fill the disk further
            shutil.rmtree(tmp, ignore_errors=True)
        raise RunError(f"Could not write the run to {out}: {getattr(exc, 'strerror', None) or exc}. Check that the "
                       "folder is writable and the disk has space; earlier runs were left as they were.") from exc
    return out


def check_out(out: Path, overwrite: bool = False, resume: bool = False, inputs: Iterable[Any] = ()) -> None:
    """RunError unless ``out`` may receive a run (see headstart.outdir); checked before any work.

    With ``resume`` ``out`` must instead hold an unfinished run (``out/checkpoints/``, see headstart.checkpoints).
    """
    from headstart.checkpoints import is_unfinished, saved_epoch

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
    }
    (folder / "headstart.json").write_text(json.dumps(spec, indent=2) + "\n")
    if isinstance(bb.preprocessing, TextPreprocessing):
        bb.preprocessing.tokenizer.save_pretrained(str(folder))


def load_predictor(run: Path) -> Predictor:
    """Rebuild a trained model from ``RUN/model`` alone: no training data, no network."""
    folder = Path(run) / "model"
    spec_file = folder / "headstart.json"
    if not spec_file.exists():
        raise RunError(f"{run} is not a headstart run directory (no model/headstart.json). "
                       "Pass the folder that `headstart fit --out` wrote.")
    spec = json.loads(spec_file.read_text())
    if spec.get("format", 0) > MODEL_FORMAT:
        raise RunError(f"{run} was written by a newer headstart (model format {spec['format']}); upgrade headstart.")
    module = build_module(spec["arch"])
    feature_dim, matcher = surface(spec["arch"], module)
    model = Classifier(module, torch.nn.Linear(feature_dim, len(spec["classes"])))
    load_model(model, str(folder / "model.safetensors"))
    adapter = Adapter.load(folder)
    if adapter is not None:  # kept so the predictor saves it again
        model.adapter = adapter
    backbone = Backbone(spec["name"], spec["modality"], model.backbone, feature_dim, matcher,
                        _preprocessing(spec["preprocessing"], folder), spec["arch"], spec["source"], "run")
    return Predictor(model.eval(), backbone, spec["classes"], spec["precision"])


def _preprocessing(cfg: dict, folder: Path) -> ImagePreprocessing | TextPreprocessing:
    if cfg["kind"] == "text":
        from transformers import AutoTokenizer

        return TextPreprocessing(cfg["max_length"], AutoTokenizer.from_pretrained(str(folder)))
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k != "kind"}
    return ImagePreprocessing(**fields)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON next to ``path`` under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(payload, indent=2, default=json_default) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise RunError(f"Could not write {path}: {exc.strerror or exc}. Check the folder is writable.") from exc


def read_json(run: Path, name: str) -> dict:
    """A JSON record of a run directory, with an error that names what is missing."""
    path = Path(run) / name
    if not path.exists():
        raise RunError(f"{path} is missing: is {run} a complete headstart run?")
    return json.loads(path.read_text())
