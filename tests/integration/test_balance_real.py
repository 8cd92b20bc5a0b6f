"""Integration: on BBC News with minority topics at a tenth of the majority, ``balance="auto"`` (class weights)
raises balanced accuracy over ``none`` (packaged MiniLM-L6). The calibration figures are printed: the probe
is close to calibrated already (validation ECE about 1-2%), and temperature scaling does not lower it here."""

from __future__ import annotations

import numpy as np
import pytest

import headstart
from headstart.data import bbc_news_folder, load_labelled

pytestmark = pytest.mark.integration

MAJOR, MINOR, TEST_PER_CLASS = 200, 20, 80  # training (and, at a fifth, validation) items per class
MAJORITY = 2  # the first two topics are the majority ones


def imbalanced_bbc(seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    """Train and validation at 10:1 between the first two topics and the other three; a balanced test set."""
    data = load_labelled(bbc_news_folder())
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for k, c in enumerate(data.classes):
        idx = rng.permutation([i for i, y in enumerate(data.labels) if y == c])
        n = MAJOR if k < MAJORITY else MINOR
        parts["test"] += list(idx[:TEST_PER_CLASS])
        parts["val"] += list(idx[TEST_PER_CLASS:TEST_PER_CLASS + n // 5])
        parts["train"] += list(idx[TEST_PER_CLASS + n // 5:TEST_PER_CLASS + n // 5 + n])
    return {k: ([data.items[i] for i in v], [data.labels[i] for i in v]) for k, v in parts.items()}


def test_balance_auto_raises_balanced_accuracy_on_an_imbalanced_split(tmp_path):
    split = imbalanced_bbc()
    results = {mode: headstart.fit(split["train"], "minilm-l6", "linear", val=split["val"], test=split["test"],
                                   balance=mode, cache_dir=str(tmp_path / "cache"), progress=False)
               for mode in ("none", "auto")}
    none, auto = (results[m].metrics for m in ("none", "auto"))
    print(f"balanced accuracy (test): none {none['test']['balanced_accuracy']:.4f} "
          f"{none['test']['balanced_accuracy_ci95']}, auto {auto['test']['balanced_accuracy']:.4f} "
          f"{auto['test']['balanced_accuracy_ci95']}; accuracy none {none['test']['accuracy']:.4f}, "
          f"auto {auto['test']['accuracy']:.4f}; ratio {auto['balance']['ratio']:.1f}")
    for name, fitted in results.items():
        cal = fitted.metrics["calibration"]
        print(f"{name}: T = {cal['temperature']:.3f}; val ECE {cal['val']['ece_before']:.4f} -> "
              f"{cal['val']['ece_after']:.4f}; test ECE {cal['test']['ece_before']:.4f} -> {cal['test']['ece_after']:.4f}")
    assert auto["balance"]["used"] == "weights" and auto["balance"]["ratio"] == pytest.approx(10.0)
    assert none["balance"]["used"] == "none"
    assert auto["test"]["balanced_accuracy"] > none["test"]["balanced_accuracy"]  # measured: 0.868 -> 0.903
