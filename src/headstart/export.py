"""Export a run's classifier to formats other tools load: ONNX, a Hugging Face directory, timm/torchvision weights.

    onnx   model.onnx (preprocessed input -> logits, dynamic batch; text: dynamic batch and sequence),
           preprocessing.json, classes.json (+ tokenizer files for text)
    hf     (text runs) a directory AutoModelForSequenceClassification.from_pretrained loads once
           ``headstart.hf_model`` is imported: see that module for why a headstart class is needed
    timm   (image runs) timm runs: model.safetensors + config.json in timm's hub format, loadable with
           ``timm.create_model("local-dir:DIR", pretrained=True)``; the torchvision MobileNetV2 run:
           model.safetensors that loads strictly into ``torchvision.models.mobilenet_v2(num_classes=K)``

Every export is checked before it is moved into place: the exported model is loaded back (ONNX: with
onnxruntime, when installed) and its logits compared with headstart's own on real inputs passed through
the run's preprocessing (images from the run's split, or ``samples``; a few sentences for text runs).
A folder is written as a hidden temporary sibling and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from headstart.data import IMAGE_EXTENSIONS, load_items
from headstart.errors import ConfigError, HeadstartError, RunError
from headstart.runs import Predictor, load_predictor

FORMATS = ("onnx", "hf", "timm")
ONNX_TOLERANCE = 1e-4  # max |logit difference| between onnxruntime and PyTorch
TORCH_TOLERANCE = 1e-5  # the same, for exports reloaded into PyTorch (same kernels: differences are ~0)
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


class ExportError(HeadstartError, RuntimeError):
    """An export could not be written, or it does not reproduce headstart's predictions."""


@dataclass
class Exported:
    """What an export wrote and how closely it reproduces the run: ``max_abs_diff`` of logits on ``samples``."""

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
    """Export the classifier in ``run`` as ``format`` (onnx, hf, timm) into ``out`` (default: ``RUN-FORMAT``).

    ``samples``: inputs to check the export on (anything ``load_items`` reads); by default a few of the
    run's own images (from split.json) or built-in sentences. Never overwrites a non-empty folder.
    """
    run = Path(run)
    if format not in FORMATS:
        raise ConfigError(f"Unknown export format {format!r}: choose one of {', '.join(FORMATS)}.")
    out = Path(out) if out is not None else run.with_name(f"{run.name}-{format}")
    _check_free(out)
    predictor = load_predictor(run)
    predictor.model.float().eval().cpu()
    writer = {"onnx": _write_onnx, "hf": _write_hf, "timm": _write_timm}[format]
    _check_modality(predictor, format)
    batch = _sample_batch(run, predictor, samples)
    with torch.no_grad():
        reference = predictor.model(batch).float().numpy()
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        result = writer(predictor, tmp, batch, reference)
        _check_free(out)
        if out.is_dir():
            out.rmdir()  # an empty folder the user made for us
        os.replace(tmp, out)
    except RunError:
        raise
    except OSError as exc:
        raise RunError(f"Could not write the export to {out}: {exc.strerror or exc}. Check that the folder is "
                       "writable and the disk has space.") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.path = out
    if predictor.precision != "fp32":
        result.notes.append(f"exported in float32; headstart predicts this {predictor.precision} run in "
                            f"{predictor.precision} where the hardware supports it (probabilities then differ "
                            "slightly)")
    return result


