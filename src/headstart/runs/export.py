"""Export a run's model to formats other tools load: ONNX, a Hugging Face directory, timm/torchvision weights.

    onnx   model.onnx (preprocessed input -> outputs named ``logits``, dynamic batch; text: dynamic batch and
           sequence), preprocessing.json, classes.json (+ tokenizer files for text)
    hf     (text runs) a directory AutoModelForSequenceClassification.from_pretrained loads once
           ``headstart.backbones.hf_model`` is imported: see that module for why a headstart class is needed; its
           ``problem_type`` tells transformers' pipelines the task (softmax, sigmoid, or the value itself)
    timm   (image runs) timm runs: model.safetensors + config.json in timm's hub format, loadable with
           ``timm.create_model("local-dir:DIR", pretrained=True)``; the torchvision MobileNetV2 run:
           model.safetensors that loads strictly into ``torchvision.models.mobilenet_v2(num_classes=K)``

Every format is the run's model as headstart predicts with it: a linear head on pooled features, so each
task fits each format. Every export also holds task.json, what the outputs mean and how to turn them into
headstart's answers (``task_record``): the task's own record from the run (as in model/headstart.json),
the outputs by name, in order, and how to read them:

    single-label  logits, one per class, the calibration temperature already folded in: softmax, argmax
    multi-label   logits, one per label: sigmoid each; an item has every label whose probability is at least
                  that label's threshold (``thresholds``, in output order, tuned on validation)
    regression    one value, already in the target's own units (``target``; the training mean and deviation
                  are folded into the head): nothing to apply

Every export is checked before it is moved into place: the exported model is loaded back (ONNX: with
onnxruntime, when installed) and its outputs compared with headstart's own on real inputs passed through
the run's preprocessing (images from the run's split, or ``samples``; a few sentences for text runs), to
within a tolerance relative to the outputs' size (float32 carries ~7 significant digits; a regression
target in large units has large outputs). A folder is written as a hidden temporary sibling and renamed,
so a failed export leaves nothing behind. What is model-specific (ONNX inputs and dynamic axes, the hf and
timm formats) is the backbone family's: ``backbone.family.onnx_graph`` and ``write_native`` (see
headstart.backbones.families).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.tasks.kinds import kind
from headstart.data import IMAGE_EXTENSIONS, load_items
from headstart.data.audio import AUDIO_EXTENSIONS
from headstart.data.dataset import modality_plural
from headstart.core.errors import ConfigError, ExportError, RunError
from headstart.core.fileio import staged_dir, write_json
from headstart.runs.outdir import enclosing_folder, guard_data
from headstart.runs.folder import Predictor, load_predictor

FORMATS = ("onnx", "hf", "timm")
# What each family-specific format is for, when a run's family does not write it.
FORMAT_IS_FOR = {"hf": "--format hf is for text runs (Hugging Face encoders)",
                 "timm": "--format timm is for image runs (timm or torchvision backbones)"}
ONNX_TOLERANCE = 1e-4  # max |output difference| between onnxruntime and PyTorch, per unit of the largest |output|
TORCH_TOLERANCE = 1e-5  # the same, for exports reloaded into PyTorch (same kernels: differences are ~0)
TASK_FORMAT = 1  # task.json's layout
ONNX_OPSET = 17
MAX_SAMPLES = 6

# Texts of different lengths (padding and truncation both exercised) for checking text exports.
CHECK_TEXTS = (
    "The striker scored twice in the final ten minutes.",
    "Simmer the onions in butter until soft and golden, then add the stock.",
    "Refund please",
    "The quarterly report shows revenue rising while costs stayed flat across every region we operate in, "
    "and the board expects the trend to continue next year. " * 12,
    "ok",
)


@dataclass
class Exported:
    """What an export wrote and how closely it reproduces the run: ``max_abs_diff`` of outputs on ``samples``."""

    path: Path
    format: str
    files: list[str]
    samples: int
    max_abs_diff: float | None  # None: not checked (onnxruntime missing)
    checked_with: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "files": self.files, "samples": self.samples,
                "max_abs_diff": self.max_abs_diff, "checked_with": self.checked_with, "notes": self.notes}



def export(run: str | Path, format: str, out: str | Path | None = None, samples: Any = None) -> Exported:
    """Export the model in ``run`` as ``format`` (onnx, hf, timm) into ``out`` (default: ``RUN-FORMAT``), with
    task.json (``task_record``) beside it.

    ``samples``: inputs to check the export on (anything ``load_items`` reads); by default a few of the
    run's own images (from split.json) or built-in sentences. Never overwrites a non-empty folder.
    """
    run = Path(run)
    if format not in FORMATS:
        raise ConfigError(f"Unknown export format {format!r}: choose one of {', '.join(FORMATS)}.")
    out = Path(out) if out is not None else run.with_name(f"{run.name}-{format}")
    _check_free(out)
    _check_outside(out, samples)
    predictor = load_predictor(run)
    predictor.model.float().eval().cpu()
    _check_format(predictor, format)
    record = task_record(predictor)
    batch = _sample_batch(run, predictor, samples)
    with torch.no_grad():
        reference = predictor.model(batch).float().numpy()
    try:
        with staged_dir(out) as tmp:  # an empty folder the user made for us is replaced
            result = _write_onnx(predictor, tmp, batch, reference) if format == "onnx" else \
                _write_native(predictor, tmp, batch, reference, format)
            write_json(tmp / "task.json", record)
            result.files = _files(tmp)
            _check_free(out)
    except RunError:
        raise
    except OSError as exc:
        raise RunError(f"Could not write the export to {out}: {exc.strerror or exc}. Check that the folder is "
                       "writable and the disk has space.") from exc
    result.path = out
    if predictor.precision != "fp32":
        result.notes.append(f"exported in float32; headstart predicts this {predictor.precision} run in "
                            f"{predictor.precision} where the hardware supports it (probabilities then differ "
                            "slightly)")
    return result


def task_record(predictor: Predictor) -> dict[str, Any]:
    """task.json: the task, its outputs by name in order, how to read them, and the task's own record (as the
    run's model/headstart.json holds it: multi-label ``thresholds``; regression ``target``, ``train_mean``,
    ``train_std``; single-label ``temperature``, already folded)."""
    task = predictor.task
    spec = task.spec()
    if spec.get("scale_folded") is False:  # a saved run's regression head always outputs the target's units
        raise RunError(f"{predictor.run_dir}/model/headstart.json says the regression head gives standardised "
                       "values, not the target's units: the file was edited. Restore it from a copy of the "
                       "run, or fit again.")
    outputs_are, apply = kind(task.name).reading
    return {"format": TASK_FORMAT, "task": task.name, "outputs": list(task.classes), "outputs_are": outputs_are,
            "apply": apply, **{k: v for k, v in spec.items() if k != "name"}}


def _check_free(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file, not a folder. Choose another --out for the export.")
    if out.is_dir() and any(out.iterdir()):
        raise RunError(f"{out} already exists and is not empty; exports never overwrite. Choose another --out "
                       "(or remove that folder).")


def _check_outside(out: Path, samples: Any) -> None:
    """RunError when ``out`` lies inside a folder headstart wrote (the run itself, any run, a comparison, an
    audit), whose contents headstart manages, or is or lies inside the ``samples`` data folder."""
    enclosing = enclosing_folder(out)
    if enclosing is not None:
        folder, kind = enclosing
        raise RunError(f"--out {out} is inside the headstart {kind} folder {folder}; an export goes beside a run, "
                       f"never into one: it would change the {kind}, whose folder headstart replaces whole. Choose an "
                       f"--out outside {folder}.")
    guard_data(out, samples if isinstance(samples, (list, tuple)) else [samples])


def _check_format(predictor: Predictor, format: str) -> None:
    """ConfigError unless the run's family writes ``format`` (every family writes onnx)."""
    backbone = predictor.backbone
    native = backbone.family.native_format
    if format != "onnx" and format != native:
        instead = f"--format {native} or --format onnx" if native else "--format onnx"
        raise ConfigError(f"{FORMAT_IS_FOR[format]}; this run's backbone (family {backbone.family.name!r}) takes "
                          f"{modality_plural(backbone.modality)}. Use {instead}.")


