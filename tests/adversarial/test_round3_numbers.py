"""Adversarial cases of issue 24 (round three) about numbers: non-finite learning rates and outputs, a diverged
fine-tune, numeric options that gave tracebacks, a damaged preprocessing record, non-finite JSON, and the false
"lost to the frozen probe" warning at equal scores. Real CLI invocations, real tiny fits.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

import headstart
from conftest import COOKING, SPORTS, write_image_folder
from headstart.core.errors import ConfigError, RunError
from headstart.core.metrics import wilson_interval
from headstart.strategies import Contrastive, LoRA, Partial
from cli_harness import cli, refused  # noqa: F401  (cli is a fixture)


def strict_json(text: str):
    """``text`` parsed as RFC 8259 JSON: NaN and Infinity tokens are refused."""
    def refuse(token: str):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def write_regression_csv(path: Path, values) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "y"])
        for text, value in zip(SPORTS + COOKING, values):
            writer.writerow([text, value])
    return path


# ---- defect 4a: a learning rate must be a positive finite number, at every entry point ------------------

@pytest.mark.parametrize("flags", [["--lr", "nan"], ["--lr", "-1"], ["--lr", "inf"], ["--head-lr", "nan"],
                                   ["--lr-decay", "nan"]])
def test_a_learning_rate_that_is_not_a_positive_finite_number_is_refused(cli, tmp_path, text_csv, tiny_text_dir,
                                                                          flags):
    out = tmp_path / "run"
    result = cli(["fit", text_csv, "--model", tiny_text_dir, "--strategy", "partial", "--epochs", "1", *flags,
                  "--out", out, "--quiet"])
    refused(result, f"{flags[0]} {flags[1]}", "must be")
    assert not out.exists()


def test_a_learning_rate_in_a_config_file_is_checked_the_same(cli, tmp_path, text_csv, tiny_text_dir):
    config = tmp_path / "fit.toml"
    config.write_text('strategy = "partial"\nlr = nan\nepochs = 1\n')
    result = cli(["fit", text_csv, "--model", tiny_text_dir, "--config", config, "--out", tmp_path / "run", "-q"])
    refused(result, "--lr nan")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("strategy", ["partial", "auto"])
@pytest.mark.parametrize("lr", [float("nan"), -1.0, "fast"])
def test_python_fit_refuses_a_learning_rate_that_is_not_a_positive_finite_number(text_csv, tiny_text_dir, strategy,
                                                                                 lr):
    with pytest.raises(ConfigError, match="lr="):
        headstart.fit(str(text_csv), str(tiny_text_dir), strategy, lr=lr, progress=False)


def test_the_estimator_and_the_strategy_classes_refuse_it_too(text_pairs, tiny_text_dir):
    texts, labels = text_pairs
    with pytest.raises(ConfigError, match="lr='fast'"):
        headstart.Classifier(str(tiny_text_dir), "partial", lr="fast", progress=False).fit(texts, labels)
    for make in (lambda: Partial(lr=float("nan")), lambda: LoRA(head_lr=0.0), lambda: Contrastive(lr=float("inf")),
                 lambda: Partial(unfreeze="2")):
        with pytest.raises(ConfigError):
            make()


# ---- defect 4b: a fine-tune whose loss stops being finite stops, and nothing is saved ---------------------

@pytest.mark.parametrize("strategy", ["partial", "lora"])
def test_a_diverged_fine_tune_is_never_saved_as_a_working_run(cli, tmp_path, text_csv, tiny_text_dir, strategy):
    out = tmp_path / "run"
    result = cli(["fit", text_csv, "--model", tiny_text_dir, "--strategy", strategy, "--lr", "1e6", "--epochs", "3",
                  "--out", out, "--quiet"])
    refused(result, "Training diverged", "nothing was saved", "--lr")
    assert not out.exists()  # not a run, nor an unfinished one that would only diverge again on --resume


def test_a_diverged_fine_tune_leaves_an_earlier_run_as_it_was(cli, tmp_path, text_csv, tiny_text_dir, text_run):
    out = tmp_path / "run"
    shutil.copytree(text_run[1], out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = cli(["fit", text_csv, "--model", tiny_text_dir, "--strategy", "partial", "--lr", "1e6", "--epochs", "2",
                  "--out", out, "--overwrite", "--quiet"])
    refused(result, "Training diverged")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# ---- defect 4c: no label is ever printed for non-finite outputs ------------------------------------------

@pytest.fixture
def nan_run(tmp_path, text_run) -> Path:
    """A copy of the text run whose head weights were edited to NaN."""
    run = tmp_path / "nan-run"
    shutil.copytree(text_run[1], run)
    weights = run / "model" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["head.weight"].fill_(float("nan"))
    save_file(tensors, str(weights))
    return run


def test_predict_and_evaluate_refuse_non_finite_outputs(cli, nan_run, text_csv):
    for args in (["predict", nan_run, "The striker scored twice"], ["predict", nan_run, "--json", "A late try"],
                 ["evaluate", nan_run, text_csv]):
        result = cli(args)
        refused(result, str(nan_run), "not numbers (nan or inf)", "fit again")
        assert "sports" not in result.stdout and "cooking" not in result.stdout
    with pytest.raises(RunError, match="nan or inf"):
        headstart.load_run(str(nan_run)).predict(["The striker scored twice"])


# ---- defect 9: no "lost to the frozen probe" warning when both score the same -----------------------------

def test_the_wilson_interval_of_all_correct_ends_at_exactly_one():
    for n in range(1, 300):
        assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0


def test_no_lost_to_the_probe_warning_when_fine_tuning_ties_it_at_1(cli, tmp_path):
    train = write_image_folder(tmp_path / "train", per_class=6)
    val = write_image_folder(tmp_path / "val", per_class=2, seed=1)  # 6 items: the Wilson bound was 0.99...9
    out = tmp_path / "run"
    result = cli(["fit", train, "--val", val, "--model", "random:mobilenetv2", "--image-size", "32", "--strategy",
                  "lp-ft", "--unfreeze", "1", "--epochs", "1", "--out", out])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] == 1.0 and metrics["probe_val_accuracy"] == 1.0  # the tie this is about
    assert metrics["warnings"] == []
    assert "lost to the frozen probe" not in result.output
    assert "lost to the frozen probe" not in (out / "report.html").read_text()


# ---- numeric options that gave tracebacks -----------------------------------------------------------------

@pytest.mark.parametrize("flags, words", [
    (["--cs", "abc"], ["--cs abc", "not a number"]),
    (["--cs", ""], ["--cs ''", "one or more"]),
    (["--cs", "-1"], ["--cs -1", "above 0"]),
    (["--cs", "0.1,nan"], ["--cs 0.1,nan", "finite"]),
    (["--seed", "-1"], ["--seed"]),
])
def test_numeric_options_give_an_error_naming_the_option(cli, tmp_path, text_csv, tiny_text_dir, flags, words):
    result = cli(["fit", text_csv, "--model", tiny_text_dir, *flags, "--out", tmp_path / "run", "--quiet"])
    refused(result, *words)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("line, words", [('cs = "abc"', ["--cs abc"]), ("cs = [-1, 2]", ["--cs -1", "above 0"]),
                                         ("cs = []", ["--cs"]), ("seed = -1", ["--seed"])])
def test_numeric_options_in_a_config_file_give_the_same_errors(cli, tmp_path, text_csv, tiny_text_dir, line, words):
    config = tmp_path / "fit.toml"
    config.write_text(line + "\n")
    result = cli(["fit", text_csv, "--model", tiny_text_dir, "--config", config, "--out", tmp_path / "run", "-q"])
    refused(result, *words)


@pytest.mark.parametrize("options", [{"cs": []}, {"cs": (-1,)}, {"cs": ("a",)}, {"seed": -1},
                                     {"strategy": "contrastive", "cs": ()}])
def test_python_numeric_options_raise_config_errors(text_csv, tiny_text_dir, options):
    options = {"strategy": "linear", **options}
    with pytest.raises(ConfigError):
        headstart.fit(str(text_csv), str(tiny_text_dir), progress=False, **options)


# ---- an edited preprocessing record is a damaged file, not a traceback ------------------------------------

@pytest.mark.parametrize("key, value", [("size", "big"), ("size", -5), ("size", 0), ("crop_pct", 3),
                                        ("interpolation", "fancy"), ("std", [0, 0, 0])])
def test_an_edited_image_preprocessing_record_is_named_as_damaged(cli, tmp_path, image_run, image_folder, key,
                                                                   value):
    run = tmp_path / "run"
    shutil.copytree(image_run[1], run)
    spec_file = run / "model" / "headstart.json"
    spec = json.loads(spec_file.read_text())
    spec["preprocessing"][key] = value
    spec_file.write_text(json.dumps(spec))
    result = cli(["predict", run, next(image_folder.rglob("*.png"))])
    refused(result, str(spec_file), f"preprocessing.{key}", "Restore it")


def test_an_edited_max_length_is_named_as_damaged(cli, tmp_path, text_run):
    run = tmp_path / "run"
    shutil.copytree(text_run[1], run)
    spec_file = run / "model" / "headstart.json"
    spec = json.loads(spec_file.read_text())
    spec["preprocessing"]["max_length"] = -5
    spec_file.write_text(json.dumps(spec))
    refused(cli(["predict", run, "The striker scored twice"]), "preprocessing.max_length", "Restore it")


# ---- non-finite numbers never reach a JSON file ------------------------------------------------------------

def test_metrics_json_stays_strict_json_when_a_metric_is_not_a_number(cli, tmp_path, tiny_text_dir):
    data = write_regression_csv(tmp_path / "y.csv", [i * 1.5 for i in range(30)])
    test = write_regression_csv(tmp_path / "constant.csv", [5] * 4)  # R² and Spearman of a constant: no value
    out = tmp_path / "run"
    result = cli(["fit", data, "--model", tiny_text_dir, "--task", "regression", "--test", test, "--out", out,
                  "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    strict_json(result.stdout)
    for path in out.rglob("*.json*"):
        for line in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
            strict_json(line)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["r2"] is None and metrics["test"]["spearman"] is None
    assert math.isfinite(metrics["test"]["mae"])


def test_regression_targets_too_large_for_float32_are_bad_rows_named_by_line(cli, tmp_path, tiny_text_dir):
    data = write_regression_csv(tmp_path / "huge.csv", [f"{i + 1}e306" for i in range(30)])
    out = tmp_path / "run"
    result = cli(["fit", data, "--model", tiny_text_dir, "--task", "regression", "--out", out, "--quiet"])
    refused(result, "huge.csv line 2", "too large", "--skip-bad")
    assert not out.exists()