def _check_free(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file, not a folder. Choose another --out for the export.")
    if out.is_dir() and any(out.iterdir()):
        raise RunError(f"{out} already exists and is not empty; exports never overwrite. Choose another --out "
                       "(or remove that folder).")


def _check_modality(predictor: Predictor, format: str) -> None:
    modality, family = predictor.backbone.modality, predictor.backbone.arch.get("family")
    if format == "hf" and modality != "text":
        raise ConfigError("--format hf is for text runs (Hugging Face encoders); this run is an image model. "
                          "Use --format timm or --format onnx.")
    if format == "timm" and family not in ("timm", "torchvision"):
        raise ConfigError(f"--format timm is for image runs (timm or torchvision backbones); this run is a "
                          f"{modality} model. Use --format hf or --format onnx.")


# ----------------------------------------------------------------------------------------------- samples


def _sample_batch(run: Path, predictor: Predictor, samples: Any) -> torch.Tensor | dict:
    """A preprocessed batch of real inputs, as headstart feeds them to the model."""
    modality = predictor.backbone.modality
    if samples is not None:
        data = load_items(samples)
        if data.modality != modality:
            raise ConfigError(f"This run takes {modality} inputs, but the samples given are {data.modality}s.")
        items = list(data.items[:MAX_SAMPLES])
    elif modality == "text":
        items = list(CHECK_TEXTS)
    else:
        items = _run_images(run) or _synthetic_images(predictor.backbone.preprocessing.size)
    inputs, _ = predictor.backbone.preprocessing.collate(False)([(item, 0) for item in items])
    if isinstance(inputs, dict):
        return {k: v.contiguous() for k, v in inputs.items()}
    return inputs.contiguous()


def _run_images(run: Path) -> list[str]:
    """Up to MAX_SAMPLES image files named in the run's split.json that still exist, across the lists."""
    try:
        split = json.loads((run / "split.json").read_text())
    except (OSError, ValueError):
        return []
    lists = [v for v in split.values() if isinstance(v, list) and v and all(isinstance(s, str) for s in v)]
    found: list[str] = []
    for i in range(min(50, max((len(v) for v in lists), default=0))):
        for origins in lists:  # interleaved: train and val images, several classes
            if i < len(origins) and Path(origins[i]).suffix.lower() in IMAGE_EXTENSIONS \
                    and Path(origins[i]).is_file() and origins[i] not in found:
                found.append(origins[i])
            if len(found) >= MAX_SAMPLES:
                return found
    return found


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
    got = np.asarray(got, dtype=np.float32)
    if got.shape != reference.shape:
        raise ExportError(f"The {what} export gives logits of shape {got.shape}, headstart {reference.shape}.")
    diff = float(np.abs(got - reference).max())
    if not diff <= tolerance:
        raise ExportError(f"The {what} export does not reproduce headstart's predictions: max |logit difference| "
                          f"{diff:.3g} > {tolerance:g} on {len(reference)} inputs. Nothing was written; please "
                          "report this with the run's model/headstart.json.")
    return diff


def _preprocessing_record(predictor: Predictor, input_names: list[str]) -> dict[str, Any]:
    pre = predictor.backbone.preprocessing
    if predictor.backbone.modality == "text":
        return {"kind": "text", "inputs": input_names, "max_length": pre.max_length, "truncation": True,
                "padding": "longest in batch (attention_mask 0 on padding)", "dtype": "int64",
                "tokenizer": "the tokenizer files in this folder: AutoTokenizer.from_pretrained(folder)",
                "pooling": "mean of the last hidden states over attention_mask, then the linear head"}
    return {"kind": "image", "inputs": input_names, "layout": "NCHW", "dtype": "float32", "color": "RGB",
            "size": pre.size, "resize_shorter_side_to": int(round(pre.size / pre.crop_pct)), "crop": "center",
            "crop_pct": pre.crop_pct, "interpolation": pre.interpolation, "antialias": True,
            "scale": "pixel / 255", "mean": list(pre.mean), "std": list(pre.std)}


# ------------------------------------------------------------------------------------------------- onnx


class _TextGraph(nn.Module):
    """Positional tensors in (what ONNX needs), the classifier's dict batch inside."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors)))


def _write_onnx(predictor: Predictor, folder: Path, batch, reference: np.ndarray) -> Exported:
    """TorchScript-based exporter (``dynamo=False``): no onnxscript needed, exact on these architectures."""
    try:
        import onnx
    except ImportError as exc:
        raise ConfigError("ONNX export needs the onnx package: pip install 'headstart[export]'.") from exc
    path = folder / "model.onnx"
    if isinstance(batch, dict):
        names = list(batch)
        module: nn.Module = _TextGraph(predictor.model, names)
        example = tuple(batch[n][:2] for n in names)
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
    else:
        names, module, example = ["pixel_values"], predictor.model, (batch[:2],)
        axes = {"pixel_values": {0: "batch"}}
    axes["logits"] = {0: "batch"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and tracer warnings
            torch.onnx.export(module.eval(), example, str(path), dynamo=False, input_names=names,
                              output_names=["logits"], dynamic_axes=axes, opset_version=ONNX_OPSET,
                              do_constant_folding=True)
        onnx.checker.check_model(str(path))
    except (RuntimeError, ValueError, TypeError, onnx.checker.ValidationError) as exc:
        raise ExportError(f"torch.onnx could not export this {predictor.backbone.arch.get('family')} model: "
                          f"{str(exc)[:500]}") from exc
    _write_json(folder / "preprocessing.json", _preprocessing_record(predictor, names))
    _write_json(folder / "classes.json", predictor.classes)
    if predictor.backbone.modality == "text":
        _save_tokenizer(predictor, folder)
    try:
        import onnxruntime as ort
    except ImportError:
        return Exported(folder, "onnx", _files(folder), 0, None, "not checked",
                        ["onnxruntime is not installed: the export was not checked (pip install 'headstart[export]')"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {n: (batch[n] if isinstance(batch, dict) else batch).numpy() for n in names}
    diff = _compare(reference, session.run(["logits"], feeds)[0], ONNX_TOLERANCE, "ONNX")
    return Exported(folder, "onnx", _files(folder), len(reference), diff, f"onnxruntime {ort.__version__}")


# --------------------------------------------------------------------------------------------------- hf


def _write_hf(predictor: Predictor, folder: Path, batch: dict, reference: np.ndarray) -> Exported:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from headstart.hf_model import HeadstartTextClassifier, HeadstartTextConfig

    classes = predictor.classes
    config = HeadstartTextConfig(
        encoder=dict(predictor.backbone.arch["config"]), max_length=predictor.backbone.preprocessing.max_length,
        id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)},
    )
    config.architectures = [HeadstartTextClassifier.__name__]
    model = HeadstartTextClassifier(config).eval()
    state = {}
    for key, value in predictor.model.state_dict().items():
        if key.startswith("backbone.model."):
            state["encoder." + key[len("backbone.model."):]] = value
        elif key.startswith("head."):
            state["classifier." + key[len("head."):]] = value
        else:
            raise ExportError(f"Unexpected weight {key!r} in the run's model: cannot map it to the HF classifier.")
    model.load_state_dict(state, strict=True)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no weight-loading bars in headstart's output
    try:
        model.save_pretrained(str(folder))
        _save_tokenizer(predictor, folder)
        (folder / "README.md").write_text(_HF_README.format(classes=", ".join(classes)))
        loaded = AutoModelForSequenceClassification.from_pretrained(str(folder), trust_remote_code=False).eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    with torch.no_grad():
        got = loaded(**batch).logits.float().numpy()
    diff = _compare(reference, got, TORCH_TOLERANCE, "Hugging Face")
    return Exported(folder, "hf", _files(folder), len(reference), diff,
                    "AutoModelForSequenceClassification.from_pretrained",
                    ["model type 'headstart_text': `import headstart.hf_model` before from_pretrained "
                     "(no remote code; see README.md in the export)"])


_HF_README = """\
# headstart text classifier (Hugging Face format)

Classes: {classes}

The model averages the encoder's last hidden states over the attention mask and applies a linear
classifier: the exact computation headstart trained. transformers has no built-in BERT-family
sequence-classification class that pools this way (BertForSequenceClassification uses the [CLS] token
through a dense+tanh pooler), so the architecture ``headstart_text`` lives in the headstart package.
It is never loaded as remote code: import it, then use the usual Auto classes.

```python
import headstart.hf_model  # noqa: F401  registers model type "headstart_text"
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

model = AutoModelForSequenceClassification.from_pretrained("THIS_FOLDER")
tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")  # truncates at the run's max_length
classify = pipeline("text-classification", model=model, tokenizer=tokenizer, truncation=True)
```

Without headstart: the encoder is ``AutoModel.from_config(AutoConfig.for_model(**config["encoder"]))``
with the ``encoder.*`` weights of model.safetensors (prefix removed); the head is ``classifier.weight``
and ``classifier.bias`` applied to the masked mean of ``last_hidden_state``.
"""


def _save_tokenizer(predictor: Predictor, folder: Path) -> None:
    tokenizer = predictor.backbone.preprocessing.tokenizer
    tokenizer.model_max_length = predictor.backbone.preprocessing.max_length  # truncation=True then matches
    tokenizer.save_pretrained(str(folder))


# ------------------------------------------------------------------------------------------------- timm


def _write_timm(predictor: Predictor, folder: Path, batch: torch.Tensor, reference: np.ndarray) -> Exported:
    if predictor.backbone.arch["family"] == "torchvision":
        return _write_torchvision(predictor, folder, batch, reference)
    import timm
    from timm.models import save_for_hf

    arch, classes, pre = predictor.backbone.arch["name"], predictor.classes, predictor.backbone.preprocessing
    model = timm.create_model(arch, pretrained=False, num_classes=len(classes))
    classifier = _module_name(model, model.get_classifier())
    state = {k[len("backbone."):]: v for k, v in predictor.model.state_dict().items() if k.startswith("backbone.")}
    state.update({f"{classifier}.weight": predictor.model.head.weight, f"{classifier}.bias": predictor.model.head.bias})
    _load_strict(model, state, f"timm.create_model({arch!r}, num_classes={len(classes)})")
    data_config = {"input_size": (3, pre.size, pre.size), "mean": tuple(pre.mean), "std": tuple(pre.std),
                   "interpolation": pre.interpolation, "crop_pct": timm_crop_pct(pre.size, pre.crop_pct),
                   "crop_mode": "center"}
    save_for_hf(model, str(folder), model_config={"label_names": list(classes)}, safe_serialization=True,
                data_config=data_config)
    _write_json(folder / "classes.json", classes)

    def reload() -> nn.Module:
        return timm.create_model(f"local-dir:{folder}", pretrained=True)

    diff = _check_reload(reload, batch, reference)
    return Exported(folder, "timm", _files(folder), len(reference), diff,
                    f'timm.create_model("local-dir:FOLDER", pretrained=True) (timm {timm.__version__})',
                    [f"classifier weights under {classifier}.*"])


def timm_crop_pct(size: int, crop_pct: float) -> float:
    """A crop_pct for which timm's eval transform resizes as headstart does.

    headstart resizes the shorter side to ``round(size / crop_pct)``, timm to ``floor(size / crop_pct)``;
    where they differ, the crop_pct returned makes timm's floor land on headstart's size.
    """
    resize = int(round(size / crop_pct))
    if math.floor(size / crop_pct) == resize:
        return crop_pct
    return round(size / (resize + 0.25), 6)


def _write_torchvision(predictor: Predictor, folder: Path, batch: torch.Tensor, reference: np.ndarray) -> Exported:
    import torchvision

    classes = predictor.classes
    model = torchvision.models.mobilenet_v2(num_classes=len(classes))
    state = {k[len("backbone."):]: v for k, v in predictor.model.state_dict().items() if k.startswith("backbone.")}
    state.update({"classifier.1.weight": predictor.model.head.weight, "classifier.1.bias": predictor.model.head.bias})
    _load_strict(model, state, f"torchvision.models.mobilenet_v2(num_classes={len(classes)})")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    _write_json(folder / "config.json", {
        "library": "torchvision", "architecture": "mobilenet_v2", "num_classes": len(classes),
        "label_names": list(classes), "preprocessing": _preprocessing_record(predictor, ["pixel_values"]),
        "load": f"m = torchvision.models.mobilenet_v2(num_classes={len(classes)}); "
                "m.load_state_dict(safetensors.torch.load_file('model.safetensors'))",
    })
    _write_json(folder / "classes.json", classes)

    def reload() -> nn.Module:
        fresh = torchvision.models.mobilenet_v2(num_classes=len(classes))
        fresh.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        return fresh

    diff = _check_reload(reload, batch, reference)
    return Exported(folder, "timm", _files(folder), len(reference), diff,
                    f"torchvision.models.mobilenet_v2(num_classes={len(classes)}).load_state_dict(strict=True)",
                    ["torchvision MobileNetV2: a state dict for torchvision (timm has no mobilenet_v2 layout)"])


def _check_reload(reload: Callable[[], nn.Module], batch: torch.Tensor, reference: np.ndarray) -> float:
    model = reload().eval()
    with torch.no_grad():
        got = model(batch).float().numpy()
    return _compare(reference, got, TORCH_TOLERANCE, "timm/torchvision")


def _load_strict(model: nn.Module, state: dict, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"The run's weights do not map onto {what}: {exc}") from exc


def _module_name(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise ExportError(f"Cannot find the classifier of timm model {type(model).__name__}.")


# ------------------------------------------------------------------------------------------------ files


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