# ----------------------------------------------------------------------------------------------- samples


def _sample_batch(run: Path, predictor: Predictor, samples: Any) -> torch.Tensor | dict:
    """A preprocessed batch of real inputs, as headstart feeds them to the model."""
    modality = predictor.backbone.modality
    if samples is not None:
        data = load_items(samples)
        if data.modality != modality:
            raise ConfigError(f"This run takes {modality_plural(modality)}, but the samples given are "
                              f"{modality_plural(data.modality)}. Give samples of that kind.")
        items = list(data.items[:MAX_SAMPLES])
    else:
        items = _DEFAULT_SAMPLES[modality](run, predictor.backbone.preprocessing)
    inputs, _ = predictor.backbone.preprocessing.collate(False)([(item, 0) for item in items])
    if isinstance(inputs, dict):
        return {k: v.contiguous() for k, v in inputs.items()}
    return inputs.contiguous()


_DEFAULT_SAMPLES = {  # per modality, without --samples: fixed texts; the run's own files, else synthetic ones
    "text": lambda run, preprocessing: list(CHECK_TEXTS),
    "audio": lambda run, preprocessing: _run_files(run, AUDIO_EXTENSIONS) or _synthetic_sounds(preprocessing),
    "image": lambda run, preprocessing: _run_files(run, IMAGE_EXTENSIONS) or _synthetic_images(preprocessing.size),
}


