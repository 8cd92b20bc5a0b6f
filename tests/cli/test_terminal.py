"""What the terminal shows (issue 13, item 6): epoch lines that stay, "resuming from epoch N", no blank lines
when stderr is not a terminal, -h/--version, help with real defaults, --weight-decay/--warmup, `models` in 80
columns, audit warnings on stderr, and `fit --json` without the misclassified items' previews."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import headstart
from headstart.training import engine
from headstart.cli.app import app
from headstart.strategies.declared import FINETUNE_LR, rate

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
EPOCH = re.compile(r"^epoch (\d+)/(\d+)  train loss \d+\.\d{3}  val loss \d+\.\d{3}  val acc [01]\.\d{3}  \d+\.\d s$")


def run(args: list, **kwargs):
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV, **kwargs)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_fine_tuning_prints_a_line_per_epoch_that_stays_and_no_blank_lines(text_csv, tiny_text_dir, tmp_path):
    out = tmp_path / "run"
    result = run(["fit", text_csv, "--model", tiny_text_dir, "--strategy", "partial", "--unfreeze", "1",
                  "--epochs", "2", "--patience", "5", "--batch-size", "8", "--weight-decay", "0.05", "--warmup", "0.2",
                  "--out", out, "--json", "--cache-dir", tmp_path / "cache"])
    lines = result.stderr.splitlines()
    epochs = [EPOCH.match(line) for line in lines if line.startswith("epoch ")]
    assert [(m.group(1), m.group(2)) for m in epochs if m] == [("1", "2"), ("2", "2")], result.stderr
    assert "" not in lines  # stderr is not a terminal here: no bars, no spinners, no blank lines
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert f"val acc {history[-1]['val_accuracy']:.3f}" in lines[[i for i, l in enumerate(lines)
                                                                   if l.startswith("epoch 2/2")][0]]
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["weight_decay"] == 0.05 and config["warmup"] == 0.2
    printed = json.loads(result.stdout)
    saved = json.loads((out / "metrics.json").read_text())
    assert "misclassified" in saved and "misclassified" not in printed["metrics"]  # the report's, not the JSON's
    assert printed["metrics"]["val"] == saved["val"]


def test_resume_says_where_it_resumes(text_csv, tiny_text_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = engine.save_checkpoint

    def save_then_stop(folder, tensors, state):
        real(folder, tensors, state)
        raise KeyboardInterrupt  # as a Ctrl-C right after epoch 1 was saved

    monkeypatch.setattr(engine, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        headstart.fit(str(text_csv), str(tiny_text_dir), "partial", out=str(out), unfreeze=1, epochs=3,
                      batch_size=8, patience=5, progress=False)
    monkeypatch.setattr(engine, "save_checkpoint", real)
    result = run(["fit", "--resume", out])
    lines = result.stderr.splitlines()
    assert lines[0].startswith("resuming from epoch 1 of 3"), result.stderr
    assert [line[:9] for line in lines if line.startswith("epoch ")] == ["epoch 2/3", "epoch 3/3"]


def test_version_and_short_help():
    assert run(["--version"]).stdout.strip() == f"headstart {headstart.__version__}"
    assert run(["-h"]).stdout == run(["--help"]).stdout
    assert "Usage:" in run(["fit", "-h"]).stdout


def test_help_shows_the_defaults_used():
    """Bracketed defaults in help texts reach the screen (rich markup used to swallow them as tags)."""
    text = " ".join(run(["fit", "--help"]).stdout.split())
    assert f"Learning rate of the top layer group [default: {rate(FINETUNE_LR['image'])} images, " \
           f"{rate(FINETUNE_LR['text'])} texts, {rate(FINETUNE_LR['audio'])} sounds]" in text
    assert "[default: 5e-4 images, 1e-4 texts, 5e-4 sounds]" in text  # as people write rates
    assert "--out <path>" in text and "[default: runs/<model>-<strategy>-<time>]" in text
    assert "--cs C,C,..." in text and "--weight-decay <float>" in text and "[default: 0.01]" in text
    assert "--skip-bad <bool>" not in text  # a flag takes no value


def test_models_keeps_names_whole_in_80_columns():
    proc = subprocess.run([sys.executable, "-m", "headstart", "models"], capture_output=True, text=True,
                          env={**os.environ, **ENV, "COLUMNS": "80"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for row in headstart.models():
        assert any(re.search(rf"(^|\W){re.escape(row['name'])}(\W|$)", line) for line in lines), row["name"]


def test_audit_warnings_go_to_stderr_like_fits(tmp_path, tiny_text_dir):
    data = tmp_path / "dup.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(12):
            writer.writerow([f"the match ended {i} to nil", "sports"])
            writer.writerow([f"whisk {i} eggs into the batter", "cooking"])
        writer.writerow(["the match ended 0 to nil", "sports"])  # an exact duplicate of line 2
    result = run(["audit", data, "--model", tiny_text_dir, "--out", tmp_path / "audit", "--quiet",
                  "--cache-dir", tmp_path / "cache"])
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings and any("duplicate" in w for w in warnings), result.stderr
    assert not [line for line in result.stdout.splitlines() if line.lstrip().startswith("warning")]
