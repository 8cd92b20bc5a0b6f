"""Temperature scaling: fitted on validation logits, lowers the ECE, folded into the saved head so predict,
evaluate and ONNX exports all give softmax(logits / T)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import headstart
from headstart.training.calibration import (T_MAX, T_MIN, calibration_scores, expected_calibration_error, fit_temperature,
                                   nll, reliability)
from headstart.core.metrics import softmax

TEXTS = ["the striker scored twice", "simmer the onions slowly", "a late goal won the cup", "knead the dough"]


def _overconfident(n: int = 600, k: int = 4, scale: float = 6.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits that are right ~70% of the time but ``scale`` times too confident."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.5
    return logits * scale, y


def test_temperature_lowers_nll_and_ece_of_overconfident_logits():
    logits, y = _overconfident()
    t = fit_temperature(logits, y)
    assert 3.0 < t < 12.0  # the logits were scaled up by 6
    scores = calibration_scores(logits, y, t)
    assert scores["nll_after"] < scores["nll_before"]
    assert scores["ece_after"] < 0.5 * scores["ece_before"]
    under, uy = logits / 30, y  # underconfident: T below 1 sharpens
    assert T_MIN <= fit_temperature(under, uy) < 1.0


def test_temperature_stays_in_bounds_and_is_one_when_nothing_beats_it():
    y = np.array([0, 1, 0, 1])
    perfect = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])
    assert T_MIN <= fit_temperature(perfect, y) < 0.2  # sharper is always better when all are right
    assert fit_temperature(-perfect, y) == pytest.approx(T_MAX, rel=1e-2)  # all wrong: as flat as allowed
    assert fit_temperature(np.zeros((4, 2)), y) == 1.0  # uniform logits: every T gives the same NLL
    assert nll(np.zeros((4, 2)), y) == pytest.approx(np.log(2))


def test_temperature_that_lowers_nll_but_raises_ece_is_not_kept():
    """Calibrated logits plus two items wrong by a 300-logit margin: those two dominate the NLL, whose
    optimum (the flattest T allowed) would make the 998 others underconfident; T stays 1."""
    rng = np.random.default_rng(0)
    n = 1000
    confidence = rng.uniform(0.6, 0.99, n)
    y = rng.integers(0, 2, n)
    top = np.where(rng.random(n) < confidence, y, 1 - y)  # right as often as it is confident
    logits = np.zeros((n, 2))
    logits[np.arange(n), top] = np.log(confidence / (1 - confidence))
    logits[:2] = 0.0
    logits[[0, 1], 1 - y[:2]] = 300.0
    flattest = calibration_scores(logits, y, T_MAX)
    assert flattest["nll_after"] < 0.7 * flattest["nll_before"]  # the NLL alone would flatten everything...
    assert flattest["ece_after"] > 0.25 > 0.02 > flattest["ece_before"]  # ...and ruin the calibration
    assert fit_temperature(logits, y) == 1.0


def test_ece_and_reliability_bins_by_hand():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 0])
    bins = reliability(probs, y)
    assert [(b["n"], round(b["confidence"], 2), b["accuracy"]) for b in bins] == [(2, 0.6, 0.5), (2, 0.95, 0.5)]
    assert expected_calibration_error(probs, y) == pytest.approx((2 * 0.1 + 2 * 0.45) / 4)


@pytest.fixture(scope="module")
def calibrated_pair(tmp_path_factory, tiny_text_dir, text_csv):
    """The same linear fit with and without calibration, saved: ``(plain FitResult, calibrated run dir)``."""
    root = tmp_path_factory.mktemp("calibration")
    common = dict(progress=False, cache_dir=str(root / "cache"))
    plain = headstart.fit(str(text_csv), str(tiny_text_dir), "linear", calibrate=False, **common)
    calibrated = headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(root / "run"), **common)
    return plain, calibrated, root / "run"


def test_fit_records_calibration_and_lowers_validation_ece(calibrated_pair):
    plain, calibrated, run = calibrated_pair
    assert "calibration" not in plain.metrics
    cal = json.loads((run / "metrics.json").read_text())["calibration"]
    print(f"T = {cal['temperature']:.3f}; val ECE {cal['val']['ece_before']:.4f} -> {cal['val']['ece_after']:.4f}")
    assert cal["temperature"] != 1.0 and cal["bins"] == 15
    assert cal["val"]["nll_after"] < cal["val"]["nll_before"]
    assert cal["val"]["ece_after"] < cal["val"]["ece_before"]
    assert calibrated.metrics["val"]["accuracy"] == plain.metrics["val"]["accuracy"]  # T never changes a label
    assert json.loads((run / "model" / "headstart.json").read_text())["temperature"] == cal["temperature"]


def test_reloaded_run_predicts_softmax_of_logits_over_temperature(calibrated_pair):
    plain, _, run = calibrated_pair
    loaded = headstart.load_run(run)
    t = loaded.temperature
    enc = plain.predictor.backbone.preprocessing.collate(False)([(x, 0) for x in TEXTS])[0]
    with torch.no_grad():
        raw = plain.predictor.model.eval()(enc).double().numpy()
    rows = loaded.predict(TEXTS, device="cpu")
    got = np.array([[row["probabilities"][c] for c in loaded.classes] for row in rows])
    np.testing.assert_allclose(got, softmax(raw / t), atol=1e-5)
    assert not np.allclose(got, softmax(raw), atol=1e-3)  # the temperature made a difference


def test_onnx_export_of_a_calibrated_run_gives_the_calibrated_probabilities(calibrated_pair, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from transformers import AutoTokenizer

    from headstart.runs.export import export

    _, _, run = calibrated_pair
    out = export(run, "onnx", tmp_path / "onnx").path
    pre = json.loads((out / "preprocessing.json").read_text())
    enc = AutoTokenizer.from_pretrained(str(out))(TEXTS, truncation=True, max_length=pre["max_length"],
                                                   padding=True, return_tensors="np")
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {name: enc[name] for name in pre["inputs"]})[0]
    loaded = headstart.load_run(run)
    rows = loaded.predict(TEXTS, device="cpu")
    np.testing.assert_allclose(softmax(logits.astype(np.float64)),
                               [[r["probabilities"][c] for c in loaded.classes] for r in rows], atol=1e-5)
