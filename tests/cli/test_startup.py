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
