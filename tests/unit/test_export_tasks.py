"""Every task survives the round trips: a saved run predicts as the fitted one did, and its ONNX, Hugging Face and
timm exports give the same outputs, with task.json saying how to turn them into predict's labels or values."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import headstart
from conftest import COOKING, SPORTS
from headstart.runs import export as export_module
from headstart.data import load_items
from headstart.core.errors import RunError
from headstart.runs.export import export

ort = pytest.importorskip("onnxruntime")

# Unseen texts of very different lengths: padding, and truncation at the run's max_length.
TEXTS = [
    "The midfielder scored a stunning goal from thirty yards",
    "Whisk the cream",
    "Roast the lamb slowly with garlic, rosemary and a glass of red wine for three hours " * 20,
    "The relay team broke the world record, then they baked a cake",
    "a",
    "Nothing happened at the meeting on Tuesday",
]
NEITHER = ["The meeting moved to Tuesday", "Please reply by email", "The train was late again",
           "My phone battery died", "The library opens at nine", "We painted the fence blue"]
TASKS = ("single-label", "multi-label", "regression")
RUNS = [(task, strategy) for task in TASKS for strategy in ("linear", "partial")]


def _texts() -> list[str]:
    """42 texts: sports, cooking, both in one sentence, and neither of them."""
    both = [f"{s}, then {c[0].lower()}{c[1:]}" for s, c in zip(SPORTS[:6], COOKING[:6])]
    return SPORTS + COOKING + both + NEITHER


def _tags(text: str) -> list[str]:
    """sports, cooking (both possible), and long for texts of more than ten words; a text may have none."""
    tags = {"sports"} if any(text.startswith(s) for s in SPORTS) else set()
    tags |= {"cooking"} if any(c[1:] in text for c in COOKING) else set()
    return sorted(tags | ({"long"} if len(text.split()) > 10 else set()))


def _value(i: int, text: str) -> float:
    """A number a model can partly learn (the text's length) with more than 20 distinct values."""
    return 2.5 * len(text.split()) + 0.1 * i


def _data(task: str, strategy: str, folder: Path) -> tuple[object, dict]:
    """The linear runs take ``(texts, labels)``, the partial runs a table (multi-label: a "|"-separated column,
    regression: a column named ``score``): ``(data, fit options)``."""
    texts = _texts()
    if task == "single-label":
        texts, labels = SPORTS + COOKING, ["sports"] * len(SPORTS) + ["cooking"] * len(COOKING)
    elif task == "multi-label":
        labels = [_tags(t) for t in texts]
    else:
        labels = [_value(i, t) for i, t in enumerate(texts)]
    if strategy == "linear":
        return (texts, labels), {}
    path = folder / f"{task}.csv"
    column = {"single-label": "label", "multi-label": "tags", "regression": "score"}[task]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", column])
        for text, label in zip(texts, labels):
            if task == "multi-label" and not label:
                continue  # an empty cell is a missing label in a table; the (texts, labels) runs hold empty sets
            writer.writerow([text, "|".join(label) if isinstance(label, list) else label])
    return str(path), {"label_col": column}


def _fit(data, model: str, strategy: str, out: Path, cache: Path, **options) -> headstart.FitResult:
    torch.manual_seed(0)
    extra = {"epochs": 1, "batch_size": 8} if strategy != "linear" else {}
    return headstart.fit(data, model, strategy, out=str(out), progress=False, cache_dir=str(cache),
                         **extra, **options)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_text_dir) -> dict[tuple[str, str], tuple[headstart.FitResult, Path]]:
    """One tiny-BERT run per task and strategy: ``{(task, strategy): (FitResult, run_dir)}``."""
    root = tmp_path_factory.mktemp("task-runs")
    out = {}
    for task, strategy in RUNS:
        run = root / f"{task}-{strategy}"
        data, options = _data(task, strategy, root)
        result = _fit(data, str(tiny_text_dir), strategy, run, root / "cache", **options)
        assert result.metrics["task"] == task
        out[task, strategy] = result, run
    return out


def _fp32(run: Path):
    """The run's predictor in float32, as every export is (a bf16 run predicts in bf16 where the CPU can)."""
    predictor = headstart.load_run(run)
    predictor.precision = "fp32"
    return predictor


