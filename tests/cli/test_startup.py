"""`headstart --help`, a verb's help and argument errors start without torch, timm or transformers (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = {"torch", "timm", "transformers"}


def imported_modules(args: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime -m headstart ARGS``; its result and every module the process imported."""
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "headstart", *args], capture_output=True,
                          text=True, env=env, timeout=120)
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, modules - {"package"}  # the header line's last column


@pytest.mark.parametrize("args, code", [
    (["--help"], 0), (["-h"], 0), (["fit", "--help"], 0), (["compare", "--help"], 0), (["audit", "--help"], 0),
    (["--version"], 0), (["fit", "data.csv", "--epochs", "many"], 2), (["fit", "--no-such-flag"], 2),
])
def test_help_and_argument_errors_import_no_torch(args, code):
    proc, modules = imported_modules(args)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "typer" in modules  # the check sees the CLI's own imports
    assert not modules & HEAVY, f"`headstart {' '.join(args)}` imported {sorted(modules & HEAVY)}"


def test_a_verb_that_trains_does_import_torch(tmp_path):
    """The check can fail: a command that needs torch shows it in the same listing."""
    proc, modules = imported_modules(["cache", "--cache-dir", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch" in modules


# What a text run's one-line `predict` must not load (issue 22, item 5): the image models' library, the metrics,
# the optimiser and the plots of fitting, and the workflows behind `headstart.api` (timm alone took 2.8 s of CPU).
NOT_FOR_PREDICT = {"timm", "sklearn", "scipy.stats", "matplotlib", "headstart.api", "headstart.workflows.pipeline",
                   "headstart.workflows.advise"}


def test_predict_on_a_text_run_imports_only_what_its_family_needs(text_run):
    _, run = text_run
    proc, modules = imported_modules(["predict", str(run), "the striker scored twice"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 2 and "the striker scored twice" in proc.stdout  # a header and one row
    assert "transformers" in modules  # the text family's own library is loaded, as it must be
    assert not modules & NOT_FOR_PREDICT, f"predict imported {sorted(modules & NOT_FOR_PREDICT)}"
