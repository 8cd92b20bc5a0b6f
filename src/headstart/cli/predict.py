"""`headstart predict`: labels and probabilities for new inputs from a saved run.

CSV cells that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) get a leading ``'``, as OWASP recommends; ``--raw`` writes them as they are.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import re
import sys
import textwrap
from pathlib import Path
from typing import Iterable, Iterator, Optional, TextIO

import typer

from headstart.data import Dataset, Skipped, load_items
from headstart.data.dataset import modality as data_modality
from headstart.data.items import decode_text
from headstart.data.sources import is_text_not_path
from headstart.tasks.kinds import kind
from headstart.core.errors import ConfigError, DataError
from headstart.core.fileio import to_json

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
    # lazy: `--help` need not load torch; and not headstart.api, which imports every workflow (start-up time)
    from headstart.runs.folder import load_predictor

    predictor = load_predictor(run)
    task = kind(predictor.task.name)
    if top_k is not None and not task.has_classes:
        raise ConfigError(f"--top-k ranks classes, and {run} is a regression model (one value per input); drop it.")
    if not inputs or inputs == ["-"]:
        if sys.stdin.isatty():
            print("reading texts from stdin, one per line; end with Ctrl-D (or pass files: headstart predict "
                  "--help)", file=sys.stderr)
        parts: Iterable[Dataset] = stdin_parts(stdin_lines(sys.stdin), skip_bad, batch_size)
    else:
        modality = predictor.backbone.modality
        parts = [load_items(arg, text_col=text_col, image_col=image_col, skip_bad=skip_bad, modality=modality,
                            run_columns=predictor.columns) for arg in inputs]
        parts = [dataclasses.replace(part, origins=[f"argument {n}"])  # a text given on the command line
                 if data_modality(modality).texts and is_text_not_path(arg) else part
                 for n, (arg, part) in enumerate(zip(inputs, parts), 1)]
    rows = streamed_rows(predictor, parts, device, batch_size, top_k, skip_bad)
    if json_out:
        write_json_rows(rows)
        return
    write_csv(rows, predictor.classes if task.has_classes else [], skip_bad, raw, top_k, task.answer,
              text=data_modality(predictor.backbone.modality).texts)


def streamed_rows(predictor, parts: Iterable[Dataset], device: str, batch_size: int, top_k: int | None,
                  skip_bad: bool) -> Iterator[dict]:
    """Each part's rows, one batch of ``batch_size`` inputs at a time (memory holds one batch, whatever the
    inputs' number), in input order; with ``skip_bad`` a row for each skipped input at its place (see
    :func:`in_input_order`). Skipped inputs are also listed on stderr, each part's before its rows."""
    from headstart.runs.folder import keep_top

    for part in parts:
        for skipped in part.skipped:  # on stderr: stdout stays a clean table
            print(f"skipped {skipped.origin}: {skipped.reason}", file=sys.stderr)
        batches = (part.subset(range(start, min(len(part), start + batch_size)))
                   for start in range(0, len(part), batch_size))
        rows: Iterable[dict] = (row for batch in batches
                                for row in predictor.predict(batch, device=device, batch_size=batch_size))
        if top_k is not None:
            rows = (keep_top(row, top_k) for row in rows)
        yield from in_input_order(rows, part) if skip_bad else rows


def stdin_lines(stream: TextIO) -> Iterator[str]:
    """The lines of ``stream`` (stdin) as they arrive, each line's bytes decoded as the file readers do (UTF-8,
    else latin-1) whatever the locale says; a line ends at ``\\n``, ``\\r\\n`` or ``\\r``. A stream that has no
    bytes underneath gives its text lines."""
    raw = getattr(stream, "buffer", None)
    for line in raw if raw is not None else stream:
        newline, ret = (b"\n", b"\r") if isinstance(line, bytes) else ("\n", "\r")
        line = line[:-1] if line.endswith(newline) else line
        line = line[:-1] if line.endswith(ret) else line
        for piece in line.split(ret):
            yield decode_text(piece) if isinstance(piece, bytes) else piece


