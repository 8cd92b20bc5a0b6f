"""`headstart predict`: labels and probabilities for new inputs from a saved run.

CSV cells that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) get a leading ``'``, as OWASP recommends; ``--raw`` writes them as they are.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import io
import re
import sys
from pathlib import Path
from typing import Iterable, Optional, TextIO

import typer

from headstart.cli.output import print_json
from headstart.data import Dataset, Skipped, load_items
from headstart.data.dataset import modality as data_modality
from headstart.data.items import decode_text
from headstart.data.sources import is_text_not_path
from headstart.tasks.kinds import kind
from headstart.core.errors import ConfigError, DataError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def predict_cli(
    run: Path = typer.Argument(..., help="Run directory written by `headstart fit`."),
    inputs: Optional[list[str]] = typer.Argument(None, help="Image or .txt files, folders, tables (several allowed; "
                                                 "each row names its file), or on a text model texts in quotes. "
                                                 "'-' or none: text lines on stdin."),
    text_col: Optional[str] = typer.Option(None, help="Table column with the texts."),
    image_col: Optional[str] = typer.Option(None, help="Table column with image paths."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable or invalid inputs (blank lines, "
                                  "corrupt images): each gets a row saying why, in a 'skipped' column."),
    raw: bool = typer.Option(False, "--raw", help="Write CSV cells as they are, without neutralising "
                             "spreadsheet formulas (a leading ' before =, +, -, @)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, metavar="K", help="Only the K most probable "
                                        "classes per row (label_1, p_1, ... label_K, p_K) instead of one column "
                                        "per class."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Inputs per forward pass."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    json_out: bool = typer.Option(False, "--json", help="JSON instead of CSV."),
) -> None:
    """Predict labels for INPUTS with the model in RUN; CSV (input,[text,]label,p_<class>...) on stdout.

    One row per input, in input order; stdin lines are numbered as read ("stdin line 3"). Skipped inputs
    (non-image files in an image folder, and bad ones with --skip-bad) are listed on stderr; with --skip-bad
    each also gets a row saying why.

    Example: headstart predict runs/pets photos/  |  echo "refund please" | headstart predict runs/helpdesk
    """
    from headstart.api import load_run  # lazy: `--help` need not load torch (start-up time)
    from headstart.runs.folder import keep_top

    predictor = load_run(run)
    if not inputs or inputs == ["-"]:
        if sys.stdin.isatty():
            print("reading texts from stdin, one per line; end with Ctrl-D (or pass files: headstart predict "
                  "--help)", file=sys.stderr)
        parts = [stdin_dataset(stdin_lines(sys.stdin), skip_bad)]
    else:
        modality = predictor.backbone.modality
        parts = [load_items(arg, text_col=text_col, image_col=image_col, skip_bad=skip_bad, modality=modality,
                            run_columns=predictor.columns) for arg in inputs]
        parts = [dataclasses.replace(part, origins=[f"argument {n}"])  # a text given on the command line
                 if data_modality(modality).texts and is_text_not_path(arg) else part
                 for n, (arg, part) in enumerate(zip(inputs, parts), 1)]
    data = concat(parts)
    for skipped in data.skipped:  # on stderr: stdout stays a clean table
        print(f"skipped {skipped.origin}: {skipped.reason}", file=sys.stderr)
    rows = predictor.predict(data, device=device, batch_size=batch_size) if len(data) else []
    task = kind(predictor.task.name)
    if top_k is not None and not task.has_classes:
        raise ConfigError(f"--top-k ranks classes, and {run} is a regression model (one value per input); drop it.")
    if top_k is not None:
        rows = [keep_top(row, top_k) for row in rows]
    if skip_bad:
        rows = in_input_order(rows, parts)
    if json_out:
        print_json(rows)
        return
    write_csv(rows, predictor.classes if task.has_classes else [], skip_bad, raw, top_k, task.answer)


def concat(parts: list[Dataset]) -> Dataset:
    """One Dataset from the inputs of several arguments, in argument order, each item keeping its origin."""
    if len(parts) == 1:
        return parts[0]
    return Dataset([i for d in parts for i in d.items], None, parts[0].modality,
                   [o for d in parts for o in d.origins], [s for d in parts for s in d.skipped])


def stdin_lines(stream: TextIO) -> io.StringIO:
    """The lines of ``stream`` (stdin), its bytes decoded as the file readers do (UTF-8, else latin-1) whatever the
    locale says; a stream that has no bytes underneath is read as it is."""
    raw = getattr(stream, "buffer", None)
    return io.StringIO(decode_text(raw.read()) if raw is not None else stream.read(), newline=None)


def stdin_dataset(lines: Iterable[str], skip_bad: bool) -> Dataset:
    """One text per line, named "stdin line N"; a blank line or one holding a NUL byte (binary data, not text) is
    an error, or skipped with ``skip_bad``.

    Blank lines at the very end (an editor's trailing newline) are not inputs.
    """
    lines = [line.rstrip("\r\n") for line in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    texts, origins, skipped = [], [], []
    for n, text in enumerate(lines, 1):
        origin, problem = f"stdin line {n}", _line_problem(text)
        if problem is None:
            texts.append(text)
            origins.append(origin)
        elif skip_bad:
            skipped.append(Skipped(origin, problem[0]))
        else:
            raise DataError(f"{origin} {problem[1]}, or pass --skip-bad to give such lines a row marked skipped.")
    if not texts and not skipped:
        raise DataError("No input: pass image files, a folder or a table, or pipe text lines on stdin.")
    return Dataset(texts, None, "text", origins, skipped)


def _line_problem(text: str) -> tuple[str, str] | None:
    """What is wrong with one stdin line (a short reason, a sentence saying it and how to fix it), or None."""
    if not text.strip():
        return "blank line", "is blank: every line is one text to classify. Remove blank lines"
    if "\0" in text:
        return ("binary data (a NUL byte)", "holds a NUL byte: stdin looks like binary data (a file piped in?), "
                "not lines of text. Pipe text, one per line, or pass files as arguments")
    return None


def in_input_order(rows: list[dict], parts: list[Dataset]) -> list[dict]:
    """Predicted rows (those of ``parts``, in order) with a row for each skipped input at its place: among its
    own argument's rows, before the first that comes after it (names compared with their numbers as numbers, so
    "t.csv line 9" comes before "t.csv line 10"). Predicted rows keep their order."""
    out, start = [], 0
    for part in parts:
        predicted, start = rows[start:start + len(part)], start + len(part)
        skipped = sorted(({"input": s.origin, "skipped": s.reason} for s in part.skipped), key=_place)
        out.extend(heapq.merge(predicted, skipped, key=_place))
    return out


def _place(row: dict) -> list:
    """A row's input name as text and numbers: the key that puts "line 9" before "line 10"."""
    return [int(chunk) if i % 2 else chunk for i, chunk in enumerate(re.split(r"([0-9]+)", row["input"]))]




