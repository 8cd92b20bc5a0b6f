"""Reading tables (.csv, .tsv, .jsonl/.ndjson, .parquet, DataFrames) into Datasets.

Row numbering in messages: CSV/TSV say "line N" as a text editor or spreadsheet shows it (the
header is line 1, so the first data row is line 2; a quoted multi-line cell counts from the line
it starts on); JSONL says "line N" (the first line is line 1); Parquet files and DataFrames say
"row N", counting data rows from 1.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from headstart.data.audio import is_audio_name
from headstart.data.dataset import Dataset, modality_plural
from headstart.data.items import Gate, build_dataset, normalize_label, normalize_value, read_text_file
from headstart.core.errors import ConfigError, DataError, option

TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "y")
TEXT_COLUMNS = ("text", "sentence", "content", "review", "document", "body")
IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filename", "audio", "audio_path")  # file paths


@dataclass(frozen=True)
class Table:
    """A table's rows as dicts, each row's origin, and the folder image paths resolve against."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    origins: tuple[str, ...]
    folder: str | None


@dataclass(frozen=True)
class Columns:
    """Column names the user chose (None: use the defaults).

    ``run`` holds a run's own column names (``{"text": "body", "label": "queue"}``): where the user chose no
    column, a table that has the run's column is read by it before the default names are tried.
    """

    text: str | None = None
    image: str | None = None
    label: str | None = None
    run: tuple[tuple[str, str], ...] = ()

    def of_run(self, role: str, table: "Table") -> str | None:
        """The run's column for ``role`` ('text', 'image', 'label') when ``table`` has it, else None."""
        name = dict(self.run).get(role)
        return name if name in table.columns else None


def read_table(path: Path, shown: str, gate: Gate) -> Table:
    """Read a .csv/.tsv/.jsonl/.ndjson/.parquet file; image paths resolve against its folder."""
    suffix = path.suffix.lower()
    folder = os.path.abspath(path.parent)
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a damaged file
            raise DataError(
                f"{shown}: cannot read this Parquet file ({exc}). Check that it is a valid "
                "Parquet file, or export the data as CSV."
            ) from exc
        return frame_table(frame, shown, folder)
    text = read_text_file(path)
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_table(text, shown, folder, gate)
    return _delimited_table(text, "\t" if suffix == ".tsv" else ",", shown, folder, gate)


def frame_table(frame: pd.DataFrame, shown: str, folder: str | None) -> Table:
    """Table from a DataFrame; origins are '<shown> row N' counting from 1."""
    columns = tuple(str(column) for column in frame.columns)
    if len(set(columns)) != len(columns):
        raise DataError(f"{shown}: some column names repeat ({list(columns)}); rename them.")
    if frame.empty:
        raise DataError(f"{shown}: it has no rows (columns {list(columns)}). Add one example per row.")
    rows = tuple(dict(zip(columns, values)) for values in frame.itertuples(index=False, name=None))
    origins = tuple(f"{shown} row {i}" for i in range(1, len(rows) + 1))
    return Table(shown, columns, rows, origins, folder)


@contextmanager
def _field_limit(size: int) -> Iterator[None]:
    """Let the csv module read fields of up to ``size`` characters within the block, then restore its limit.

    Its default (131072) refuses long texts in valid files; no field can be longer than the file that holds it,
    so its length is a limit that never refuses one. The limit is process-wide, hence restored at once.
    """
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, min(size, 2**31 - 1)))  # a C long, also where that is 32 bits
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _delimited_table(text: str, delimiter: str, shown: str, folder: str, gate: Gate) -> Table:
    """Table from CSV/TSV text whose first line is the header."""
    with _field_limit(len(text) + 1):
        return _read_delimited(text, delimiter, shown, folder, gate)


