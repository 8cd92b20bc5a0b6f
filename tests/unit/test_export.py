"""headstart export: ONNX, Hugging Face and timm/torchvision exports reproduce the run's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import headstart
from headstart.runs import export as export_module
from headstart.cli.app import app
from headstart.core.errors import ConfigError, RunError
from headstart.runs.export import ExportError, export

ort = pytest.importorskip("onnxruntime")

# Unseen texts of very different lengths: padding, and truncation at the run's max_length.
TEXTS = [
    "The midfielder scored a stunning goal from thirty yards",
    "Whisk the cream",
    "Roast the lamb slowly with garlic, rosemary and a glass of red wine for three hours " * 20,
    "The relay team broke the world record",
    "a",
]


@pytest.fixture(scope="module")
def timm_run(tmp_path_factory, image_folder) -> Path:
    """A linear run of timm's tiny random ``test_efficientnet`` (bicubic, crop_pct 0.95) at 32 px."""
    out = tmp_path_factory.mktemp("runs") / "effnet-linear"
    torch.manual_seed(0)
    headstart.fit(str(image_folder), "random:test_efficientnet", "linear", out=str(out), progress=False,
                  image_size=32, cache_dir=str(tmp_path_factory.mktemp("effnet-cache")))
    return out


def _fp32(run: Path):
    """The run's predictor in float32: exports are float32, while headstart predicts a bf16 run in bf16 where
    the CPU supports it (AVX-512 bf16 / AMX), which moves probabilities slightly."""
    predictor = headstart.load_run(run)
    predictor.precision = "fp32"
    return predictor


def _images(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*.png"))[::5]


def _logits(predictor, batch) -> np.ndarray:
    predictor.model.float().eval()
    with torch.no_grad():
        return predictor.model(batch).numpy()


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def _probs(rows: list[dict], classes: list[str]) -> np.ndarray:
    return np.array([[r["probabilities"][c] for c in classes] for r in rows])


# ---------------------------------------------------------------------------------------------- onnx


@pytest.mark.parametrize("which", ["image_run", "timm_run"])
def test_onnx_image_export_matches_onnxruntime_on_real_images(which, request, image_folder, tmp_path):
    run = request.getfixturevalue(which)
    run = run[1] if isinstance(run, tuple) else run
    result = export(run, "onnx", tmp_path / "onnx")
    out = result.path
    assert sorted(result.files) == ["classes.json", "model.onnx", "preprocessing.json", "task.json"]
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4

    predictor = _fp32(run)
    pre = json.loads((out / "preprocessing.json").read_text())
    assert json.loads((out / "classes.json").read_text()) == predictor.classes
    assert pre["size"] == predictor.backbone.preprocessing.size
    assert pre["mean"] == list(predictor.backbone.preprocessing.mean)
    assert pre["interpolation"] == predictor.backbone.preprocessing.interpolation
    # independent check: the run's own preprocessing on real images, a batch size never seen at export
    transform = predictor.backbone.preprocessing.transform()
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in _images(image_folder)])
    assert len(batch) not in (2, 6)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"pixel_values": batch.numpy()})[0]
    assert np.abs(got - _logits(predictor, batch)).max() <= 1e-4
    rows = predictor.predict(_images(image_folder), device="cpu")
    np.testing.assert_allclose(_softmax(got), _probs(rows, predictor.classes), atol=1e-5)


def test_onnx_text_export_matches_onnxruntime_with_dynamic_batch_and_sequence(text_run, tmp_path):
    from transformers import AutoTokenizer

    _, run = text_run
    result = export(run, "onnx", tmp_path / "onnx")
    out = result.path
    assert {"model.onnx", "preprocessing.json", "classes.json", "tokenizer.json"} <= set(result.files)
    pre = json.loads((out / "preprocessing.json").read_text())
    predictor = _fp32(run)
    assert pre["max_length"] == predictor.backbone.preprocessing.max_length
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for texts in (TEXTS, TEXTS[:1], TEXTS[1:3]):
        enc = tokenizer(texts, truncation=True, max_length=pre["max_length"], padding=True, return_tensors="np")
        got = session.run(["logits"], {name: enc[name] for name in pre["inputs"]})[0]
        batch = {name: torch.from_numpy(enc[name]) for name in pre["inputs"]}
        assert np.abs(got - _logits(predictor, batch)).max() <= 1e-4
    rows = predictor.predict(TEXTS, device="cpu")
    enc = tokenizer(TEXTS, truncation=True, max_length=pre["max_length"], padding=True, return_tensors="np")
    got = session.run(["logits"], {name: enc[name] for name in pre["inputs"]})[0]
    np.testing.assert_allclose(_softmax(got), _probs(rows, predictor.classes), atol=1e-5)


# ------------------------------------------------------------------------------------------------ hf


