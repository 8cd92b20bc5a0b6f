"""Adversarial cases, round three (issue 24): predict's inputs and output, config files, terminal messages.

Real CLI invocations on the tiny text run of tests/conftest.py; a broken stdout is a real file descriptor
(/dev/full, a closed pipe) in a subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COOKING, SPORTS

from cli_harness import ENV, cli  # noqa: F401  (cli is a fixture)

SRC = str(Path(__file__).resolve().parents[2] / "src")


def shell(args: list, stdout, **kwargs) -> subprocess.CompletedProcess:
    """`python -m headstart ARGS` in a real process, its stdout sent to ``stdout`` (a file or a pipe)."""
    env = {**os.environ, **ENV, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "headstart", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, env=env, text=True, timeout=300, **kwargs)


# ---- defect 7: predict ignores a table's labels and keeps input order --------------------------------------

def test_predict_reads_a_table_whose_labels_are_missing_or_partly_empty(cli, tmp_path, text_run):
    _, run = text_run
    table = tmp_path / "new.csv"
    table.write_text("text,label\nThe striker scored twice,sports\nSimmer the sauce,\nA late penalty,\n")
    result = cli(["predict", run, table])
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in result.rows] == [f"{table} line {n}" for n in (2, 3, 4)]
    assert all(r["label"] in ("sports", "cooking") for r in result.rows)


def test_predict_skip_bad_skips_bad_texts_not_unlabelled_rows_and_keeps_input_order(cli, tmp_path, text_run):
    _, run = text_run
    table = tmp_path / "new.csv"
    lines = ["text,label", "one,", "two,sports", ",cooking", "four,"] + [f"row {n}," for n in range(5, 12)]
    table.write_text("\n".join(lines) + "\n")
    result = cli(["predict", run, table, "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in result.rows] == [f"{table} line {n}" for n in range(2, 13)]  # line 4 in place
    assert [r["skipped"] for r in result.rows if r["skipped"]] == ["the text in column 'text' is empty"]


def test_predict_ignores_a_malformed_label_and_evaluate_still_needs_labels(cli, tmp_path, text_run):
    _, run = text_run
    table = tmp_path / "new.jsonl"
    table.write_text('{"text": "Whisk the eggs", "label": [["nested"]]}\n{"text": "A goal", "label": null}\n')
    assert cli(["predict", run, table]).exit_code == 0
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("text,label\nWhisk the eggs,cooking\nA goal,\n")
    result = cli(["evaluate", run, unlabelled])
    assert result.exit_code == 2 and "line 3: the label in column 'label' is missing" in result.output


# ---- stdin that is not UTF-8 text ----------------------------------------------------------------------------

@pytest.mark.parametrize("as_json", [False, True])
def test_latin1_on_stdin_is_decoded_as_the_file_readers_do(cli, text_run, as_json):
    _, run = text_run
    result = cli(["predict", run, *(["--json"] if as_json else [])], input=b"caf\xe9 au lait\n")
    assert result.exit_code == 0, result.output
    text = json.loads(result.stdout)[0]["text"] if as_json else result.rows[0]["text"]
    assert text == "café au lait"


def test_binary_garbage_on_stdin_names_the_line_or_is_skipped(cli, text_run):
    _, run = text_run
    garbage = b"\x89PNG\n\x00\x00\x00\rIHDR\n\xff\xd8\xff\x00JFIF\n"  # lines: \r ends one too
    result = cli(["predict", run], input=garbage)
    assert result.exit_code == 2
    assert "error: stdin line 2 holds a NUL byte" in result.output and "Traceback" not in result.output
    skipped = cli(["predict", run, "--skip-bad"], input=garbage)
    assert skipped.exit_code == 0, skipped.output
    assert [r["skipped"] for r in skipped.rows] == ["", "binary data (a NUL byte)", "", "binary data (a NUL byte)"]


# ---- config files: encoding, types and duplicate keys name the file ----------------------------------------

@pytest.mark.parametrize("name, content, message", [
    ("fit.toml", 'model = "caf\xe9"\n'.encode("latin-1"), "fit.toml: not UTF-8 text (byte 13"),
    ("fit.json", b'{"epochs": 2, "epochs": 3}', "fit.json: the key 'epochs' is given twice"),
    ("fit.toml", b"epochs = true\n", "fit.toml: 'epochs' must be a whole number, e.g. 3, not true (bool)"),
    ("fit.toml", b'epochs = "abc"\n', "fit.toml: 'epochs' must be a whole number, e.g. 3, not \"abc\" (str)"),
    ("fit.json", b'{"val_fraction": [0.2]}', "fit.json: 'val_fraction' must be a number, e.g. 0.5, not [0.2]"),
    ("fit.toml", b'augment = "no"\n', "fit.toml: 'augment' must be true or false, not \"no\" (str)"),
])
def test_a_bad_config_file_is_an_error_naming_the_file_and_key(cli, tmp_path, text_csv, name, content, message):
    (tmp_path / name).write_bytes(content)
    result = cli(["fit", text_csv, "--config", tmp_path / name, "--out", tmp_path / "run"])
    assert result.exit_code == 2 and f"error: --config {tmp_path / name}: " in result.output
    assert message in result.output and not (tmp_path / "run").exists()


# ---- stdout on a full disk, or a closed pipe ----------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("as_json", [False, True])
def test_predict_to_a_full_disk_is_an_error_not_a_traceback(tmp_path, text_run, as_json):
    _, run = text_run
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"text number {n}\n" for n in range(300)))
    with open("/dev/full", "w") as full, open(lines) as stdin:
        result = shell(["predict", run, *(["--json"] if as_json else [])], stdout=full, stdin=stdin)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: could not write: No space left on device"), result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr


def test_predict_into_a_closed_pipe_exits_quietly(tmp_path, text_run):
    _, run = text_run
    env = {**os.environ, **ENV, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(tmp_path / "stderr", "w") as err:
        child = subprocess.Popen([sys.executable, "-m", "headstart", "predict", str(run), "A goal", "Stir it"],
                                 stdout=subprocess.PIPE, stderr=err, env=env)
        child.stdout.close()  # `| head -0`: the reader is gone before anything is written
        assert child.wait(timeout=300) == 1
    assert (tmp_path / "stderr").read_text() == ""


# ---- long texts are not cut in machine-readable output ------------------------------------------------------

def test_predict_csv_and_json_carry_a_long_text_whole(cli, tmp_path, text_run):
    _, run = text_run
    text = "The striker scored in the last minute " * 12  # 456 characters
    table = tmp_path / "long.csv"
    table.write_text(f"text\n{text}\n")
    assert cli(["predict", run, table]).rows[0]["text"] == text
    assert json.loads(cli(["predict", run, table, "--json"]).stdout)[0]["text"] == text


# ---- -q hides progress, not warnings; the few-examples advice only where it applies -------------------------

def write_small_table(path: Path, repeat_first: bool = False) -> Path:
    """8 sports and 8 cooking sentences (under 10 per class); with ``repeat_first`` the first row twice."""
    rows = [row for pair in zip(((t, "sports") for t in SPORTS[:8]), ((t, "cooking") for t in COOKING[:8]))
            for row in pair]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows, *rows[:1 if repeat_first else 0]])
    return path


def test_quiet_hides_progress_but_not_data_warnings(cli, tmp_path, tiny_text_dir):
    table = write_small_table(tmp_path / "dup.csv", repeat_first=True)
    result = cli(["fit", table, "--model", tiny_text_dir, "--out", tmp_path / "run", "-q"])
    assert result.exit_code == 0, result.output
    assert "warning: 1 item(s) occur more than once" in result.stderr and "dup.csv line 18" in result.stderr


def test_too_few_examples_advice_is_for_fine_tuning_fits_only(cli, tmp_path, tiny_text_dir):
    table = write_small_table(tmp_path / "small.csv")
    advice = "prefer the linear strategy"
    linear = cli(["fit", table, "--model", tiny_text_dir, "--out", tmp_path / "linear"])
    assert linear.exit_code == 0 and advice not in linear.output
    assert advice not in json.dumps(json.loads((tmp_path / "linear" / "metrics.json").read_text()))
    partial = cli(["fit", table, "--model", tiny_text_dir, "--strategy", "partial", "--epochs", 1, "--batch-size", 8,
                   "--out", tmp_path / "partial", "-q"])
    assert partial.exit_code == 0 and advice in partial.output, partial.output
    audit = cli(["audit", table, "--model", tiny_text_dir, "--out", tmp_path / "audit", "-q"])
    assert audit.exit_code == 0 and advice not in audit.output, audit.output


def test_an_error_is_printed_as_written_brackets_included(cli, text_run, monkeypatch):
    """rich read `pip install 'headstart[serve]'` in an error as markup and printed `'headstart'`: the install
    command a user would copy was wrong. Here the serve extra is missing (its module cannot be imported)."""
    _, run = text_run
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = cli(["serve", run, "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "pip install 'headstart[serve]'" in result.output, result.output