def _read_delimited(text: str, delimiter: str, shown: str, folder: str, gate: Gate) -> Table:
    """``_delimited_table`` once the field limit is raised."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    skipped_before = len(gate.skipped)
    try:
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise DataError(
                f"{shown}: the file is empty or its first line is blank. The first line must be "
                "a header naming the columns, e.g. text,label, with one example per line below."
            )
        columns = tuple(cell.strip() for cell in header)
        _check_unique(columns, shown)
        rows, origins, last_line = [], [], reader.line_num
        for cells in reader:
            start, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            origin = f"{shown} line {start}"
            if len(cells) > len(columns):
                gate.reject(
                    origin,
                    f"it has {len(cells)} fields but the header has {len(columns)}",
                    "Put quotes around values that contain the delimiter",
                )
                continue
            cells = cells + [""] * (len(columns) - len(cells))
            rows.append(dict(zip(columns, cells)))
            origins.append(origin)
    except csv.Error as exc:
        raise DataError(
            f"{shown} line {reader.line_num}: cannot parse this line ({exc}). Fix the quoting."
        ) from exc
    if not rows and len(gate.skipped) == skipped_before:
        raise DataError(
            f"{shown}: it has a header ({', '.join(columns)}) but no data rows. Add one example per "
            "line below the header."
        )
    return Table(shown, columns, tuple(rows), tuple(origins), folder)


def _jsonl_table(text: str, shown: str, folder: str, gate: Gate) -> Table:
    """Table from JSON Lines text: one JSON object per line; blank lines are ignored."""
    rows, origins, columns = [], [], {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        origin = f"{shown} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            gate.reject(origin, f"this line is not valid JSON ({exc.msg})", "Fix the line")
            continue
        if not isinstance(row, dict):
            gate.reject(origin, "this line is not a JSON object", 'Write it as {"text": ..}')
            continue
        columns.update(dict.fromkeys(row))
        rows.append(row)
        origins.append(origin)
    return Table(shown, tuple(columns), tuple(rows), tuple(origins), folder)


def _check_unique(columns: tuple[str, ...], shown: str) -> None:
    """DataError if a column name appears twice in a header."""
    repeated = sorted(name for name, count in Counter(columns).items() if count > 1)
    if repeated:
        raise DataError(
            f"{shown}: the header names column(s) {', '.join(map(repr, repeated))} more than "
            "once. Give every column a distinct name."
        )


def table_dataset(table: Table, columns: Columns, gate: Gate, need_labels: bool) -> Dataset:
    """Dataset from a table: texts or image paths, plus labels when ``need_labels`` (inputs ignore them)."""
    modality, item_col, label_col = choose_columns(table, columns, need_labels)
    labels = None
    if label_col is not None:
        labels = [_label(row.get(label_col), origin, label_col) for row, origin in zip(table.rows, table.origins)]
    values = [row.get(item_col) for row in table.rows]
    origins = list(table.origins)
    if modality == "image" and _sound_paths(values):
        modality = "audio"  # a file column of sound files (the image column's option names it)
    if modality in ("image", "audio"):
        values = _image_items(values, origins, labels, item_col, table.folder, gate)
        if labels is not None:
            labels = [label for label, value in zip(labels, values) if value is not None]
        origins = [origin for origin, value in zip(origins, values) if value is not None]
        values = [value for value in values if value is not None]
    return build_dataset(
        values,
        labels,
        origins,
        modality,
        gate,
        where=f" in column '{item_col}'",
        label_where=f" in column '{label_col}'",
    )


def _label(value: Any, origin: str, column: str) -> Any:
    """One row's label (``items.normalize_label``); a malformed one is a DataError naming the row and column."""
    try:
        return normalize_label(value)
    except DataError as exc:
        raise DataError(f"{origin}: the label in column '{column}' {exc}") from None


def choose_columns(table: Table, columns: Columns, need_labels: bool) -> tuple[str, str, str | None]:
    """``(modality, item column, label column)`` of a table; only its name and columns are read. Without
    ``need_labels`` (inputs to predict) the label column is None: a table's labels are never read then."""
    if columns.text and columns.image:
        raise ConfigError(
            f"Pass only one of {option('text_col')} and {option('image_col')}, not both."
        )
    label = columns.label or columns.of_run("label", table)
    label_col = _pick(table, label, LABEL_COLUMNS, "label_col", "label", True) if need_labels else None
    modality, item_col = _item_column(table, columns)
    if label_col == item_col:
        if need_labels or columns.label:
            raise ConfigError(_same_column(table, item_col, modality, columns))
        label_col = None  # inputs only: the column holds the items, not labels
    return modality, item_col, label_col


def _same_column(table: Table, column: str, modality: str, columns: Columns) -> str:
    """Why one column cannot hold both the items and their labels, and which option to change."""
    item_option = option("image_col" if modality == "image" else "text_col")
    item_how = f"{item_option} names it" if columns.text or columns.image else f"a default {modality} column name"
    label_how = f"{option('label_col')} names it" if columns.label else "a default label column name"
    return (f"{table.name}: column '{column}' would hold both the {modality_plural(modality)} ({item_how}) and "
            f"their labels ({label_how}): the model would be shown its own answers. Pass {option('label_col')} "
            f"with the column that holds the labels and {item_option} with the one that holds the "
            f"{modality_plural(modality)}; the columns are {list(table.columns)}.")