def stdin_parts(lines: Iterable[str], skip_bad: bool, size: int) -> Iterator[Dataset]:
    """:func:`stdin_dataset`'s texts in parts of at most ``size`` lines, each part given as soon as its lines
    have been read (rows can be written while later lines are still being typed or piped in); lines are
    numbered across parts."""
    pending: list[str] = []
    blank: list[str] = []  # blank lines held back: at the very end they are not inputs
    first, any_input = 1, False
    for line in lines:
        if not line.strip("\r\n").strip():
            blank.append(line)
            continue
        pending += blank + [line]
        blank = []
        if len(pending) >= size:
            yield stdin_dataset(pending, skip_bad, first)
            first, pending, any_input = first + len(pending), [], True
    if pending or not any_input:
        yield stdin_dataset(pending, skip_bad, first)


def stdin_dataset(lines: Iterable[str], skip_bad: bool, first: int = 1) -> Dataset:
    """One text per line, named "stdin line N" (N from ``first``); a blank line or one holding a NUL byte (binary
    data, not text) is an error, or skipped with ``skip_bad``.

    Blank lines at the very end (an editor's trailing newline) are not inputs.
    """
    lines = [line.rstrip("\r\n") for line in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    texts, origins, skipped = [], [], []
    for n, text in enumerate(lines, first):
        origin, problem = f"stdin line {n}", _line_problem(text)
        if problem is None:
            texts.append(text)
            origins.append(origin)
        elif skip_bad:
            skipped.append(Skipped(origin, problem[0]))
        else:
            raise DataError(f"{origin} {problem[1]}, or pass --skip-bad to give such lines a row marked skipped.")
    if not texts and not skipped and first == 1:
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


def in_input_order(rows: Iterable[dict], part: Dataset) -> Iterator[dict]:
    """``part``'s predicted rows (in order) with a row for each of its skipped inputs at its place: before the
    first row that comes after it (names compared with their numbers as numbers, so "t.csv line 9" comes before
    "t.csv line 10"). Predicted rows keep their order."""
    skipped = sorted(({"input": s.origin, "skipped": s.reason} for s in part.skipped), key=_place)
    return heapq.merge(rows, skipped, key=_place)


def _place(row: dict) -> list:
    """A row's input name as text and numbers: the key that puts "line 9" before "line 10"."""
    return [int(chunk) if i % 2 else chunk for i, chunk in enumerate(re.split(r"([0-9]+)", row["input"]))]


def write_csv(rows: Iterable[dict], classes: list[str], skip_bad: bool, raw: bool, top_k: int | None = None,
              answer: str = "label", text: bool = False) -> None:
    """CSV on stdout, each row written (and flushed) as it comes: input, text (with ``text``: texts, whole), the
    answer (``label``; multi-label: ``labels`` above their thresholds, joined by ``|``; regression: ``value``),
    one probability per class, or with ``top_k`` the k most probable classes as label_1, p_1, ... (+ skipped
    with skip_bad)."""
    cell = (lambda v: v) if raw else neutralise
    k = min(top_k, len(classes)) if top_k else 0
    scores = [name for i in range(1, k + 1) for name in (f"label_{i}", f"p_{i}")] if k else [f"p_{c}" for c in classes]
    writer = csv.writer(sys.stdout)
    header = ["input"] + (["text"] if text else []) + [answer] + scores + (["skipped"] if skip_bad else [])
    written = False
    for r in rows:
        if not written:  # with the first row: a run that fails on its first batch prints nothing
            writer.writerow(header)
            written = True
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
        sys.stdout.flush()
    if not written:
        writer.writerow(header)


def write_json_rows(rows: Iterable[dict]) -> None:
    """The rows as one JSON array on stdout (as ``print_json`` writes a list), each row written as it comes."""
    out, opened = sys.stdout, False
    for row in rows:
        out.write(",\n" if opened else "[\n")
        out.write(textwrap.indent(to_json(row, indent=2, default=str), "  "))
        out.flush()
        opened = True
    out.write("\n]\n" if opened else "[]\n")


def neutralise(value: str) -> str:
    """A cell that a spreadsheet would run as a formula, prefixed with ``'`` so it stays text."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
