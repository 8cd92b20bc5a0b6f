"""Class imbalance (``balance``), the selection metric (``select_metric``) and balanced accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import headstart
from headstart.training.balance import class_weights, resolve_balance
from headstart.core.config import FitConfig
from headstart.training.distributed import train_loader
from headstart.training.engine import TrainSettings, _selection_key
from headstart.core.errors import ConfigError
from headstart.training.heads import linear_probe
from headstart.core.metrics import balanced_accuracy, classification_metrics, selection_score

from conftest import COOKING, SPORTS


def test_class_weights_are_inverse_frequency_and_average_one_over_the_items():
    y = np.array([0] * 8 + [1] * 2 + [2] * 2)
    w = class_weights(y, 4)
    np.testing.assert_allclose(w, [12 / (3 * 8), 12 / (3 * 2), 12 / (3 * 2), 0.0])
    assert w[y].mean() == pytest.approx(1.0)


def test_auto_picks_weights_only_above_the_imbalance_ratio():
    classes = ["a", "b"]
    skewed = resolve_balance("auto", np.array([0] * 40 + [1] * 4), classes)
    assert skewed["used"] == "weights" and skewed["ratio"] == 10.0
    assert skewed["class_weights"]["b"] > skewed["class_weights"]["a"]
    even = resolve_balance("auto", np.array([0] * 6 + [1] * 4), classes)
    assert even["used"] == "none" and even["class_weights"] is None
    assert resolve_balance("sampler", np.array([0, 0, 1]), classes)["used"] == "sampler"


def test_fit_on_an_imbalanced_tiny_set_records_auto_choosing_weights(text_backbone, tmp_path):
    items = SPORTS + COOKING[:3]  # 15 against 3: ratio 5
    labels = ["sports"] * len(SPORTS) + ["cooking"] * 3
    result = headstart.fit((items, labels), text_backbone, "linear", progress=False, val_fraction=0.25,
                           cache_dir=str(tmp_path))
    record = result.metrics["balance"]
    assert record["asked"] == "auto" and record["used"] == "weights" and record["ratio"] > 3
    assert result.info["balance"] == "weights" and result.config.balance == "weights"
    none = headstart.fit((items, labels), text_backbone, "linear", progress=False, val_fraction=0.25,
                         cache_dir=str(tmp_path), balance="none")
    assert none.metrics["balance"]["used"] == "none" and none.config.balance == "none"
    assert "balanced_accuracy" in result.metrics["val"]


def test_weighted_probe_recovers_the_minority_class_better():
    rng = np.random.default_rng(0)
    major = rng.normal(0.0, 1.0, (400, 5))
    minor = rng.normal(0.0, 1.0, (20, 5)) + np.array([1.2, 0, 0, 0, 0])
    x = np.vstack([major, minor])
    y = np.array([0] * 400 + [1] * 20)
    xv = np.vstack([rng.normal(0, 1, (200, 5)), rng.normal(0, 1, (200, 5)) + [1.2, 0, 0, 0, 0]])
    yv = np.array([0] * 200 + [1] * 200)
    plain = linear_probe(x, y, xv, yv, 2, cs=(1.0,))
    weighted = linear_probe(x, y, xv, yv, 2, cs=(1.0,), class_weight=class_weights(y, 2))
    pred = {name: fit.head(torch.from_numpy(xv).float()).argmax(1).numpy()
            for name, fit in (("plain", plain), ("weighted", weighted))}
    assert balanced_accuracy(yv, pred["weighted"], 2) > balanced_accuracy(yv, pred["plain"], 2) + 0.1


def test_class_balanced_sampler_draws_the_minority_about_half_the_time():
    pairs = [(i, 0) for i in range(90)] + [(i, 1) for i in range(90, 100)]
    weights = class_weights(np.array([t for _, t in pairs]), 2)[[t for _, t in pairs]]
    loader = train_loader(pairs, 20, torch.Generator().manual_seed(0), lambda b: torch.tensor([t for _, t in b]),
                          sample_weights=weights)
    drawn = torch.cat([batch for _ in range(10) for batch in loader])
    assert len(drawn) == 1000 and 0.4 < float(drawn.float().mean()) < 0.6  # 10% of the items, half the draws


def test_select_metric_changes_the_selection_key():
    row = {"val_loss": 0.5, "val_accuracy": 0.9, "val_balanced_accuracy": 0.6, "val_macro_f1": 0.7}
    assert _selection_key(row, TrainSettings()) == (0.9, -0.5)
    assert _selection_key(row, TrainSettings(select_metric="balanced_accuracy")) == (0.6, -0.5)
    assert _selection_key(row, TrainSettings(select_metric="macro_f1")) == (0.7, -0.5)
    later = {"val_loss": 0.6, "val_accuracy": 0.85, "val_balanced_accuracy": 0.8}  # worse accuracy, better balance
    by_bal = TrainSettings(select_metric="balanced_accuracy")
    assert _selection_key(later, by_bal) > _selection_key(row, by_bal)
    assert _selection_key(later, TrainSettings()) < _selection_key(row, TrainSettings())


def test_fine_tuning_selects_on_the_chosen_metric(text_backbone, text_pairs, tmp_path):
    result = headstart.fit(text_pairs, text_backbone, "partial", progress=False, epochs=1, unfreeze=1,
                           select_metric="balanced_accuracy", balance="sampler", cache_dir=str(tmp_path))
    assert "val_balanced_accuracy" in result.history[-1]
    assert result.info["selected_on"] in ("val_balanced_accuracy", "val_loss")  # tiny val: the loss selects
    assert result.info["balance"] == "sampler"


def test_balanced_accuracy_and_its_interval():
    y = np.array([0] * 8 + [1] * 2)
    pred = np.array([0] * 8 + [0, 1])
    assert balanced_accuracy(y, pred, 2) == pytest.approx(0.75)
    assert selection_score(y, pred, 2, "balanced_accuracy") == pytest.approx(0.75)
    assert selection_score(y, pred, 2, "accuracy") == pytest.approx(0.9)
    m = classification_metrics(y, pred, ["a", "b"])
    lo, hi = m["balanced_accuracy_ci95"]
    assert lo < 0.75 < hi and 0 <= lo and hi <= 1
    assert m["per_class"]["b"]["recall"] == 0.5 and m["per_class"]["b"]["recall_ci95"][0] < 0.5
    perfect = classification_metrics(y, y, ["a", "b"])
    assert perfect["balanced_accuracy"] == 1.0 and perfect["balanced_accuracy_ci95"][0] < 1.0  # never a point


def test_bad_balance_and_select_metric_are_config_errors():
    with pytest.raises(ConfigError, match="--balance must be one of auto, none, weights, sampler"):
        FitConfig(balance="oversample")
    with pytest.raises(ConfigError, match="--select-metric must be one of auto, accuracy, balanced_accuracy, macro_f1"):
        FitConfig(select_metric="f1")