def _sound_paths(values: list) -> bool:
    """True when most non-empty values of a file column are paths of sound files."""
    paths = [str(v).strip() for v in values if isinstance(v, str) and v.strip()]
    return bool(paths) and sum(map(is_audio_name, paths)) * 2 > len(paths)


def _pick(
    table: Table, wanted: str | None, defaults: tuple, argument: str, role: str, required: bool
) -> str | None:
    """The column to use: the one asked for (``argument``, e.g. label_col), or the first default present."""
    if wanted is not None:
        if wanted not in table.columns:
            raise DataError(
                f"{table.name}: there is no column '{wanted}'; the columns are "
                f"{list(table.columns)}. Pass {option(argument)} with one of these names."
            )
        return wanted
    by_lower = {}
    for column in table.columns:
        by_lower.setdefault(column.lower(), column)
    for name in defaults:
        if name in by_lower:
            return by_lower[name]
    if required:
        raise DataError(
            f"{table.name}: no {role} column found (looked for {', '.join(defaults)}); the "
            f"columns are {list(table.columns)}. Pass {option(argument)} to say which column holds "
            f"the {role}s."
        )
    return None


def _item_column(table: Table, columns: Columns) -> tuple[str, str]:
    """('text' | 'image', column name) for the items of the table."""
    if columns.text:
        return "text", _pick(table, columns.text, TEXT_COLUMNS, "text_col", "text", True)
    if columns.image:
        return "image", _pick(table, columns.image, IMAGE_COLUMNS, "image_col", "image", True)
    for modality in ("text", "image"):
        if columns.of_run(modality, table):
            return modality, columns.of_run(modality, table)
    text_col = _pick(table, None, TEXT_COLUMNS, "text_col", "text", False)
    image_col = _pick(table, None, IMAGE_COLUMNS, "image_col", "image", False)
    if text_col and image_col:
        raise DataError(
            f"{table.name}: mixed modalities: it has a text column '{text_col}' and an image "
            f"column '{image_col}'. Pass {option('text_col', text_col)} to use the texts or "
            f"{option('image_col', image_col)} to use the images."
        )
    if text_col:
        return "text", text_col
    if image_col:
        return "image", image_col
    raise DataError(
        f"{table.name}: no text or image column found (looked for {', '.join(TEXT_COLUMNS)} and "
        f"{', '.join(IMAGE_COLUMNS)}); the columns are {list(table.columns)}. Pass "
        f"{option('text_col')} or {option('image_col')} with the column's name."
    )


def _image_items(
    values: list, origins: list, labels: list | None, column: str, folder: str | None, gate: Gate
) -> list:
    """Absolute image paths (or in-memory images) per row; None where the row was skipped."""
    items: list = []
    for index, (value, origin) in enumerate(zip(values, origins)):
        if isinstance(value, (Image.Image, np.ndarray)):
            items.append(value)
            continue
        if labels is not None and labels[index] is None:
            items.append(value)  # build_dataset reports the missing label
            continue
        path = normalize_value(value)
        if path is None:
            gate.reject(
                origin,
                f"the image path in column '{column}' is empty",
                "Fill it in or drop the row",
            )
            items.append(None)
            continue
        resolved, link = _inside(path, folder)
        if resolved is None:
            how = f"is a link to {link}, which is" if link else "points"
            gate.reject(
                origin,
                f"the image path '{path}' {how} outside the table's folder {folder}",
                "Image paths must be relative to the table's folder and stay inside it, links "
                "included; move the image into that folder and fix the path",
            )
            items.append(None)
            continue
        items.append(resolved)
    return items


def _inside(path: str, folder: str | None) -> tuple[str | None, str | None]:
    """(absolute path of ``path`` relative to ``folder``, None), or (None, the real path) if it escapes
    the folder: by its name (real path None) or through a symbolic link (the real path it leads to)."""
    if folder is None:
        return os.path.abspath(path), None
    joined = os.path.normpath(os.path.join(folder, path))
    if not _within(joined, folder):
        return None, None
    try:
        real = os.path.realpath(joined)
    except (OSError, ValueError):  # a NUL byte, a link loop: no such file, which the image check reports
        return joined, None
    if not _within(real, os.path.realpath(folder)):
        return None, real
    return joined, None


def _within(path: str, folder: str) -> bool:
    """True if ``path`` is ``folder`` or below it (both absolute and normalised)."""
    try:
        return os.path.commonpath([folder, path]) == folder
    except ValueError:  # different drives on Windows
        return False