def write_csv(rows: list[dict], classes: list[str], skip_bad: bool, raw: bool, top_k: int | None = None,
              answer: str = "label") -> None:
    """CSV on stdout: input, text (for texts, whole), the answer (``label``; multi-label: ``labels`` above their
    thresholds, joined by ``|``; regression: ``value``), one probability per class, or with ``top_k`` the k
    most probable classes as label_1, p_1, ... (+ skipped with skip_bad)."""
    text = any(r.get("text") is not None for r in rows)  # the run's rows carry their texts
    cell = (lambda v: v) if raw else neutralise
    k = min(top_k, len(classes)) if top_k else 0
    scores = [name for i in range(1, k + 1) for name in (f"label_{i}", f"p_{i}")] if k else [f"p_{c}" for c in classes]
    writer = csv.writer(sys.stdout)
    writer.writerow(["input"] + (["text"] if text else []) + [answer] + scores + (["skipped"] if skip_bad else []))
    for r in rows:
        shown = [cell(r.get("text", ""))] if text else []
        if "top_k" in r:
            probs = [v for t in r["top_k"] for v in (cell(t["label"]), f"{t['probability']:.6f}")]
        elif "probabilities" in r:
            probs = [f"{r['probabilities'][c]:.6f}" for c in classes]
        else:
            probs = [""] * len(scores)
        value = r.get(answer, "")
        value = f"{value:.6g}" if isinstance(value, float) else cell("|".join(value) if isinstance(value, list)
                                                                      else value)
        writer.writerow([cell(r["input"]), *shown, value, *probs]
                        + ([r.get("skipped", "")] if skip_bad else []))


def neutralise(value: str) -> str:
    """A cell that a spreadsheet would run as a formula, prefixed with ``'`` so it stays text."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
