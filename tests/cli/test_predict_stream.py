"""`headstart predict` streams: each batch's rows are written before the next inputs are read."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from headstart.cli.app import main


class Logged:
    """stdin and stdout that log, in one shared list, each line read and each write, in order."""

    def __init__(self, lines: list[str], log: list[str]):
        self.log = log
        self.lines = lines
        self.buffer = self  # stdin's byte stream: the lines as bytes, as they are read
        self.text = io.StringIO()

    def __iter__(self):
        for n, line in enumerate(self.lines, 1):
            self.log.append(f"read {n}")
            yield line.encode()

    def read(self) -> bytes:  # a reader that wants everything at once gets it, each line logged as read
        return b"".join(self)

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if text:
            self.log.append("write")
        return self.text.write(text)

    def flush(self) -> None:
        pass


def run_streamed(monkeypatch, args: list[str], lines: list[str]) -> tuple[list[str], str]:
    log: list[str] = []
    stdin, stdout = Logged(lines, log), Logged([], log)
    monkeypatch.setattr(sys, "argv", ["headstart", *args])
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    return log, stdout.text.getvalue()


@pytest.mark.parametrize("json_out", [False, True])
def test_predict_writes_rows_before_the_last_inputs_are_read(monkeypatch, text_run, json_out):
    _, run_dir = text_run
    lines = [f"the team won the match number {n}\n" for n in range(1, 13)]
    args = ["predict", str(run_dir), "--batch-size", "4"] + (["--json"] if json_out else [])
    log, out = run_streamed(monkeypatch, args, lines)
    first_row = log.index("write", log.index("write") + (0 if json_out else 1))  # after the CSV header
    assert first_row < log.index("read 12"), log  # a batch's rows are out before the input is all read
    assert log.index("read 4") < first_row  # ...and only after its own batch was read
    rows = json.loads(out) if json_out else list(csv.DictReader(io.StringIO(out)))
    assert [r["input"] for r in rows] == [f"stdin line {n}" for n in range(1, 13)]


def test_streamed_rows_keep_skipped_lines_in_place(monkeypatch, text_run):
    _, run_dir = text_run
    lines = ["goals and a cup final\n", "\n", "bake the bread\n", "a\0b\n", "the chef's soup\n", "\n", "\n"]
    _, out = run_streamed(monkeypatch, ["predict", str(run_dir), "--batch-size", "2", "--skip-bad"], lines)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["input"], r["skipped"]) for r in rows] == [
        ("stdin line 1", ""), ("stdin line 2", "blank line"), ("stdin line 3", ""),
        ("stdin line 4", "binary data (a NUL byte)"), ("stdin line 5", "")]  # trailing blank lines: no inputs
