"""The `headstart` command line: models, fit, predict, evaluate, cache, and how errors reach the user."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import headstart
from headstart.cli.app import app

from conftest import COOKING, SPORTS

WIDE = {"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}  # rich tables unwrapped, no colour codes
SCRIPT = Path(sys.executable).parent / "headstart"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str], **kwargs):
    result = runner.invoke(app, [str(a) for a in args], env=WIDE, **kwargs)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture(scope="module")
def cli_text_run(tmp_path_factory, text_csv, tiny_text_dir) -> Path:
    """A run written by `headstart fit CSV --model <tiny dir> --strategy linear --out RUN --quiet`."""
    out = tmp_path_factory.mktemp("cli") / "text-run"
    cache = tmp_path_factory.mktemp("cli-cache")
    result = CliRunner().invoke(app, ["fit", str(text_csv), "--model", str(tiny_text_dir), "--strategy", "linear",
                                      "--out", str(out), "--quiet", "--cache-dir", str(cache)], env=WIDE)
    assert result.exit_code == 0, result.output
    return out


def test_models_lists_the_three_builtins(runner):
    result = invoke(runner, ["models"])
    assert result.exit_code == 0
    for name in ("minilm-l6", "mobilenetv2", "efficientnet-lite0"):
        assert name in result.output


def test_models_json_is_parseable(runner):
    result = invoke(runner, ["models", "--json"])
    rows = json.loads(result.stdout)
    assert {r["name"] for r in rows} >= {"minilm-l6", "mobilenetv2", "efficientnet-lite0"}


def test_no_arguments_shows_help(runner):
    result = runner.invoke(app, [], env=WIDE)
    for verb in ("fit", "predict", "evaluate", "models", "cache"):
        assert verb in result.output


def test_fit_on_a_csv_prints_the_summary_and_writes_the_run(runner, text_csv, tiny_text_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke(runner, ["fit", text_csv, "--model", tiny_text_dir, "--strategy", "linear", "--out", out,
                             "--quiet", "--cache-dir", tmp_path / "cache"])
    assert result.exit_code == 0, result.output
    assert "val acc" in result.output and "trainable / total" in result.output
    assert "linear" in result.output
    assert f"headstart predict {out}" in " ".join(result.output.split())  # long paths may wrap
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"{metrics['val']['accuracy']:.3f}" in result.output
    assert (out / "model" / "headstart.json").is_file()


def test_fit_json_prints_parseable_metrics(runner, text_csv, tiny_text_dir, tmp_path):
    result = invoke(runner, ["fit", text_csv, "--model", tiny_text_dir, "--out", tmp_path / "run", "--quiet",
                             "--json", "--cache-dir", tmp_path / "cache"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["run"] == str(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    saved.pop("misclassified")  # the report's previews (thumbnails, tens of kB) stay out of the JSON
    assert payload["metrics"] == saved


def test_fit_partial_on_an_image_folder(runner, image_folder, tmp_path):
    out = tmp_path / "img-run"
    result = invoke(runner, ["fit", image_folder, "--model", "random:mobilenetv2", "--strategy", "partial",
                             "--epochs", "1", "--image-size", "32", "--batch-size", "8", "--unfreeze", "2",
                             "--no-cache-boundary", "--out", out, "--quiet", "--cache-dir", tmp_path / "cache"])
    assert result.exit_code == 0, result.output
    assert "partial" in result.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["strategy"], config["epochs"], config["options"]["unfreeze"], config["image_size"]) == ("partial", 1, 2, 32)
    assert config["cache_boundary"] is False
    assert len((out / "history.jsonl").read_text().splitlines()) == 1
    rows = headstart.predict(out, str(image_folder / "red"))
    assert len(rows) == 12


def test_fit_into_an_existing_run_fails_without_overwrite(runner, cli_text_run, text_csv, tiny_text_dir):
    before = (cli_text_run / "metrics.json").read_bytes()
    result = runner.invoke(app, ["fit", str(text_csv), "--model", str(tiny_text_dir), "--out", str(cli_text_run),
                                 "--quiet"], env=WIDE)
    assert isinstance(result.exception, headstart.RunError)
    assert (cli_text_run / "metrics.json").read_bytes() == before


def test_predict_reads_text_lines_from_stdin_and_prints_csv(runner, cli_text_run):
    texts = ["The winger crossed for a header", "Whisk the cream until stiff", "Boil the pasta"]
    result = invoke(runner, ["predict", cli_text_run], input="\n".join(texts) + "\n\n")
    assert result.exit_code == 0, result.output
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert header[0] == "input" and header[-3:] == ["label", "p_cooking", "p_sports"]
    assert len(rows) == len(texts)  # a blank line at the very end is not an input
    rows = [dict(zip(header, row)) for row in rows]
    if "text" in header:
        assert [r["text"] for r in rows] == texts
    expected = headstart.predict(cli_text_run, texts)
    for row, exp in zip(rows, expected):
        assert row["label"] == exp["label"] and row["label"] in ("cooking", "sports")
        assert float(row["p_cooking"]) == pytest.approx(exp["probabilities"]["cooking"], abs=1e-6)
        assert float(row["p_cooking"]) + float(row["p_sports"]) == pytest.approx(1.0, abs=1e-5)


def test_predict_json_is_parseable(runner, cli_text_run):
    result = invoke(runner, ["predict", cli_text_run, "--json"], input="Stir the soup\nScore a goal\n")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and len({r["input"] for r in rows}) == 2
    for r in rows:
        assert set(r["probabilities"]) == {"cooking", "sports"}
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)


def test_predict_a_table_file(runner, cli_text_run, text_csv):
    result = invoke(runner, ["predict", cli_text_run, text_csv])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 30


def test_evaluate_prints_accuracy_and_the_confusion_matrix(runner, cli_text_run, text_csv):
    result = invoke(runner, ["evaluate", cli_text_run, text_csv])
    assert result.exit_code == 0, result.output
    metrics = headstart.evaluate(cli_text_run, str(text_csv))
    assert f"accuracy {metrics['accuracy']:.4f}" in result.output
    assert "confusion matrix" in result.output
    assert "cooking" in result.output and "sports" in result.output
    for row in metrics["confusion_matrix"]:
        assert " ".join(str(v) for v in row) in " ".join(result.output.replace("│", " ").split())


def test_evaluate_json_matches_the_api(runner, cli_text_run, text_csv):
    result = invoke(runner, ["evaluate", cli_text_run, text_csv, "--json"])
    assert json.loads(result.stdout) == json.loads(json.dumps(headstart.evaluate(cli_text_run, str(text_csv))))


def test_cache_reports_and_clears(runner, text_csv, tiny_text_dir, tmp_path):
    cache = tmp_path / "cache"
    invoke(runner, ["fit", text_csv, "--model", tiny_text_dir, "--out", tmp_path / "run", "--quiet",
                    "--cache-dir", cache])
    shown = invoke(runner, ["cache", "--cache-dir", cache])
    assert "1 backbone settings" in shown.output and "2 shards" in shown.output
    cleared = invoke(runner, ["cache", "--clear", "--cache-dir", cache])
    assert "Removed 4 files" in cleared.output
    assert not list((cache / "features").rglob("*.safetensors"))


def test_compare_titles_what_ran_and_says_when_fine_tuning_lost_to_the_probe(runner, image_folder, tmp_path):
    out = tmp_path / "cmp"
    result = invoke(runner, ["compare", image_folder, "--model", "random:mobilenetv2", "--strategies", "linear,full",
                             "--seeds", "2", "--epochs", "1", "--image-size", "32", "--no-hflip", "--budget", "10m",
                             "--out", out, "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "comparison.json").read_text())
    assert record["ran"] == "linear: 2 seeds, full: 2 seeds"
    assert "(linear: 2 seeds, full: 2 seeds)" in result.output  # the table's title
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith(("│ linear", "│ full"))}
    assert all(line.rstrip(" │").endswith("done") for line in lines.values()), lines
    linear, full = record["rows"]
    # one step of a random network cannot match a probe on its features: the situation, checked
    assert full["val_accuracy"]["ci95"][1] < linear["val_accuracy"]["mean"], (full, linear)
    assert record["warnings"] == [full["warning"]]
    assert "warning: fine-tuning lost to the frozen probe: full ends" in result.output
    assert re.search(r"Budget 10m00s: used \S+, saving included", result.output)


def write_rows(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_compare_of_a_regression_names_r2_in_the_table_and_the_recommendation(runner, tiny_text_dir, tmp_path):
    # ten distinct scores: classes unless --task regression says they are numbers
    data = write_rows(tmp_path / "scores.csv", ["text", "score"],
                      [[t, 4 + i % 5] for i, t in enumerate(SPORTS)] + [[t, -4 - i % 5] for i, t in enumerate(COOKING)])
    out = tmp_path / "cmp"
    result = invoke(runner, ["compare", data, "--model", tiny_text_dir, "--label-col", "score", "--task", "regression",
                             "--strategies", "linear", "--seeds", "2", "--out", out, "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "comparison.json").read_text())
    assert (record["task"], record["main_metric"], record["metrics"]) == ("regression", "r2", ["r2", "mae"])
    assert "val R² [95% CI]" in result.output and "val MAE" in result.output
    assert "learning curve (val R²)" in result.output
    assert "val acc" not in result.output
    assert "Recommendation: linear" in result.output and "linear has the best validation R²: " in result.output


def test_audit_of_a_label_set_table_checks_each_label(runner, tiny_text_dir, tmp_path):
    rows = [[t, "sports+news" if i % 3 == 0 else "sports"] for i, t in enumerate(SPORTS)]
    rows += [[t, "cooking+news" if i % 3 == 0 else "cooking"] for i, t in enumerate(COOKING)]
    data = write_rows(tmp_path / "tags.csv", ["text", "tags"], rows)
    out = tmp_path / "audit"
    result = invoke(runner, ["audit", data, "--model", tiny_text_dir, "--label-col", "tags", "--label-sep", "+",
                             "--out", out, "-q"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "audit.json").read_text())
    assert saved["task"] == "multi-label" and saved["classes"] == ["cooking", "news", "sports"]
    assert saved["probe"]["main_metric"] == "micro_f1" and "probe micro-F1" in result.output
    assert "Labels (max/min ratio" in result.output and "labels with < 10 training examples" in result.output
    checks = {row["check"]: row["count"] for row in saved["summary"]}
    assert checks["likely label errors (item, label pairs)"] == len(saved["label_issues"])
    assert all(i["label_name"] in saved["classes"] and i["given"] != i["suggested"] for i in saved["label_issues"])
    html = (out / "report.html").read_text()
    assert "Label counts (train)" in html and "micro-F1" in html


# ---------------------------------------------------------------- the real script, end to end


def run_script(args: list, tmp_path: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} is not installed")
    env = {**os.environ, **WIDE, "HEADSTART_CACHE": str(tmp_path / "cache")}
    return subprocess.run([str(SCRIPT), *map(str, args)], input=stdin, capture_output=True, text=True,
                          env=env, timeout=300, cwd=str(tmp_path))


def test_missing_column_exits_2_with_one_error_line_and_no_traceback(tmp_path, tiny_text_dir):
    data = tmp_path / "reviews.csv"
    data.write_text("review_text,label\ngreat phone,pos\nawful battery,neg\n")
    proc = run_script(["fit", data, "--model", tiny_text_dir, "--text-col", "body_text", "--quiet",
                       "--out", tmp_path / "run"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "body_text" in errors[0] and "review_text" in errors[0] and "--text-col" in errors[0]
    assert not (tmp_path / "run").exists()


def test_script_predicts_from_a_pipe(tmp_path, cli_text_run):
    proc = run_script(["predict", cli_text_run], tmp_path, stdin="Serve the soup hot\nThe match ended 2-1\n")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0][0] == "input" and "label" in rows[0] and len(rows) == 3


def test_every_strategy_option_is_a_fit_flag_with_the_fields_help():
    """Strategy options are declared once, in their dataclasses: `headstart fit` has a flag for each (the
    shared FitConfig fields aside, such as contrastive's batch_size), and its help is the field's."""
    import inspect

    from headstart.cli.fit import fit_cli
    from headstart.core.config import FitConfig
    from headstart.strategies import STRATEGIES
    from headstart.strategies.options import option_fields, option_help

    params = inspect.signature(fit_cli).parameters
    shared = set(FitConfig.__dataclass_fields__)
    for name, cls in STRATEGIES.items():
        for option in option_fields(cls):
            if option in shared:
                continue
            assert option in params, f"{name}'s option {option} has no `headstart fit` flag"
            flag = params[option].default
            takers = [s for s, c in STRATEGIES.items() if option in option_fields(c)]
            assert flag.help == f"{' / '.join(takers)}: {option_help(STRATEGIES[takers[0]], option)}"


def test_strategy_options_reach_the_strategy_from_the_command_line(runner, text_csv, tiny_text_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke(runner, ["fit", text_csv, "--model", tiny_text_dir, "--strategy", "linear", "--cs", "0.5,2",
                             "--out", out, "-q"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["options"] == {"cs": [0.5, 2.0]}
    wrong = runner.invoke(app, ["fit", str(text_csv), "--model", str(tiny_text_dir), "--dropout", "0.1", "-q"])
    assert isinstance(wrong.exception, headstart.ConfigError)
    assert "'linear' does not take dropout (an option of: lora)" in str(wrong.exception)


def test_advise_names_the_columns_it_read_in_the_fit_it_suggests_and_that_fit_runs(runner, tiny_text_dir, tmp_path):
    table = tmp_path / "tickets.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["comment", "topic"])
        writer.writerows([(t, "sport") for t in SPORTS] + [(t, "food") for t in COOKING])
    advised = invoke(runner, ["advise", table, "-m", tiny_text_dir, "--text-col", "comment", "--label-col", "topic",
                              "--quiet"])
    assert advised.exit_code == 0, advised.output
    line = next(line for line in advised.output.splitlines() if line.startswith("Next: headstart fit "))
    args = shlex.split(line[len("Next: headstart "):])
    assert args[args.index("--text-col") + 1] == "comment" and args[args.index("--label-col") + 1] == "topic"
    fitted = invoke(runner, [*args, "--out", tmp_path / "run", "--quiet", "--epochs", "1"])
    assert fitted.exit_code == 0, fitted.output
