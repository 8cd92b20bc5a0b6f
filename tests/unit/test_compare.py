"""compare, budget, few-shot and advise on tiny real models: the numbers and the promises around them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headstart
from headstart.advise import advise, rank_by_evidence
from headstart.budget import Budget
from headstart.compare import compare, mean_ci
from headstart.errors import ConfigError

FAST = dict(image_size=32, epochs=2, batch_size=8, progress=False, hflip=False)


@pytest.fixture(scope="module")
def comparison(image_folder, tmp_path_factory):
    return compare(image_folder, "random:mobilenetv2", ("linear", "partial"), seeds=2, curve=(0.5, 1.0),
                   unfreeze=1, **FAST)


def test_every_strategy_gets_a_row_with_intervals_over_its_repeats(comparison):
    rows = {r["strategy"]: r for r in comparison.rows}
    assert set(rows) == {"linear", "partial"}
    for row in rows.values():
        assert row["status"] == "ok" and row["repeats_done"] == 2
        lo, hi = row["val_accuracy"]["ci95"]
        assert 0.0 <= lo <= row["val_accuracy"]["mean"] <= hi <= 1.0
        assert row["val_accuracy"]["n"] == 2
    assert rows["linear"]["trainable_params"] < rows["partial"]["trainable_params"]
    assert 0 < rows["linear"]["trainable_share"] < rows["partial"]["trainable_share"] <= 1


def test_repeats_use_different_validation_splits(comparison):
    fit = comparison.fits["linear"]
    assert fit.split["seed"] == 0  # repeat 0 is the saved split; later repeats re-carve it


def test_learning_curve_has_a_point_per_fraction_with_growing_training_sets(comparison):
    for strategy, points in comparison.learning_curve.items():
        assert [p["fraction"] for p in points] == [0.5, 1.0], strategy
        assert points[0]["n"] < points[1]["n"]
        assert points[0]["n"] >= 3  # at least one example per class survives subsampling


def test_overfitting_gap_is_train_minus_validation_accuracy(comparison):
    fit = comparison.fits["partial"]
    assert fit.metrics["overfit_gap"] == pytest.approx(
        fit.metrics["train"]["accuracy"] - fit.metrics["val"]["accuracy"])
    row = next(r for r in comparison.rows if r["strategy"] == "partial")
    assert [g["epoch"] for g in row["gap_by_epoch"]] == [h["epoch"] for h in fit.history]


def test_saving_writes_json_runs_and_a_self_contained_report(comparison, tmp_path):
    out = comparison.save(tmp_path / "cmp")
    record = json.loads((out / "comparison.json").read_text())
    assert [r["strategy"] for r in record["rows"]] == ["linear", "partial"]
    assert record["recommendation"]["strategy"] in {"linear", "partial"}
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert headstart.load_run(out / "runs" / "partial").classes == comparison.classes


def test_a_spent_budget_skips_strategies_and_says_why(image_folder):
    c = compare(image_folder, "random:mobilenetv2", ("linear", "partial"), seeds=1, curve=(1.0,),
                budget=0.001, **FAST)
    for row in c.rows:
        assert row["status"] == "skipped"
        assert "budget" in row["reason"]
    assert c.best() is None


def test_budget_parses_units_and_estimates_from_measured_fits():
    assert Budget.parse("90s").total == 90 and Budget.parse("15m").total == 900
    assert Budget.parse("1.5h").total == 5400 and Budget.parse(None).total is None
    with pytest.raises(ConfigError, match="--budget"):
        Budget.parse("soon")
    b = Budget(100.0)
    assert b.estimate("full", 1.0) is None
    b.record("full", 1.0, 40.0)
    assert b.estimate("full", 0.5) == pytest.approx(20.0)
    assert b.allows(20.0) and not b.allows(1000.0)


def test_mean_ci_is_a_t_interval_clipped_to_probabilities():
    stat = mean_ci([0.8, 0.9, 1.0])
    assert stat["mean"] == pytest.approx(0.9)
    half = 4.302652729911275 * np.std([0.8, 0.9, 1.0], ddof=1) / np.sqrt(3)  # t(0.975, df=2)
    assert stat["ci95"] == pytest.approx([0.9 - half, 1.0])


def test_shots_keep_k_training_examples_per_class(image_folder):
    result = headstart.fit(image_folder, "random:mobilenetv2", "linear", shots=1, **FAST)
    assert result.metrics["train"]["n"] == len(result.classes)
    assert result.split["shots"] == 1
    assert result.metrics["val"]["n"] > result.metrics["train"]["n"]  # validation is not cut


def test_folds_and_seeds_are_exclusive(image_folder):
    with pytest.raises(ConfigError, match="--seeds or --folds"):
        compare(image_folder, "random:mobilenetv2", ("linear",), seeds=2, folds=2, **FAST)


def test_advice_ranks_by_mean_rank_and_states_numbers(image_folder):
    advice = advise(image_folder, ["random:mobilenetv2"], budget="1h", **FAST)
    rec = advice.recommendation
    assert rec["strategy"] in {"linear", "partial", "lp-ft"}
    assert rec["numbers"]["examples_per_class_min"] >= 1
    assert rec["numbers"]["estimated_full_s"] > 0 and rec["reasons"]


def test_rank_by_evidence_follows_the_majority_of_scores():
    rows = [{"model": "a", "logme": 1.0, "h_score": 1.0, "probe": {"mean": 0.6}},
            {"model": "b", "logme": 0.5, "h_score": 2.0, "probe": {"mean": 0.9}}]
    rank_by_evidence(rows)
    assert [r["model"] for r in rows] == ["b", "a"]
    assert rows[0]["ranks"] == {"logme": 2, "h_score": 1, "probe": 1}


def test_learning_curve_points_left_out_by_the_budget_are_named(image_folder):
    from headstart.compare import _plan

    plan = _plan(("linear",), 1, (0.5, 1.0))
    assert plan == [("linear", 0, 1.0), ("linear", 0, 0.5)]  # full-data fits come before curve points
    c = compare(image_folder, "random:mobilenetv2", ("linear",), seeds=1, curve=(0.5, 1.0), budget=0.001, **FAST)
    assert c.rows[0]["status"] == "skipped"  # nothing ran: the row says so, not the curve note
    assert "learning-curve" not in c.rows[0]["reason"]
