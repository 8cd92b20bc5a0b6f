"""Hugging Face ``datasets`` objects as sources: a ``Dataset`` (columns chosen by name, like a table's) and
its ``Column`` objects. ``datasets`` is never imported here: its objects are recognised by their surface
(``column_names`` and ``features``), so headstart works without it installed.

Columns are chosen as for tables (``text_col``, ``image_col``, ``label_col``, else the default names); an
``Image`` feature column is the image column when no column was named and none has a text name. A
``ClassLabel`` column gives its class names, and its -1 (no label) counts as a missing label. Images come
as PIL images (decoded by ``datasets``), as ``{"bytes", "path"}`` records (an ``Image(decode=False)``
feature), or as paths relative to the working directory.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from headstart.data.dataset import Dataset
from headstart.data.items import Gate
from headstart.data.tables import TEXT_COLUMNS, Columns, Table, choose_columns, table_dataset
from headstart.core.errors import DataError


def is_hf_dataset(source: Any) -> bool:
    """True for a ``datasets.Dataset`` (or a ``DatasetDict``, which ``hf_dataset`` refuses with advice)."""
    names = getattr(source, "column_names", None)
    return isinstance(names, (list, dict)) and (isinstance(names, dict) or hasattr(source, "features"))


def is_hf_column(source: Any) -> bool:
    """True for a ``datasets`` Column (``ds["text"]``): a sequence that knows its name and feature."""
    return hasattr(source, "column_name") and hasattr(source, "features") and hasattr(source, "__len__")


def hf_dataset(source: Any, columns: Columns, gate: Gate, labelled: bool, shown: str) -> Dataset:
    """Dataset from a ``datasets.Dataset``: rows named "``shown`` row N", counting from 1."""
    if isinstance(source.column_names, dict):
        splits = ", ".join(repr(name) for name in source.column_names)
        raise DataError(f"The {shown} is a DatasetDict with splits {splits}; pass one split, e.g. ds['train'] "
                        "(and ds['validation'] as val=).")
    header = Table(shown, tuple(source.column_names), (), (), None)
    if not header.columns:
        raise DataError(f"The {shown} has no columns; give a dataset with a text or image column.")
    features = dict(source.features)
    images = [name for name, feature in features.items() if type(feature).__name__ == "Image"]
    named_text = {c.lower() for c in header.columns} & set(TEXT_COLUMNS)
    if images and not (columns.text or columns.image or columns.of_run("text", header) or named_text):
        columns = Columns(image=images[0], label=columns.label, run=columns.run)
    modality, item_col, label_col = choose_columns(header, columns, labelled)
    wanted = [item_col] + ([label_col] if label_col and label_col != item_col else [])
    picked = source.select_columns(wanted) if hasattr(source, "select_columns") else source
    names = class_names(features.get(label_col)) if label_col else None
    rows = []
    for row in picked:
        row = {name: row[name] for name in wanted}
        if modality == "image":
            row[item_col] = image_value(row[item_col])
        if names is not None:
            row[label_col] = class_name(row[label_col], names)
        rows.append(row)
    if not rows:
        raise DataError(f"The {shown} has no rows; add one example per row.")
    table = Table(shown, tuple(wanted), tuple(rows), tuple(f"{shown} row {i}" for i in range(1, len(rows) + 1)),
                  None)
    chosen = Columns(text=item_col if modality == "text" else None,
                     image=item_col if modality == "image" else None, label=label_col)
    return table_dataset(table, chosen, gate, labelled)


def column_values(column: Any) -> list:
    """The values of a ``datasets`` Column; ClassLabel integers become their class names."""
    names = class_names(getattr(column, "features", None))
    values = list(column)
    return values if names is None else [class_name(v, names) for v in values]


def class_names(feature: Any) -> list[str] | None:
    """A ClassLabel feature's names, else None."""
    names = getattr(feature, "names", None)
    return list(names) if isinstance(names, (list, tuple)) and type(feature).__name__ == "ClassLabel" else None


def class_name(value: Any, names: list[str]) -> Any:
    """The name of a ClassLabel integer; -1 (datasets' "no label") and other out-of-range values are None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return names[value] if 0 <= value < len(names) else None
    return value


def image_value(value: Any) -> Any:
    """A PIL image from an undecoded ``{"bytes", "path"}`` record (its path when it has no bytes), else the
    value itself (a PIL image, an array or a path string)."""
    if not isinstance(value, dict):
        return value
    if value.get("bytes"):
        try:
            image = Image.open(io.BytesIO(value["bytes"]))
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"cannot decode the image bytes of {value.get('path') or 'a row'} ({exc}). "
                            "Re-save it as PNG or JPEG, or remove the row.") from exc
        return image
    return value.get("path")
