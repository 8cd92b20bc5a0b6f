"""compare, budget, few-shot and advise on tiny real models: the numbers and the promises around them."""

from __future__ import annotations

import json
import re
import time
from html import escape

import numpy as np
import pytest

import headstart
from headstart.workflows.advise import advise, rank_by_evidence, recommend
from headstart.workflows.budget import Budget, CostModel
from headstart.cli.output import auto_lines
from headstart.workflows.compare import Comparison, _lost_to_probe, _plan, _resplit, _subsample, compare, mean_ci, repeat_count
from headstart.data import DataSplits, Dataset, load_data
from headstart.core.errors import ConfigError

from conftest import COOKING, SPORTS

FAST = dict(image_size=32, epochs=2, batch_size=8, progress=False, hflip=False)


@pytest.fixture(scope="module")
def comparison(image_folder, tmp_path_factory):
    return compare(image_folder, "random:mobilenetv2", ("linear", "partial"), seeds=2, curve=(0.5, 1.0),
                   unfreeze=1, **FAST)


def test_every_strategy_gets_a_row_with_intervals_over_its_repeats(comparison):
    rows = {r["strategy"]: r for r in comparison.rows}
    assert set(rows) == {"linear", "partial"}
    for row in rows.values():
        assert row["status"] == row["status_text"] == "done" and row["repeats_done"] == row["repeats_planned"] == 2
        lo, hi = row["val_accuracy"]["ci95"]
        assert 0.0 <= lo <= row["val_accuracy"]["mean"] <= hi <= 1.0
        assert row["val_accuracy"]["n"] == 2
    assert rows["linear"]["trainable_params"] < rows["partial"]["trainable_params"]
    assert 0 < rows["linear"]["trainable_share"] < rows["partial"]["trainable_share"] <= 1


def test_repeats_use_different_validation_splits(comparison):
    fit = comparison.fits["linear"]
    assert fit.split["seed"] == 0  # repeat 0 is the saved split; later repeats re-carve it
    texts = [f"text number {i} about topic {i % 3}" for i in range(60)]
    splits = load_data((texts, [f"c{i % 3}" for i in range(60)]))
    cfg = headstart.FitConfig()
    for kind in ("seeds", "folds"):
        vals = [set(_resplit(splits, r, kind, 3, cfg).val.origins) for r in range(3)]
        assert vals[0] == set(splits.val.origins)  # repeat 0: the saved split itself
        assert len({frozenset(v) for v in vals}) == 3, kind  # each repeat validates on other items
        for r in range(3):
            again = _resplit(splits, r, kind, 3, cfg)
            assert sorted(again.train.origins + again.val.origins) == sorted(splits.train.origins
                                                                                + splits.val.origins)
            assert not set(again.train.origins) & set(again.val.origins)
    fold_vals = [set(_resplit(splits, r, "folds", 3, cfg).val.origins) for r in (1, 2)]
    assert not fold_vals[0] & fold_vals[1]  # folds are disjoint


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
    assert record["ran"] == "linear: 2 seeds, partial: 2 seeds" and record["repeats_planned"] == 2
    assert record["recommendation"]["strategy"] in {"linear", "partial"}
    html = (out / "report.html").read_text()
    assert "Fits that ran (2 seeds planned per strategy): linear: 2 seeds, partial: 2 seeds;" in html
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
    plan = _plan(("linear",), 2, (0.5, 1.0))
    assert [j.key for j in plan] == [("linear", 0, 1.0), ("linear", 1, 1.0), ("linear", 0, 0.5)]  # curve last
    c = compare(image_folder, "random:mobilenetv2", ("linear",), seeds=1, curve=(0.5, 1.0), budget=0.001, **FAST)
    assert c.rows[0]["status"] == "skipped"  # nothing ran: the row says so, not the curve note
    assert "learning-curve" not in c.rows[0]["reason"]


