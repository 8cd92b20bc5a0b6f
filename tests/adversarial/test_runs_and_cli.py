"""Adversarial cases for run folders and the CLI: each was a defect found by trying to break headstart.

Grows with every defect found (issue 9 and later). Real folders, real fits on tiny models, the real CLI.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import headstart
from headstart.workflows.audit import audit
from headstart.core.errors import ConfigError, RunError
from headstart.strategies import make_strategy
from cli_harness import ENV, Outcome, cli  # noqa: F401  (cli is a fixture)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- 1. --overwrite never deletes what is not a run ----------------------------------------------------

def test_overwrite_refuses_the_folder_that_holds_the_training_table(cli, tmp_path, text_csv, tiny_text_dir):
    sandbox = tmp_path / "sb"
    sandbox.mkdir()
    shutil.copy(text_csv, sandbox / "texts.csv")
    (sandbox / "thesis.txt").write_text("keep\n")
    before = snapshot(sandbox)
    result = cli(["fit", sandbox / "texts.csv", "--model", tiny_text_dir, "--out", sandbox, "--overwrite", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "never writes into, or replaces, your data" in result.output
    assert snapshot(sandbox) == before


def test_overwrite_refuses_the_image_folder_itself_and_a_folder_inside_it(cli, tmp_path, image_folder):
    images = tmp_path / "imgs"
    shutil.copytree(image_folder, images)
    before = snapshot(images)
    for out in (images, images / "red", images / "runs" / "new"):
        result = cli(["fit", images, "--model", "random:mobilenetv2", "--image-size", "32", "--out", out,
                      "--overwrite", "--quiet"])
        assert result.exit_code == 2, result.output
        assert "data" in result.output
    assert snapshot(images) == before


def test_overwrite_refuses_a_folder_that_is_not_a_run(cli, tmp_path, text_csv, tiny_text_dir):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.txt").write_text("years of work\n")
    (folder / "config.json").write_text("{}\n")  # a name headstart also writes: still not a run
    with pytest.raises(RunError, match="not a headstart run folder"):
        headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(folder), overwrite=True, progress=False)
    assert (folder / "chapter1.txt").read_text() == "years of work\n"
    result = cli(["fit", text_csv, "--model", tiny_text_dir, "--out", folder, "--quiet"])
    assert result.exit_code == 2 and "not a headstart run folder" in result.output
    assert "already holds a run" not in result.output  # the old message steered users into --overwrite


def test_overwrite_refuses_a_run_that_holds_the_users_own_files(tmp_path, text_csv, tiny_text_dir):
    run = tmp_path / "run"
    headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(run), progress=False)
    (run / "notes.md").write_text("my notes\n")
    with pytest.raises(RunError, match="notes.md"):
        headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(run), overwrite=True, progress=False)
    assert (run / "notes.md").read_text() == "my notes\n"
    (run / "notes.md").unlink()
    headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(run), overwrite=True, progress=False)
    assert (run / ".headstart").is_file() and (run / "model" / "model.safetensors").is_file()


def test_an_audit_folder_is_not_replaced_by_a_run(tmp_path, text_csv, tiny_text_dir):
    audit_dir = tmp_path / "audit"
    audit(str(text_csv), str(tiny_text_dir), out=str(audit_dir), progress=False)
    with pytest.raises(RunError, match="holds a headstart audit, not a run"):
        headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(audit_dir), overwrite=True,
                      progress=False)
    assert (audit_dir / "audit.json").is_file()


# ---- 3. predict from stdin: one row per line, numbered by line -----------------------------------------

def rows_of(output: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(output)))


def test_a_blank_stdin_line_is_an_error_naming_it(cli, text_run):
    _, run = text_run
    result = cli(["predict", run], input="the match went to penalties\n   \nsimmer the sauce\n")
    assert result.exit_code == 2
    assert "stdin line 2 is blank" in result.output


def test_stdin_with_skip_bad_gives_one_row_per_line_in_line_order(cli, text_run):
    _, run = text_run
    lines = [f"the striker scored goal number {i}" for i in range(1, 41)]
    lines[16] = ""
    result = cli(["predict", run, "--skip-bad"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert [r["input"] for r in rows] == [f"stdin line {n}" for n in range(1, 41)]
    assert rows[16]["skipped"] == "blank line" and rows[16]["label"] == ""
    assert all(r["skipped"] == "" and r["label"] for i, r in enumerate(rows) if i != 16)
    assert rows[17]["text"] == lines[17]


# ---- 7. CSV output never carries a spreadsheet formula ---------------------------------------------------

def test_predict_neutralises_formulas_in_csv_and_raw_opts_out(cli, text_run):
    _, run = text_run
    texts = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2-2", "@SUM(A1)", "plain text"]
    rows = rows_of(cli(["predict", run], input="\n".join(texts) + "\n").stdout)
    assert [r["text"] for r in rows] == ["'" + t for t in texts[:4]] + ["plain text"]
    raw = rows_of(cli(["predict", run, "--raw"], input="\n".join(texts) + "\n").stdout)
    assert [r["text"] for r in raw] == texts


# ---- 9. advice that can be followed: predict and evaluate take --skip-bad ---------------------------------

def test_evaluate_skip_bad_lists_what_it_skipped(cli, tmp_path, text_run):
    _, run = text_run
    table = tmp_path / "eval.csv"
    table.write_text("text,label\nthe striker scored twice,sports\n,cooking\nwhisk the eggs,cooking\n")
    refused = cli(["evaluate", run, table])
    assert refused.exit_code == 2 and "--skip-bad" in refused.output
    result = cli(["evaluate", run, table, "--skip-bad", "--json"])
    assert result.exit_code == 0, result.output
    assert '"skipped"' in result.stdout and "eval.csv line 3" in result.stdout


# ---- 11. rough edges ----------------------------------------------------------------------------------

def test_unknown_strategy_error_lists_auto():
    with pytest.raises(ConfigError, match="auto"):
        make_strategy("fine-tune")


def test_ctrl_c_during_a_fit_says_what_was_saved_and_how_to_resume(tmp_path, image_folder):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "headstart", "fit", str(image_folder), "--model", "random:mobilenetv2",
           "--strategy", "full", "--image-size", "32", "--epochs", "200", "--patience", "200", "--batch-size", "8",
           "--out", str(run), "--quiet", "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV})
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 240
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state.exists(), proc.communicate()[1] if proc.poll() is not None else "no epoch saved in time"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"headstart fit --resume {run}" in " ".join(err.split())


def test_compare_and_audit_refuse_the_data_folder_before_any_work(cli, tmp_path, image_folder):
    images = tmp_path / "imgs"
    shutil.copytree(image_folder, images)
    before = snapshot(images)
    for verb in ("compare", "audit"):
        result = cli([verb, images, "--model", "random:mobilenetv2", "--image-size", "32", "--out", images,
                      "--overwrite", "--quiet"])
        assert result.exit_code == 2, result.output
        assert "never writes into, or replaces, your data" in result.output
    assert snapshot(images) == before


def test_predict_reads_a_folder_as_the_models_kind_of_input_even_at_one_image_and_one_note(cli, tmp_path,
                                                                                          image_run, image_folder):
    _, run = image_run
    folder = tmp_path / "new"
    folder.mkdir()
    shutil.copy(next((image_folder / "red").iterdir()), folder / "photo.png")
    (folder / "notes.txt").write_text("taken on Tuesday\n")  # as many texts as images: the run decides
    result = cli(["predict", run, folder])
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in rows_of(result.stdout)] == [str(folder / "photo.png")]
    assert "skipped" in result.stderr and "notes.txt" in result.stderr
