"""`headstart predict` and `evaluate` as tools: several files, --top-k, --batch-size, the stdin hint, and the
warning when evaluation items are the run's own training items."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from headstart.cli.app import app

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}


def invoke(args: list, **kwargs):
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV, **kwargs)
    assert result.exit_code == 0, result.output
    return result


def rows_of(output: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(output)))


def test_several_files_keep_their_paths(image_run, image_folder, text_run, tmp_path):
    _, run = image_run
    files = [image_folder / "red" / "red_00.png", image_folder / "blue" / "blue_03.png"]
    rows = rows_of(invoke(["predict", run, *files]).stdout)
    assert [r["input"] for r in rows] == [str(f) for f in files]
    notes = [tmp_path / "a.txt", tmp_path / "b.txt"]
    notes[0].write_text("Knead the dough")
    notes[1].write_text("The referee blew the whistle")
    rows = rows_of(invoke(["predict", text_run[1], *notes, "Peel the potatoes"]).stdout)
    assert [r["input"] for r in rows] == [str(notes[0]), str(notes[1]), "argument 3"]
    assert rows[2]["text"] == "Peel the potatoes"


def test_top_k_and_batch_size(image_run, image_folder):
    _, run = image_run
    full = rows_of(invoke(["predict", run, image_folder / "green"]).stdout)
    top = rows_of(invoke(["predict", run, image_folder / "green", "--top-k", "2", "--batch-size", "1"]).stdout)
    assert list(top[0]) == ["input", "label", "label_1", "p_1", "label_2", "p_2"]
    for whole, short in zip(full, top):
        ranked = sorted(((float(v), k[2:]) for k, v in whole.items() if k.startswith("p_")), reverse=True)
        assert short["label_1"] == whole["label"] == ranked[0][1] and short["label_2"] == ranked[1][1]
        assert abs(float(short["p_1"]) - ranked[0][0]) < 1e-5  # batch 1 predicts as batch 64
    payload = json.loads(invoke(["predict", run, image_folder / "green", "--top-k", "1", "--json"]).stdout)
    assert all(len(r["top_k"]) == 1 for r in payload) and "probabilities" not in payload[0]


def test_stdin_hint_only_on_a_terminal(text_run):
    _, run = text_run
    piped = invoke(["predict", run], input="Stir the soup\n")
    assert "reading texts from stdin" not in piped.stderr and len(rows_of(piped.stdout)) == 1
    script = Path(sys.executable).parent / "headstart"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "headstart"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*command, "predict", str(run)], stdin=follower, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **ENV}, text=True)
    os.close(follower)
    os.write(leader, b"Stir the soup\n\x04")
    out, err = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0, err
    assert "reading texts from stdin, one per line; end with Ctrl-D" in err
    assert rows_of(out)[0]["text"] == "Stir the soup"


def test_evaluate_warns_about_training_items(text_run, text_csv):
    _, run = text_run
    result = invoke(["evaluate", run, text_csv])
    assert "warning: " in result.stderr and "were training items" in result.stderr and "(30 evaluated" in result.stderr
    assert "warning" not in result.stdout and "accuracy" in result.stdout
    payload = json.loads(invoke(["evaluate", run, text_csv, "--json"]).stdout)
    assert payload["overlap"]["train"] + payload["overlap"]["val"] == 30