def test_fine_tuning_is_planned_cheapest_first_from_a_measured_step():
    costs = CostModel(n_train=100, n_val=20, n_test=0, batch_size=10, epochs=5, forward=0.01,
                      step={"partial": 0.1, "full": 0.4})
    # 5 epochs x (10 steps x 0.4 s + 20 validation items x 0.01 s) + scoring 120 items x 0.01 s
    assert costs.fit("full") == pytest.approx(5 * (10 * 0.4 + 0.2) + 1.2)
    assert costs.fit("full", 0.5) == pytest.approx(5 * (5 * 0.4 + 0.2) + 0.7)  # a curve point: half the steps
    plan = _plan(("full", "partial"), 2, (0.5, 1.0), costs)
    assert [j.key for j in plan] == [("partial", 0, 1.0), ("full", 0, 1.0), ("partial", 1, 1.0), ("full", 1, 1.0),
                                     ("partial", 0, 0.5), ("full", 0, 0.5)]
    costs.calibrate("full", 1.0, epochs_run=2, seconds=2 * costs.fit("full", epochs=2))  # ran twice as slow
    assert costs.fit("full") == pytest.approx(2 * (5 * (10 * 0.4 + 0.2) + 1.2))
    assert costs.fit("partial") == pytest.approx(2 * (5 * (10 * 0.1 + 0.2) + 1.2))  # not measured: as slow
    assert costs.finish(1.0) == pytest.approx(2 * (0.4 + 140 * 0.01))  # the batch under way, val, scoring


def test_skip_reasons_and_counts_say_what_did_not_fit_and_what_ran():
    b = Budget(100.0, start=time.perf_counter() - 35.0)
    assert b.skip_reason(190.0) == "estimated 3m10s > 1m05s left"
    assert Budget(10.0, start=time.perf_counter() - 11.0).skip_reason(1.0) == "budget of 10s used up"
    assert [repeat_count(3, 3, "seeds"), repeat_count(1, 3, "seeds"), repeat_count(1, 1, "seeds"),
            repeat_count(2, 5, "folds")] == ["3 seeds", "1 of 3 seeds", "1 seed", "2 of 5 folds"]


def test_a_tight_budget_runs_linear_repeats_first_and_reports_exactly_what_ran(image_folder):
    budget, tolerance = 25.0, 15.0  # generous: a correctness check of the planner on a shared 2-core machine
    start = time.perf_counter()
    c = compare(image_folder, "random:mobilenetv2", ("full", "linear"), seeds=3, curve=(0.5, 1.0), budget=budget,
                patience=100, **dict(FAST, epochs=100, image_size=96))  # 3 x 100 epochs at 96 px: never in 25 s
    assert time.perf_counter() - start <= budget + tolerance
    rows = {r["strategy"]: r for r in c.rows}
    lin, full = rows["linear"], rows["full"]
    assert [p["strategy"] for p in c.plan[:4]] == ["linear"] * 4  # listed second, planned first: it is cheap
    assert lin["repeats_done"] == 3 and lin["status"] == lin["status_text"] == "done" and not lin["reason"]
    assert full["repeats_done"] < 3  # three fits of 100 epochs of full fine-tuning do not fit in 25 s
    for name, row in rows.items():  # the row's count and status are what the plan records as run
        ran = [p for p in c.plan if p["strategy"] == name and p["fraction"] == 1.0 and p["status"] != "skipped"]
        assert row["repeats_done"] == len(ran)
        assert row["status"] == ("skipped" if not ran else "stopped" if any(p["status"] == "stopped" for p in ran)
                                 else "done")
        if row["status"] == "stopped":
            assert re.fullmatch(r"stopped at epoch \d+ of 100 \(budget\)", row["status_text"]), row["status_text"]
    skipped = [p for p in c.plan if p["status"] == "skipped"]
    assert skipped and all(re.match(r"estimated \S+ > \S+ left$|budget of 25s used up$", p["reason"]) for p in skipped)
    full_count = "skipped" if not full["repeats_done"] else repeat_count(full["repeats_done"], 3, "seeds")
    assert c.ran() == f"full: {full_count}, linear: 3 seeds" == c.to_dict()["ran"]
    if full["repeats_done"]:
        assert full["reason"].startswith(f"{3 - full['repeats_done']} of 3 seeds skipped: ")


def test_fine_tuning_that_ends_below_the_probe_is_called_out_in_words(image_folder, tmp_path):
    c = compare(image_folder, "random:mobilenetv2", ("linear", "full"), seeds=1, curve=(1.0,), lr=1e-7,
                head_lr=1e-7, **dict(FAST, epochs=1))
    lin, full = c.rows
    # the situation, checked: the probe separates the colours on random features; one epoch at lr 1e-7 cannot
    assert full["val_accuracy"]["ci95"][1] < lin["val_accuracy"]["mean"], (full["val_accuracy"], lin["val_accuracy"])
    points = 100 * (lin["val_accuracy"]["mean"] - full["val_accuracy"]["mean"])
    assert full["warning"].startswith(f"fine-tuning lost to the frozen probe: full ends {points:.1f} points below "
                                      "linear on validation")
    train = full["val_accuracy"]["mean"] + full["gap"]["mean"]
    assert f"not overfitting: it reached only {train:.3f} on its own training data" in full["warning"]  # learnt nothing
    assert "warning" not in lin
    assert c.warnings() == [full["warning"]] == c.to_dict()["warnings"]
    html = (c.save(tmp_path / "cmp") / "report.html").read_text()
    assert escape(full["warning"]) in html


