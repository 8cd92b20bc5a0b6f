"""The adversarial tests' way of running the CLI: the real `headstart` entry point, in this process, as a shell would."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass

import pytest

from headstart.cli.app import main

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return " ".join((self.stdout + self.stderr).split())  # rich wraps long lines

    @property
    def rows(self) -> list[dict]:
        return list(csv.DictReader(io.StringIO(self.stdout)))


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `headstart ARGS` with ``input`` on stdin (text, or bytes read as UTF-8 like a terminal's): exit code,
    stdout, stderr."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)

    def run(args: list, input: str | bytes | None = None) -> Outcome:
        monkeypatch.setattr(sys, "argv", ["headstart", *map(str, args)])
        stdin = (io.TextIOWrapper(io.BytesIO(input), encoding="utf-8") if isinstance(input, bytes)
                 else io.StringIO(input or ""))
        monkeypatch.setattr(sys, "stdin", stdin)
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        out, err = capsys.readouterr()
        return Outcome(code, out, err)

    return run


def refused(result: Outcome, *phrases: str) -> None:
    """A one-paragraph error (exit 2, no traceback) holding every phrase."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output, result.output
    for phrase in phrases:
        assert phrase in result.output, result.output
