"""The task notion: deciding single-label, multi-label or regression from the labels, loading and splitting each,
their metrics, probes, thresholds and units, and a fit of each end to end on a tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import average_precision_score, f1_score, r2_score

import headstart
from headstart.data import load_data
from headstart.data.targets import TaskChoice, decide_task, parse_labels
from headstart.core.errors import ConfigError, DataError
from headstart.core.metrics import average_precision, f1, multilabel_metrics, regression_metrics
from headstart.tasks import MultiLabel, Regression, SingleLabel

from conftest import COOKING, SPORTS

TEXTS = SPORTS + COOKING  # 30 texts


def tags() -> list[list[str]]:
    """Multi-label targets for TEXTS: the topic, plus 'short' for texts under 45 characters, plus none for some."""
    out = []
    for i, text in enumerate(TEXTS):
        names = ["sport" if i < len(SPORTS) else "food"] + (["short"] if len(text) < 45 else [])
        out.append([] if i % 10 == 9 else names)
    return out


def values() -> list[float]:
    """A regression target for TEXTS (21 distinct values): sports high, cooking low, plus length."""
    return [(10.0 if i < len(SPORTS) else 0.0) + len(text) / 20 for i, text in enumerate(TEXTS)]


# ---- deciding the task -------------------------------------------------------------------------------

def test_lists_and_separated_strings_are_multi_label():
    assert decide_task("auto", [("a",), ("b", "c"), ()]).task == "multi-label"
    choice = decide_task("auto", ["a|b", "a", "c|a", "b"])
    assert (choice.task, choice.sep) == ("multi-label", "|")
    assert decide_task("auto", ["x;y", "x", "y", "x"]).sep == ";"
    assert decide_task("auto", ["a/b", "c/d"], sep="/").task == "multi-label"


def test_numbers_with_many_values_are_regression_and_few_values_are_classes():
    many = [str(0.5 * i) for i in range(40)]
    assert decide_task("auto", many).task == "regression"
    grades = [str(1 + i % 5) for i in range(40)]
    assert decide_task("auto", grades).task == "single-label"
    assert decide_task("regression", grades).task == "regression"


def test_an_unknown_task_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="auto, single-label, multi-label, regression"):
        decide_task("ordinal", ["a", "b"])
    with pytest.raises(ConfigError, match="--task must be one of"):
        headstart.FitConfig(task="ordinal")


def test_parse_labels_gives_each_task_its_form_and_names_bad_rows():
    labels, bad = parse_labels(TaskChoice("multi-label", "", "|"), ["b|a", " a | a ", ("c",), ()], ["r1"] * 4)
    assert labels == [("a", "b"), ("a",), ("c",), ()] and not bad
    labels, bad = parse_labels(TaskChoice("regression", ""), ["1.5", 2, "two"], ["r1", "r2", "r3"], " in column 'y'")
    assert labels[:2] == [1.5, 2.0] and bad[0][0] == 2
    assert bad[0][1] == "the label 'two' is not a number in column 'y'"


# ---- loading and splitting ---------------------------------------------------------------------------

def test_python_lists_load_as_multi_label_not_as_stringified_classes():
    splits = load_data((TEXTS, tags()))
    assert splits.task == "multi-label" and splits.classes == ["food", "short", "sport"]
    assert all(isinstance(y, tuple) for y in splits.train.labels)
    assert splits.split["task"]["reason"] == "the labels are lists"


def test_a_separated_column_and_a_jsonl_list_load_as_multi_label(tmp_path):
    table = tmp_path / "tags.csv"  # an empty cell is a missing label in a table: every row here has one
    table.write_text("text,tags\n" + "".join(f'"{t}",{"|".join(n)}\n' for t, n in zip(TEXTS, tags()) if n))
    splits = load_data(str(table), label_col="tags")
    assert splits.task == "multi-label" and splits.classes == ["food", "short", "sport"]
    jsonl = tmp_path / "tags.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": n}) + "\n" for t, n in zip(TEXTS, tags())))
    assert load_data(str(jsonl)).classes == ["food", "short", "sport"]


def test_a_numeric_column_loads_as_regression_split_across_its_range(tmp_path):
    table = tmp_path / "sizes.csv"
    table.write_text("text,size\n" + "".join(f'"{t}",{v}\n' for t, v in zip(TEXTS, values())))
    splits = load_data(str(table), label_col="size")
    assert splits.task == "regression" and splits.classes == []
    assert all(isinstance(y, float) for y in splits.val.labels)
    # stratified on quantile bins: validation spans low and high targets
    assert min(splits.val.labels) < 5 < max(splits.val.labels)


def test_skip_bad_drops_non_numbers_but_never_changes_the_task(tmp_path):
    rows = [(t, str(v)) for t, v in zip(TEXTS, values())] + [("an extra text", "n/a")]
    table = tmp_path / "sizes.csv"
    table.write_text("text,size\n" + "".join(f'"{t}",{v}\n' for t, v in rows))
    with pytest.raises(DataError, match=r"line 32: the label 'n/a' is not a number in column 'size'"):
        load_data(str(table), label_col="size")
    splits = load_data(str(table), label_col="size", skip_bad=True)
    assert splits.task == "regression" and len(splits.skipped) == 1
    assert "is not a number" in splits.skipped[0].reason


def test_a_constant_target_and_an_unlabelled_multi_label_set_are_clear_errors():
    with pytest.raises(DataError, match="regression needs targets that differ"):
        load_data((TEXTS, [3.0] * len(TEXTS)), task="regression")
    with pytest.raises(DataError, match="No training item has a label"):
        load_data((TEXTS, [[] for _ in TEXTS]))


def test_a_multi_label_val_item_with_an_unseen_label_is_refused_or_skipped():
    val = (["a new text about bread", "a new text about goals"], [["food", "vegan"], ["sport"]])
    with pytest.raises(DataError, match="'vegan' is not in the training data"):
        load_data((TEXTS, tags()), val=val)
    assert len(load_data((TEXTS, tags()), val=val, skip_bad=True).val) == 1


# ---- metrics -----------------------------------------------------------------------------------------

def test_multilabel_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.random((120, 4)) < 0.3
    proba = np.clip(y * 0.4 + rng.random((120, 4)) * 0.6, 0, 1)
    m = multilabel_metrics(y.astype(np.float32), proba, np.full(4, 0.5), ["a", "b", "c", "d"])
    pred = proba >= 0.5
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["map"] == pytest.approx(np.mean([average_precision_score(y[:, i], proba[:, i]) for i in range(4)]))
    assert m["micro_f1_ci95"][0] < m["micro_f1"] < m["micro_f1_ci95"][1]
    assert f1(y[:, 0], pred[:, 0]) == pytest.approx(f1_score(y[:, 0], pred[:, 0]))
    ties = np.round(proba[:, 1], 1)
    assert average_precision(y[:, 1], ties) == pytest.approx(average_precision_score(y[:, 1], ties))


def test_regression_metrics_match_scikit_learn_and_scipy():
    rng = np.random.default_rng(1)
    truth = rng.normal(50, 10, 200)
    pred = truth + rng.normal(0, 5, 200)
    m = regression_metrics(truth, pred)
    assert m["r2"] == pytest.approx(r2_score(truth, pred))
    assert m["spearman"] == pytest.approx(spearmanr(truth, pred).statistic)
    assert m["mae"] == pytest.approx(np.abs(truth - pred).mean())
    assert m["r2_ci95"][0] < m["r2"] < m["r2_ci95"][1]


# ---- probes, thresholds, units -----------------------------------------------------------------------

def test_the_ridge_probe_is_scikit_learns_ridge_at_the_chosen_strength():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(150, 12)) * rng.uniform(0.5, 5, 12) + 3
    y = x @ rng.normal(size=12) + rng.normal(0, 0.5, 150)
    task = Regression.fitted_on(y[:100])
    fit = task.probe(x[:100], task.targets(y[:100]), x[100:], task.targets(y[100:]), (0.01, 0.1, 1.0), 0, None)
    mean, std = x[:100].mean(0), x[:100].std(0) + 1e-6
    ridge = Ridge(alpha=1.0 / fit.C).fit((x[:100] - mean) / std, task.targets(y[:100]))
    ours = fit.head(torch.from_numpy(x[100:]).float()).detach().numpy()[:, 0]
    np.testing.assert_allclose(ours, ridge.predict((x[100:] - mean) / std), atol=1e-4)


def test_regression_finish_folds_the_units_into_the_head():
    task = Regression(mean=100.0, std=20.0)
    model = headstart.training.heads.Classifier(torch.nn.Identity(), torch.nn.Linear(3, 1))
    x = torch.randn(5, 3)
    before = model(x).detach().numpy()
    task.finish(model, {"val": before}, {"val": np.zeros(5)}, calibrate=True)
    np.testing.assert_allclose(model(x).detach().numpy(), task.adjust(before), rtol=1e-5)
    assert [r["value"] for r in task.rows(model(x).detach().numpy())] == pytest.approx(task.adjust(before)[:, 0])


def test_multi_label_thresholds_are_tuned_per_label_and_never_worse_than_a_half_on_validation():
    rng = np.random.default_rng(3)
    y = (rng.random((200, 3)) < [0.1, 0.3, 0.5]).astype(np.float32)
    logits = (y - 0.8) * 3 + rng.normal(0, 1, (200, 3))  # under-confident: 0.5 misses positives
    task = MultiLabel(["a", "b", "c"])
    record = task.finish(torch.nn.Module(), {"val": logits}, {"val": y}, calibrate=True)["thresholds"]
    assert record["val_micro_f1_tuned"] > record["val_micro_f1_at_0.5"]
    assert min(record["by_label"].values()) < 0.5
    rows = task.rows(logits[:2])
    assert set(rows[0]) == {"labels", "probabilities"} and len(rows[0]["probabilities"]) == 3


def test_select_metric_must_belong_to_the_task():
    assert MultiLabel(["a"], "auto").select_metric == "micro_f1"
    assert Regression(0.0, 1.0, "spearman").select_metric == "spearman"
    with pytest.raises(ConfigError, match="does not apply to a regression task"):
        Regression(0.0, 1.0, "balanced_accuracy")
    assert SingleLabel(["a", "b"]).main_metric == "accuracy"


# ---- end to end on a tiny random model ---------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["linear", "partial"])
def test_multi_label_fit_saves_reloads_and_predicts_label_sets(text_backbone, tmp_path, strategy):
    result = headstart.fit((TEXTS, tags()), text_backbone, strategy, epochs=1, out=tmp_path / "run", progress=False)
    m = result.metrics
    assert m["task"] == "multi-label" and m["main_metric"] == "micro_f1"
    assert {"micro_f1", "macro_f1", "map", "subset_accuracy", "per_class"} <= set(m["val"])
    assert set(m["thresholds"]["by_label"]) == {"food", "short", "sport"}
    rows = result.predict(["The team scored a goal", "Bake the cake"])
    reloaded = headstart.load_run(tmp_path / "run").predict(["The team scored a goal", "Bake the cake"])
    assert [r["labels"] for r in rows] == [r["labels"] for r in reloaded]
    for a, b in zip(rows, reloaded):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


@pytest.mark.parametrize("strategy", ["linear", "partial"])
def test_regression_fit_reports_its_units_and_predicts_values(text_backbone, tmp_path, strategy):
    result = headstart.fit((TEXTS, values()), text_backbone, strategy, epochs=1, out=tmp_path / "run", progress=False)
    m = result.metrics
    assert m["task"] == "regression" and {"mae", "rmse", "r2", "spearman"} <= set(m["val"])
    assert m["target"]["train_mean"] == pytest.approx(np.mean(result.predictor.task.mean))
    rows = result.predict(TEXTS[:3])
    assert set(rows[0]) == {"input", "value", "text"}
    assert 0 < np.mean([r["value"] for r in rows]) < 20  # in the target's units, not standardised
    reloaded = headstart.load_run(tmp_path / "run").predict(TEXTS[:3])
    assert [r["value"] for r in rows] == pytest.approx([r["value"] for r in reloaded], abs=1e-5)


def test_contrastive_refuses_a_multi_label_task(text_backbone):
    with pytest.raises(ConfigError, match="single-label data only"):
        headstart.fit((TEXTS, tags()), text_backbone, "contrastive", progress=False)


def test_shots_count_multi_label_items_by_their_rarest_label_and_refuse_a_regression():
    from headstart.data.shots import keep_shots

    splits = load_data((TEXTS, tags()))
    few = keep_shots(splits, 2, seed=0)
    counts = {name: sum(name in names for names in few.train.labels) for name in splits.classes}
    assert min(counts.values()) >= 2 and len(few.train) < len(splits.train)
    with pytest.raises(ConfigError, match="a regression has no classes"):
        keep_shots(load_data((TEXTS, values())), 2, seed=0)


def test_a_fresh_multi_label_head_starts_at_the_labels_frequencies():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=np.float32)  # 75%, 25%, none
    head = MultiLabel(["a", "b", "c"]).fresh_head(8, targets)
    start = torch.sigmoid(head(torch.zeros(1, 8)))[0].detach().numpy()
    np.testing.assert_allclose(start, [0.75, 0.25, 0.01], atol=1e-6)


def test_huber_counts_wild_errors_linearly_beyond_one_standard_deviation():
    outputs, y = torch.tensor([[0.5], [4.0]]), torch.tensor([0.0, 0.0])
    assert Regression(0.0, 1.0).loss(outputs, y).tolist() == pytest.approx([0.25, 16.0])
    assert Regression(0.0, 1.0, loss_kind="huber").loss(outputs, y).tolist() == pytest.approx([0.125, 3.5])
    with pytest.raises(ConfigError, match="--regression-loss must be one of mse, huber"):
        headstart.FitConfig(regression_loss="l1")


def test_a_regression_fine_tunes_with_huber(text_backbone):
    result = headstart.fit((TEXTS, values()), text_backbone, "partial", epochs=1, regression_loss="huber",
                           progress=False)
    assert result.predictor.task.loss_kind == "huber" and result.config.regression_loss == "huber"


def test_fit_says_which_task_it_read_only_when_the_labels_were_not_plain_classes(text_backbone, capsys):
    headstart.fit((TEXTS, values()), text_backbone, "linear", progress=True)
    assert "note: task: regression (one number per item): the labels are numbers with 21 distinct values" \
        in capsys.readouterr().err
    headstart.fit((TEXTS, ["sport"] * 15 + ["food"] * 15), text_backbone, "linear", progress=True)
    assert "note: task:" not in capsys.readouterr().err