def test_fine_tuning_within_the_interval_of_the_probe_gets_no_warning():
    def row(strategy, mean, lo, hi, gap=0.3):
        return {"strategy": strategy, "status": "done", "status_text": "done",
                "val_accuracy": {"mean": mean, "ci95": [lo, hi]}, "gap": {"mean": gap}}

    rows = [row("linear", 0.80, 0.7, 0.9), row("partial", 0.75, 0.6, 0.85), row("full", 0.60, 0.5, 0.7),
            row("lp-ft", 0.50, 0.4, 0.6, gap=0.15)]
    _lost_to_probe(rows)
    assert "warning" not in rows[1]  # 5 points below, but the probe's mean is inside its interval
    assert rows[2]["warning"].startswith("fine-tuning lost to the frozen probe: full ends 20.0 points below")
    assert rows[2]["warning"].endswith("likely overfitting (train-val gap +0.30).")  # train 0.90 >= probe 0.80
    assert "not overfitting: it reached only 0.650 on its own training data" in rows[3]["warning"]


def _advice_inputs(per_class: int, probe: float, slope: float) -> tuple[dict, DataSplits]:
    labels = tuple(c for c in "ab" for _ in range(per_class))
    train = Dataset(tuple(f"t{i}" for i in range(len(labels))), labels, "text", tuple("x" for _ in labels))
    splits = DataSplits(train, train, None, ["a", "b"], {}, [])
    top = {"model": "m", "mean_rank": 1.0, "logme": 0.1, "h_score": 1.0,
           "probe": {"mean": probe, "ci95": [probe - 0.05, probe + 0.05]}, "curve": {"slope": slope}}
    return top, splits


@pytest.mark.parametrize("modality, expected", [("text", ["contrastive"]), ("image", [])])
def test_few_shot_text_is_advised_contrastive_pairs_and_few_shot_images_the_probe(modality, expected):
    top, splits = _advice_inputs(per_class=8, probe=0.85, slope=0.05)
    rec = recommend(top, splits, {"partial": 0.1, "full": 0.2}, 32, 10, None, modality)
    assert rec["candidates"] == expected and rec["strategy"] == (expected or ["linear"])[0]
    assert rec["numbers"]["estimated_contrastive_s"] > 0


def test_short_features_are_advised_two_fine_tunes_when_the_budget_holds_both():
    top, splits = _advice_inputs(per_class=30, probe=0.85, slope=0.05)
    step = {"partial": 1.0, "full": 2.0}  # 2 steps an epoch x 10 epochs x 1.3: partial 26 s, full 52 s
    assert recommend(top, splits, step, 32, 10, None)["candidates"] == ["partial", "full"]
    assert recommend(top, splits, step, 32, 10, 100)["candidates"] == ["partial", "full"]
    assert recommend(top, splits, step, 32, 10, 60)["candidates"] == ["partial"]  # full does not fit after it
    assert recommend(top, splits, step, 32, 10, 20)["candidates"] == []  # nor partial alone
    many = _advice_inputs(per_class=60, probe=0.85, slope=0.05)  # 50+ a class: LP-FT first, then partial
    assert recommend(*many, step, 32, 10, 1000)["candidates"] == ["lp-ft", "partial"]
    assert recommend(*many, step, 32, 10, 150)["candidates"] == ["lp-ft"]  # once, with a budget (a KeyError before)
    strong = recommend(*_advice_inputs(per_class=30, probe=0.95, slope=0.0), step, 32, 10, None)
    assert strong["candidates"] == [] and strong["strategy"] == "linear"


def test_auto_records_and_says_what_it_fitted_kept_and_the_whole_time(image_folder, tmp_path):
    result = headstart.fit(image_folder, "random:mobilenetv2", "auto", budget="1h", cache_dir=str(tmp_path), **FAST)
    auto = result.info["auto"]
    fitted = ["linear", *auto["advice"]["recommendation"]["candidates"]]
    assert list(auto["val_accuracy"]) == list(auto["seconds"]) == fitted
    assert auto["kept"] == result.strategy and auto["total_seconds"] >= sum(auto["seconds"].values())
    lines = auto_lines(result.info)
    assert lines[0] == f"auto: advised {auto['recommended']}, because:"
    assert lines[-1].startswith("auto: fitted linear ") and lines[-1].endswith(f"; kept {result.strategy}.")