def _run_files(run: Path, extensions: frozenset[str]) -> list[str]:
    """Up to MAX_SAMPLES image (or sound) files named in the run's split.json that still exist, across the lists."""
    try:
        split = json.loads((run / "split.json").read_text())
    except (OSError, ValueError):
        return []
    lists = [v for v in split.values() if isinstance(v, list) and v and all(isinstance(s, str) for s in v)]
    found: list[str] = []
    for i in range(min(50, max((len(v) for v in lists), default=0))):
        for origins in lists:  # interleaved: train and val images, several classes
            if i < len(origins) and Path(origins[i]).suffix.lower() in extensions \
                    and Path(origins[i]).is_file() and origins[i] not in found:
                found.append(origins[i])
            if len(found) >= MAX_SAMPLES:
                return found
    return found


def _synthetic_sounds(prep) -> list[np.ndarray]:
    """Deterministic tones in noise at the model's rate (the run's sound files are gone)."""
    rng = np.random.default_rng(0)
    t = np.arange(prep.clip_samples) / prep.sample_rate
    return [(0.3 * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.02, t.shape)).astype(np.float32)
            for f in (220.0, 440.0, 880.0, 1760.0)]


def _synthetic_images(size: int) -> list:
    """Deterministic colour gradients and noise (the run's images are gone): still real decoded RGB images."""
    from PIL import Image

    rng = np.random.default_rng(0)
    side = max(size, 8)
    ramp = np.linspace(0, 255, side, dtype=np.float64)
    images = []
    for k in range(4):
        pixels = np.stack([np.add.outer(ramp * (k % 2), ramp) / 2, np.tile(ramp, (side, 1)).T,
                           np.full((side, side), 60.0 * k)], -1)
        pixels = np.clip(pixels + rng.normal(0, 20, pixels.shape), 0, 255).astype(np.uint8)
        images.append(Image.fromarray(pixels, "RGB"))
    return images


def _compare(reference: np.ndarray, got: np.ndarray, tolerance: float, what: str) -> float:
    """Max |difference| of the export's outputs from headstart's; ExportError above ``tolerance`` per unit of
    the largest |output| (at least 1): float32 differences grow with the outputs' size."""
    got = np.asarray(got, dtype=np.float32)
    if got.shape != reference.shape:
        raise ExportError(f"The {what} export gives outputs of shape {got.shape}, headstart {reference.shape}.")
    diff = float(np.abs(got - reference).max())
    allowed = tolerance * max(1.0, float(np.abs(reference).max()))
    if not diff <= allowed:
        raise ExportError(f"The {what} export does not reproduce headstart's predictions: max |output difference| "
                          f"{diff:.3g} > {allowed:.3g} on {len(reference)} inputs. Nothing was written; please "
                          "report this with the run's model/headstart.json.")
    return diff



# ------------------------------------------------------------------------------------------------- onnx


def _write_onnx(predictor: Predictor, folder: Path, batch, reference: np.ndarray) -> Exported:
    """TorchScript-based exporter (``dynamo=False``): no onnxscript needed, exact on these architectures."""
    try:
        import onnx
    except ImportError as exc:
        raise ConfigError("ONNX export needs the onnx package: pip install 'headstart[export]'.") from exc
    path = folder / "model.onnx"
    backbone = predictor.backbone
    graph = backbone.family.onnx_graph(predictor.model, batch)
    axes = {**graph.axes, "logits": {0: "batch"}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and tracer warnings
            torch.onnx.export(graph.module.eval(), graph.example, str(path), dynamo=False, input_names=graph.names,
                              output_names=["logits"], dynamic_axes=axes, opset_version=ONNX_OPSET,
                              do_constant_folding=True)
        onnx.checker.check_model(str(path))
    except (RuntimeError, ValueError, TypeError, onnx.checker.ValidationError) as exc:
        raise ExportError(f"torch.onnx could not export this {backbone.family.name} model: "
                          f"{str(exc)[:500]}") from exc
    write_json(folder / "preprocessing.json", backbone.preprocessing.export_record(graph.names))
    write_json(folder / "classes.json", predictor.classes)
    backbone.preprocessing.save(folder, for_export=True)
    try:
        import onnxruntime as ort
    except ImportError:
        return Exported(folder, "onnx", _files(folder), 0, None, "not checked",
                        ["onnxruntime is not installed: the export was not checked (pip install 'headstart[export]')"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {n: (batch[n] if isinstance(batch, dict) else batch).numpy() for n in graph.names}
    diff = _compare(reference, session.run(["logits"], feeds)[0], ONNX_TOLERANCE, "ONNX")
    return Exported(folder, "onnx", _files(folder), len(reference), diff, f"onnxruntime {ort.__version__}")


# ------------------------------------------------------------------------------------------- hf, timm


def _write_native(predictor: Predictor, folder: Path, batch, reference: np.ndarray, format: str) -> Exported:
    """The family's own format (hf: transformers, timm: timm or torchvision), loaded back and compared."""
    native = predictor.backbone.family.write_native(predictor, folder)
    with torch.no_grad():
        got = native.logits(batch).float().numpy()
    diff = _compare(reference, got, TORCH_TOLERANCE, native.what)
    return Exported(folder, format, _files(folder), len(reference), diff, native.checked_with, native.notes)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
