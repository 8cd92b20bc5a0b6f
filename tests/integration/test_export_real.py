"""Integration: a real linear run of the packaged MobileNetV2 on MNIST digits, exported to ONNX and timm format;
linear MiniLM runs on the NRC emotion lexicon (multi-label) and VADER valences (regression), exported to ONNX."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import headstart
from headstart.data import load_items, mnist_folder, nrc_emotions_jsonl, vader_valence_csv
from headstart.runs.export import export

pytestmark = pytest.mark.integration

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export-real")
    data = mnist_folder(tmp / "m", per_class=10)
    out = tmp / "run"
    headstart.fit(str(data), "mobilenetv2", "linear", out=str(out), progress=False, image_size=64,
                  cache_dir=str(tmp / "cache"))
    images = sorted(str(p) for p in data.rglob("*.png"))[::7]
    return out, images


def _fp32_logits_and_batch(run, images):
    predictor = headstart.load_run(run)
    predictor.precision = "fp32"  # the exports are float32; a bf16 run predicts in bf16 where the CPU can
    predictor.model.float().eval()
    transform = predictor.backbone.preprocessing.transform()
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in images])
    with torch.no_grad():
        return predictor, predictor.model(batch).numpy(), batch


def test_real_run_exports_to_onnx_with_parity(mnist_run, tmp_path):
    run, images = mnist_run
    result = export(run, "onnx", tmp_path / "onnx", samples=images[:4])
    assert result.max_abs_diff <= 1e-4
    predictor, logits, batch = _fp32_logits_and_batch(run, images)
    session = ort.InferenceSession(str(result.path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"pixel_values": batch.numpy()})[0]
    assert np.abs(got - logits).max() <= 1e-4
    assert (got.argmax(1) == logits.argmax(1)).all()


def test_real_run_exports_to_torchvision_weights_with_parity(mnist_run, tmp_path):
    import torchvision

    run, images = mnist_run
    result = export(run, "timm", tmp_path / "timm")
    predictor, logits, batch = _fp32_logits_and_batch(run, images)
    model = torchvision.models.mobilenet_v2(num_classes=len(predictor.classes))
    model.load_state_dict(load_file(str(result.path / "model.safetensors")), strict=True)
    with torch.no_grad():
        got = model.eval()(batch).numpy()
    assert np.abs(got - logits).max() <= 1e-5
    rows = predictor.predict(images, device="cpu")
    assert [predictor.classes[i] for i in got.argmax(1)] == [r["label"] for r in rows]


# ------------------------------------------------------------------------------------ multi-label, regression

WORDS = ["furious", "delighted", "funeral", "sunshine", "betrayal", "gift", "spider", "victory", "table", "scream"]


def _sample(rows: list, n: int = 400) -> list:
    return [rows[i] for i in sorted(np.random.default_rng(0).choice(len(rows), n, replace=False))]


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory):
    """Linear MiniLM runs on 400 NRC words (10 emotion labels each word may have) and 400 VADER valences."""
    tmp = tmp_path_factory.mktemp("export-tasks-real")
    nrc = [json.loads(line) for line in nrc_emotions_jsonl(tmp / "nrc.jsonl").read_text().splitlines()]
    with open(vader_valence_csv(tmp / "vader.csv"), newline="", encoding="utf-8") as handle:
        vader = list(csv.DictReader(handle))
    data = {"multi-label": tuple(map(list, zip(*[(r["text"], r["labels"]) for r in _sample(nrc)]))),
            "regression": tuple(map(list, zip(*[(r["text"], float(r["valence"])) for r in _sample(vader)])))}
    runs = {}
    for task, pairs in data.items():
        runs[task] = tmp / task
        result = headstart.fit(pairs, "minilm-l6", "linear", out=str(runs[task]), progress=False,
                               cache_dir=str(tmp / "cache"))
        assert result.metrics["task"] == task
    return runs


@pytest.mark.parametrize("task", ["multi-label", "regression"])
def test_real_task_runs_export_to_onnx_with_parity(task_runs, task, tmp_path):
    from transformers import AutoTokenizer

    run = task_runs[task]
    result = export(run, "onnx", tmp_path / "onnx")
    predictor = headstart.load_run(run)
    predictor.precision = "fp32"
    reference = predictor.outputs(load_items(WORDS, modality="text"), device="cpu")
    assert result.max_abs_diff <= 1e-4 * max(1.0, np.abs(reference).max())
    pre = json.loads((result.path / "preprocessing.json").read_text())
    enc = AutoTokenizer.from_pretrained(str(result.path))(WORDS, truncation=True, max_length=pre["max_length"],
                                                          padding=True, return_tensors="np")
    session = ort.InferenceSession(str(result.path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {name: enc[name] for name in pre["inputs"]})[0]
    assert np.abs(got - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    record = json.loads((result.path / "task.json").read_text())
    rows = predictor.predict(WORDS, device="cpu")
    if task == "regression":  # the output is the valence itself, on VADER's -4..4 scale
        assert record["target"] == "target"
        assert [float(v) for v in got[:, 0]] == pytest.approx([r["value"] for r in rows], abs=1e-4)
        assert min(r["value"] for r in rows) < 0 < max(r["value"] for r in rows)
    else:  # sigmoid, then each label's threshold from task.json
        proba = 1.0 / (1.0 + np.exp(-got.astype(np.float64)))
        labels = [[c for c, p, t in zip(record["outputs"], row, record["thresholds"]) if p >= t] for row in proba]
        assert labels == [r["labels"] for r in rows] and any(labels)