# ---------------------------------------------------------------- tasks: label sets and numbers


def _numbers() -> tuple[list[str], list[float]]:
    """The topic texts with a number each (30 distinct values: a regression): sports high, cooking low."""
    return SPORTS + COOKING, [5.0 + 0.1 * i for i in range(15)] + [-5.0 + 0.1 * i for i in range(15)]


def _label_sets() -> tuple[list[str], list[list[str]]]:
    """The topic texts with label sets: the topic, every third one also 'news' (9), one with no label."""
    sets = [["sports"] if i < 15 else ["cooking"] for i in range(30)]
    for i in range(0, 30, 3):
        sets[i] = sets[i] + ["news"]
    sets[27] = []  # no label at all; 9 items keep 'news'
    return SPORTS + COOKING, sets


def test_compare_of_a_regression_scores_r2_and_mae_and_recommends_on_r2(text_backbone, tmp_path):
    c = compare(_numbers(), text_backbone, ("linear", "partial"), seeds=1, curve=(0.5, 1.0), unfreeze=1,
                **dict(FAST, epochs=1))
    assert (c.task, c.main_metric, c.select_metric, c.metrics) == ("regression", "r2", "r2", ["r2", "mae"])
    for row in c.rows:
        fit = c.fits[row["strategy"]].metrics
        assert "val_accuracy" not in row and row["test_r2"] is None
        assert row["val_r2"]["mean"] == pytest.approx(fit["val"]["r2"])
        assert row["val_r2"]["ci95"] == fit["val"]["r2_ci95"]  # one seed: the fit's own (bootstrap) interval
        assert row["val_mae"]["mean"] == pytest.approx(fit["val"]["mae"])
        assert row["gap"]["mean"] == pytest.approx(fit["train"]["r2"] - fit["val"]["r2"])
        half, full = c.learning_curve[row["strategy"]]
        assert "r2" in half and half["n"] == pytest.approx(full["n"] / 2, abs=3)  # quantile bins, not 1 per value
    best = max(c.rows, key=lambda r: r["val_r2"]["mean"])["strategy"]
    rec = c.recommendation()
    assert c.best() == best and rec["metric"] == "r2" and rec["reasons"][0].startswith(f"{best} has the best "
                                                                                        "validation R²: ")
    assert set(rec["numbers"]) == {"val_r2", "seconds", "trainable_params", "gap"}
    record = json.loads((c.save(tmp_path / "cmp") / "comparison.json").read_text())
    assert (record["task"], record["main_metric"], record["metrics"]) == ("regression", "r2", ["r2", "mae"])


def test_compare_of_label_sets_recommends_on_the_select_metric(text_backbone):
    c = compare(_label_sets(), text_backbone, ("linear",), seeds=2, curve=(1.0,), select_metric="macro_f1", **FAST)
    assert (c.task, c.main_metric, c.metrics) == ("multi-label", "micro_f1", ["micro_f1", "map", "macro_f1"])
    row = c.rows[0]
    assert row["val_macro_f1"]["n"] == 2 and 0 <= row["val_macro_f1"]["ci95"][0] <= row["val_macro_f1"]["mean"]
    assert c.learning_curve["linear"][0]["micro_f1"]["mean"] == pytest.approx(row["val_micro_f1"]["mean"])
    assert c.recommendation()["numbers"]["val_macro_f1"] == row["val_macro_f1"]["mean"]
    with pytest.raises(ConfigError, match="--select-metric accuracy does not apply to a multi-label task"):
        compare(_label_sets(), text_backbone, ("linear",), seeds=1, curve=(1.0,), select_metric="accuracy", **FAST)