def test_hf_export_loads_with_auto_class_and_predicts_the_same(text_run, tmp_path):
    import headstart.backbones.hf_model  # noqa: F401  registers the headstart_text architecture
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, run = text_run
    result = export(run, "hf", tmp_path / "hf")
    assert result.max_abs_diff == pytest.approx(0.0, abs=1e-5)
    model = AutoModelForSequenceClassification.from_pretrained(str(result.path)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(result.path))
    predictor = _fp32(run)
    assert model.config.id2label == dict(enumerate(predictor.classes))
    assert model.config.label2id == {c: i for i, c in enumerate(predictor.classes)}
    enc = tokenizer(TEXTS, truncation=True, padding=True, return_tensors="pt")  # model_max_length = run's
    assert enc["input_ids"].shape[1] == predictor.backbone.preprocessing.max_length
    with torch.no_grad():
        probs = torch.softmax(model(**enc).logits.double(), -1).numpy()
    rows = predictor.predict(TEXTS, device="cpu")
    assert [model.config.id2label[i] for i in probs.argmax(1)] == [r["label"] for r in rows]
    np.testing.assert_allclose(probs, _probs(rows, predictor.classes), atol=1e-5, rtol=1e-5)


def test_hf_export_is_refused_for_image_runs_and_timm_for_text_runs(image_run, text_run, tmp_path):
    with pytest.raises(ConfigError, match="text runs"):
        export(image_run[1], "hf", tmp_path / "a")
    with pytest.raises(ConfigError, match="image runs"):
        export(text_run[1], "timm", tmp_path / "b")
    with pytest.raises(ConfigError, match="onnx, hf, timm"):
        export(text_run[1], "tflite", tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------------------- timm


def test_timm_export_loads_strictly_and_through_local_dir(timm_run, image_folder, tmp_path):
    import timm

    result = export(timm_run, "timm", tmp_path / "timm")
    out = result.path
    predictor = _fp32(timm_run)
    k = len(predictor.classes)
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "test_efficientnet" and config["num_classes"] == k
    assert config["label_names"] == predictor.classes
    strict = timm.create_model("test_efficientnet", pretrained=False, num_classes=k)
    strict.load_state_dict(load_file(str(out / "model.safetensors")), strict=True)
    local = timm.create_model(f"local-dir:{out}", pretrained=True)
    images = _images(image_folder)
    rows = predictor.predict(images, device="cpu")
    # timm's own eval transform from the exported config equals headstart's preprocessing
    data_config = timm.data.resolve_data_config({}, model=local)
    timm_tf, hs_tf = timm.data.create_transform(**data_config), predictor.backbone.preprocessing.transform()
    pil = [Image.open(p).convert("RGB") for p in images]
    batch = torch.stack([timm_tf(im) for im in pil])
    torch.testing.assert_close(batch, torch.stack([hs_tf(im) for im in pil]), atol=1e-6, rtol=0)
    for model in (strict.eval(), local.eval()):
        with torch.no_grad():
            probs = _softmax(model(batch).numpy())
        np.testing.assert_allclose(probs, _probs(rows, predictor.classes), atol=1e-5)
        assert [predictor.classes[i] for i in probs.argmax(1)] == [r["label"] for r in rows]


def test_torchvision_mobilenet_export_loads_strictly_and_predicts_the_same(image_run, image_folder, tmp_path):
    import torchvision

    _, run = image_run
    result = export(run, "timm", tmp_path / "tv")
    predictor = _fp32(run)
    model = torchvision.models.mobilenet_v2(num_classes=len(predictor.classes))
    model.load_state_dict(load_file(str(result.path / "model.safetensors")), strict=True)
    config = json.loads((result.path / "config.json").read_text())
    assert config["label_names"] == predictor.classes and config["architecture"] == "mobilenet_v2"
    images = _images(image_folder)
    transform = predictor.backbone.preprocessing.transform()
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in images])
    with torch.no_grad():
        probs = _softmax(model.eval()(batch).numpy())
    rows = predictor.predict(images, device="cpu")
    np.testing.assert_allclose(probs, _probs(rows, predictor.classes), atol=1e-5)


# --------------------------------------------------------------------------------------- safety, CLI


def test_export_never_overwrites_and_leaves_nothing_behind_on_failure(image_run, tmp_path, monkeypatch):
    _, run = image_run
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="--out"):
        export(run, "onnx", taken)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(run, "timm", empty).path == empty and (empty / "model.safetensors").exists()
    with pytest.raises(RunError, match="--out"):
        export(run, "timm", empty)
    monkeypatch.setattr(export_module, "ONNX_TOLERANCE", -1.0)  # every check fails
    with pytest.raises(ExportError, match="does not reproduce"):
        export(run, "onnx", tmp_path / "failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]  # no output, no temp folder


def test_export_checks_on_given_samples(image_run, image_folder, tmp_path):
    _, run = image_run
    result = export(run, "onnx", tmp_path / "x", samples=str(image_folder / "red"))
    assert result.samples == export_module.MAX_SAMPLES and result.max_abs_diff <= 1e-4
    with pytest.raises(ConfigError, match="This run takes images, but the samples given are texts"):
        export(run, "onnx", tmp_path / "y", samples=TEXTS)


def test_cli_export_writes_and_refuses_to_overwrite(image_run, tmp_path):
    _, run = image_run
    env = {"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "cli-onnx"
    result = CliRunner().invoke(app, ["export", str(run), "--format", "onnx", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "max |logit difference|" in result.output and (out / "model.onnx").exists()
    again = CliRunner().invoke(app, ["export", str(run), "--format", "onnx", "--out", str(out), "--json"], env=env)
    assert isinstance(again.exception, RunError) and "--out" in str(again.exception)
    result = CliRunner().invoke(app, ["export", str(run), "-f", "timm", "-o", str(tmp_path / "j"), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["format"] == "timm"