def _assert_same_rows(got: list[dict], want: list[dict]) -> None:
    """predict() rows: the same inputs and answers, numbers to 1e-6."""
    assert [sorted(r) for r in got] == [sorted(r) for r in want]
    for a, b in zip(got, want):
        assert a["input"] == b["input"]
        assert a.get("label") == b.get("label") and a.get("labels") == b.get("labels")
        if "value" in b:
            assert a["value"] == pytest.approx(b["value"], abs=1e-6, rel=1e-7)
        if "probabilities" in b:
            assert list(a["probabilities"]) == list(b["probabilities"])
            np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()),
                                       atol=1e-6, rtol=0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64) - np.max(z, 1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def _answers(record: dict, outputs: np.ndarray) -> list[dict]:
    """What a consumer makes of an export's outputs with nothing but task.json."""
    names = record["outputs"]
    if record["task"] == "regression":
        return [{"value": float(v)} for v in outputs[:, 0]]
    if record["task"] == "multi-label":
        proba = _sigmoid(outputs)
        return [{"labels": [c for c, p, t in zip(names, row, record["thresholds"]) if p >= t],
                 "probabilities": dict(zip(names, row))} for row in proba]
    proba = _softmax(outputs)
    return [{"label": names[int(row.argmax())], "probabilities": dict(zip(names, row))} for row in proba]


def _assert_answers_match(answers: list[dict], rows: list[dict], units: float = 1.0) -> None:
    for answer, row in zip(answers, rows, strict=True):
        assert answer.get("label") == row.get("label") and answer.get("labels") == row.get("labels")
        if "value" in row:
            assert answer["value"] == pytest.approx(row["value"], abs=1e-4 * units)
        if "probabilities" in row:
            np.testing.assert_allclose(list(answer["probabilities"].values()), list(row["probabilities"].values()),
                                       atol=1e-5)


def _onnx_outputs(folder: Path, texts: list[str]) -> np.ndarray:
    """The exported model on ``texts``, tokenised as preprocessing.json says, with the exported tokenizer."""
    from transformers import AutoTokenizer

    pre = json.loads((folder / "preprocessing.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    enc = tokenizer(texts, truncation=True, max_length=pre["max_length"], padding=True, return_tensors="np")
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {name: enc[name] for name in pre["inputs"]})[0]


# ------------------------------------------------------------------------------------------------ reload


@pytest.mark.parametrize("task,strategy", RUNS)
def test_a_saved_run_predicts_as_the_fitted_model_did(runs, task, strategy):
    result, run = runs[task, strategy]
    loaded = headstart.load_run(run)
    assert loaded.task.name == task and loaded.classes == result.classes
    assert loaded.task.spec() == result.predictor.task.spec()
    _assert_same_rows(loaded.predict(TEXTS, device="cpu"), result.predict(TEXTS, device="cpu"))
    expected_keys = {"single-label": {"label", "probabilities"}, "multi-label": {"labels", "probabilities"},
                     "regression": {"value"}}[task]
    assert {k for row in loaded.predict(TEXTS[:2], device="cpu") for k in row} == {"input", "text"} | expected_keys


def test_regression_runs_name_their_target_and_keep_its_scale(runs):
    for strategy, target in (("linear", "target"), ("partial", "score")):
        result, run = runs["regression", strategy]
        spec = json.loads((run / "model" / "headstart.json").read_text())["task"]
        metrics = json.loads((run / "metrics.json").read_text())
        assert spec["target"] == target and spec["scale_folded"] is True
        assert spec["train_mean"] == pytest.approx(metrics["target"]["train_mean"])
        values = [r["value"] for r in headstart.load_run(run).predict(TEXTS, device="cpu")]
        assert abs(np.mean(values) - spec["train_mean"]) < 5 * spec["train_std"]  # the target's units, not z-scores


# ---------------------------------------------------------------------------------------------- onnx


@pytest.mark.parametrize("task,strategy", RUNS)
def test_onnx_export_reproduces_outputs_and_task_json_reproduces_predict(runs, task, strategy, tmp_path):
    _, run = runs[task, strategy]
    exported = export(run, "onnx", tmp_path / "onnx")
    assert {"model.onnx", "preprocessing.json", "classes.json", "task.json"} <= set(exported.files)
    predictor = _fp32(run)
    record = json.loads((exported.path / "task.json").read_text())
    assert record["task"] == task and record["outputs"] == predictor.classes
    assert json.loads((exported.path / "classes.json").read_text()) == predictor.classes
    reference = predictor.outputs(load_items(TEXTS, modality="text"), device="cpu")
    got = _onnx_outputs(exported.path, TEXTS)
    allowed = export_module.ONNX_TOLERANCE * max(1.0, np.abs(reference).max())
    assert got.shape == reference.shape and np.abs(got - reference).max() <= allowed
    _assert_answers_match(_answers(record, got), predictor.predict(TEXTS, device="cpu"))


def test_task_json_carries_each_tasks_own_record(runs, tmp_path):
    single = json.loads((export(runs["single-label", "partial"][1], "onnx", tmp_path / "s").path
                         / "task.json").read_text())
    assert single["temperature"] == pytest.approx(headstart.load_run(runs["single-label", "partial"][1]).temperature)
    assert "softmax" in single["apply"] and "folded" in single["outputs_are"]
    multi_run = runs["multi-label", "partial"][1]
    multi = json.loads((export(multi_run, "onnx", tmp_path / "m").path / "task.json").read_text())
    tuned = json.loads((multi_run / "metrics.json").read_text())["thresholds"]["by_label"]
    assert multi["thresholds"] == [tuned[c] for c in multi["outputs"]]
    assert "sigmoid" in multi["apply"]
    reg_run = runs["regression", "partial"][1]
    reg = json.loads((export(reg_run, "onnx", tmp_path / "r").path / "task.json").read_text())
    assert reg["outputs"] == ["score"] and reg["target"] == "score" and reg["scale_folded"] is True
    assert "own units" in reg["outputs_are"] and reg["apply"].startswith("nothing")


def test_multi_label_thresholds_decide_the_labels_in_predict_and_in_the_export(runs, tmp_path):
    """Thresholds away from 0.5 (here: each label's median probability on TEXTS) change the labels; the loaded run
    and the ONNX export's task.json both apply them."""
    run = tmp_path / "run"
    shutil.copytree(runs["multi-label", "linear"][1], run)
    proba = _sigmoid(_fp32(run).outputs(load_items(TEXTS, modality="text"), device="cpu"))
    thresholds = [float(np.round(np.median(column) + 1e-6, 6)) for column in proba.T]
    spec_file = run / "model" / "headstart.json"
    spec = json.loads(spec_file.read_text())
    spec["task"]["thresholds"] = thresholds
    spec_file.write_text(json.dumps(spec))
    predictor = _fp32(run)
    rows = predictor.predict(TEXTS, device="cpu")
    at_half = [[c for c, p in zip(predictor.classes, row) if p >= 0.5] for row in proba]
    assert [r["labels"] for r in rows] != at_half
    record = json.loads((export(run, "onnx", tmp_path / "onnx").path / "task.json").read_text())
    assert record["thresholds"] == thresholds
    _assert_answers_match(_answers(record, _onnx_outputs(tmp_path / "onnx", TEXTS)), rows)


def test_onnx_export_of_a_regression_in_large_units_passes_its_check(tmp_path, tiny_text_dir):
    """Values in the tens of thousands: float32 differences between onnxruntime and PyTorch scale with them, so
    the check is relative to the outputs' size, not an absolute 1e-4."""
    texts = _texts()
    values = [2000.0 * (len(t) - 49) + 37.3 * i for i, t in enumerate(texts)]
    _fit((texts, values), str(tiny_text_dir), "partial", tmp_path / "run", tmp_path / "cache")
    exported = export(tmp_path / "run", "onnx", tmp_path / "onnx")
    predictor = _fp32(tmp_path / "run")
    rows = predictor.predict(TEXTS, device="cpu")
    scale = max(abs(r["value"]) for r in rows)
    assert scale > 1000
    assert exported.max_abs_diff <= export_module.ONNX_TOLERANCE * scale
    record = json.loads((exported.path / "task.json").read_text())
    _assert_answers_match(_answers(record, _onnx_outputs(exported.path, TEXTS)), rows, units=scale)


# ------------------------------------------------------------------------------------------------ hf


@pytest.mark.parametrize("task,strategy,problem", [("multi-label", "partial", "multi_label_classification"),
                                                   ("regression", "linear", "regression"),
                                                   ("single-label", "linear", "single_label_classification")])
def test_hf_export_tells_transformers_the_task(runs, task, strategy, problem, tmp_path):
    import headstart.backbones.hf_model  # noqa: F401  registers the headstart_text architecture
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    _, run = runs[task, strategy]
    exported = export(run, "hf", tmp_path / "hf")
    assert "task.json" in exported.files and exported.max_abs_diff <= 1e-5
    model = AutoModelForSequenceClassification.from_pretrained(str(exported.path)).eval()
    assert model.config.problem_type == problem
    predictor = _fp32(run)
    assert list(model.config.id2label.values()) == predictor.classes
    classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(str(exported.path)),
                        truncation=True, top_k=None, device="cpu")
    scored = [{d["label"]: d["score"] for d in item} for item in classify(TEXTS)]
    rows = predictor.predict(TEXTS, device="cpu")
    record = json.loads((exported.path / "task.json").read_text())
    if task == "regression":  # the pipeline applies nothing: its score is the value, in the target's units
        assert [s[record["target"]] for s in scored] == pytest.approx([r["value"] for r in rows], abs=1e-4)
        return
    for s, row in zip(scored, rows, strict=True):  # softmax or sigmoid, as predict's probabilities
        assert s == pytest.approx(row["probabilities"], abs=1e-5)
    if task == "multi-label":
        chosen = [[c for c, t in zip(record["outputs"], record["thresholds"]) if s[c] >= t] for s in scored]
        assert chosen == [r["labels"] for r in rows]


def test_hf_model_loss_follows_the_problem_type(runs, tmp_path):
    import headstart.backbones.hf_model  # noqa: F401
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    for task in ("multi-label", "regression"):
        exported = export(runs[task, "linear"][1], "hf", tmp_path / task)
        model = AutoModelForSequenceClassification.from_pretrained(str(exported.path)).eval()
        enc = AutoTokenizer.from_pretrained(str(exported.path))(TEXTS[:2], padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits
            if task == "multi-label":
                y = (torch.arange(logits.numel()).view(logits.shape) % 2).float()
                want = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            else:
                y = torch.tensor([10.0, 20.0])
                want = torch.nn.functional.mse_loss(logits[:, 0], y)
            assert float(model(**enc, labels=y).loss) == pytest.approx(float(want), rel=1e-6)


# ---------------------------------------------------------------------------------------------- timm


@pytest.fixture(scope="module")
def image_task_runs(tmp_path_factory, image_folder) -> dict[str, Path]:
    """Linear runs of timm's tiny random ``test_efficientnet`` (32 px): multi-label colour tags and a regression
    on each image's mean red level."""
    root = tmp_path_factory.mktemp("image-task-runs")
    images = sorted(str(p) for p in image_folder.rglob("*.png"))
    tags = {"red": ["red", "warm"], "green": ["green"], "blue": ["blue", "cool"]}
    labels = {"multi-label": [tags[Path(p).parent.name] for p in images],
              "regression": [float(np.asarray(Image.open(p).convert("RGB"), np.float64)[..., 0].mean())
                             for p in images]}
    return {task: _fit((images, labels[task]), "random:test_efficientnet", "linear", root / task,
                       root / "cache", image_size=32).run_dir for task in labels}


@pytest.mark.parametrize("task", ["multi-label", "regression"])
def test_timm_export_reproduces_outputs_and_carries_the_task(image_task_runs, image_folder, task, tmp_path):
    import timm

    run = image_task_runs[task]
    exported = export(run, "timm", tmp_path / "timm")
    predictor = _fp32(run)
    record = json.loads((exported.path / "task.json").read_text())
    assert record["task"] == task and record["outputs"] == predictor.classes
    assert json.loads((exported.path / "config.json").read_text())["label_names"] == predictor.classes
    model = timm.create_model(f"local-dir:{exported.path}", pretrained=True).eval()
    images = sorted(str(p) for p in image_folder.rglob("*.png"))[::5]
    transform = predictor.backbone.preprocessing.transform()
    with torch.no_grad():
        got = model(torch.stack([transform(Image.open(p).convert("RGB")) for p in images])).numpy()
    reference = predictor.outputs(load_items(images), device="cpu")
    assert np.abs(got - reference).max() <= export_module.TORCH_TOLERANCE * max(1.0, np.abs(reference).max())
    _assert_answers_match(_answers(record, got), predictor.predict(images, device="cpu"))


def test_a_regression_run_edited_to_unscaled_outputs_is_not_exported(runs, tmp_path):
    """task.json promises values in the target's units; a head recorded as standardised cannot keep that promise."""
    run = tmp_path / "run"
    shutil.copytree(runs["regression", "linear"][1], run)
    spec_file = run / "model" / "headstart.json"
    spec = json.loads(spec_file.read_text())
    spec["task"]["scale_folded"] = False
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(RunError, match=r"headstart\.json says the regression head gives standardised values"):
        export(run, "onnx", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()