def test_the_recommendation_optimises_the_select_metric_not_the_main_one():
    def row(strategy, micro, macro, seconds, params):
        return {"strategy": strategy, "status": "done", "seconds": seconds, "trainable_params": params,
                "trainable_share": params / 1000, "gap": {"mean": 0.0},
                "val_micro_f1": {"mean": micro, "ci95": [micro - 0.01, micro + 0.01]},
                "val_macro_f1": {"mean": macro, "ci95": [macro - 0.01, macro + 0.01]}}

    rows = [row("linear", 0.80, 0.60, 1.0, 10), row("full", 0.70, 0.75, 50.0, 1000)]
    by_main = Comparison("m", "d", ["a", "b"], rows, {}, 1, "seeds", None, None, 1.0, task="multi-label",
                         main_metric="micro_f1", select_metric="micro_f1")
    by_macro = Comparison("m", "d", ["a", "b"], rows, {}, 1, "seeds", None, None, 1.0, task="multi-label",
                          main_metric="micro_f1", select_metric="macro_f1")
    assert by_main.best() == "linear" and by_macro.best() == "full"
    rec = by_macro.recommendation()
    assert rec["strategy"] == "full" and rec["metric"] == "macro_f1"
    assert rec["reasons"][0] == "full has the best validation macro-F1: 0.750 (95% CI 0.740-0.760)."
    assert "beats linear by +0.150 beyond the interval" in rec["reasons"][1]
    assert rec["reasons"][-1] == "Train-minus-validation gap (micro-F1): +0.000."


def test_mean_ci_keeps_negative_r2_and_unbounded_errors():
    r2 = mean_ci([-0.4, -0.1, 0.2], bounds=(-np.inf, 1.0))
    assert r2["ci95"][0] < -0.4 and r2["ci95"][1] < 1.0
    assert mean_ci([-0.4, -0.1, 0.2])["ci95"][0] == 0.0  # a probability's interval stays in [0, 1]
    assert mean_ci([3.0, 5.0, 4.0], bounds=(0.0, np.inf))["ci95"][1] > 5.0


def test_subsampling_a_regression_keeps_the_fraction_across_the_target_range():
    splits = load_data(_numbers())
    half = _subsample(splits, 0.5, 0)
    assert len(half.train) == pytest.approx(len(splits.train) / 2, abs=3)  # per quantile bin, not per value
    assert min(half.train.labels) < 0 < max(half.train.labels)  # both ends of the target kept
    again = _resplit(splits, 1, "folds", 3, headstart.FitConfig())
    assert sorted(again.train.origins + again.val.origins) == sorted(splits.train.origins + splits.val.origins)


def test_label_sets_are_advised_in_their_own_terms_and_never_contrastive_pairs():
    texts, sets = _label_sets()
    train = Dataset(tuple(texts), tuple(tuple(s) for s in sets), "text", tuple(f"x{i}" for i in range(30)))
    splits = DataSplits(train, train, None, ["cooking", "news", "sports"], {}, [], task="multi-label")
    top = {"model": "m", "mean_rank": 1.0, "logme": -0.8, "h_score": None,
           "probe": {"mean": 0.6, "ci95": [0.5, 0.7], "metric": "micro_f1"}, "curve": {"slope": 0.05}}
    rec = recommend(top, splits, {"partial": 0.1, "full": 0.2}, 32, 10, None, "text")
    assert rec["candidates"] == [] and rec["strategy"] == "linear" and rec["metric"] == "micro_f1"  # 9 'news': few
    assert "reaches micro-F1 0.600" in rec["reasons"][0] and "H-score" not in rec["reasons"][0]
    assert rec["reasons"][1].startswith("Only 9 positive examples of the rarest label (< 10)")
    assert rec["numbers"]["examples_per_label_min"] == 9 and rec["numbers"]["probe_micro_f1"] == 0.6


def test_advise_and_auto_on_numbers_rank_and_keep_by_r2(text_backbone, tmp_path):
    advice = advise(_numbers(), [text_backbone], **FAST)
    top = advice.ranking[0]
    assert top["h_score"] is None and top["probe"]["metric"] == top["curve"]["metric"] == "r2"
    assert set(top["ranks"]) == {"logme", "probe"} and np.isfinite(top["logme"])
    assert advice.recommendation["metric"] == "r2" and " R² " in advice.recommendation["reasons"][0]
    result = headstart.fit(_numbers(), text_backbone, "auto", budget="1h", cache_dir=str(tmp_path),
                           **dict(FAST, epochs=1))
    auto = result.info["auto"]
    assert auto["metric"] == "r2" and "val_accuracy" not in auto
    assert list(auto["val_r2"]) == ["linear", *auto["advice"]["recommendation"]["candidates"]]
    kept = max(auto["val_r2"].items(), key=lambda kv: kv[1])[0]
    assert auto["kept"] == result.strategy and auto["val_r2"][result.strategy] == auto["val_r2"][kept]
    assert "(val R² " in auto_lines(result.info)[-1]
