"""Per-item checks shared by every reader: labels present, texts non-empty, images decodable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from headstart.data.audio import audio_file_problem
from headstart.data.dataset import Dataset, Skipped
from headstart.data.images import array_problem, array_to_image, image_file_problem
from headstart.core.errors import DataError, option

SKIP_BAD = option("skip_bad", True)


@dataclass(frozen=True)
class Gate:
    """Raises a DataError for a bad item, or with ``skip_bad`` records it in ``skipped``."""

    skip_bad: bool
    skipped: list[Skipped] = field(default_factory=list)
    modality: str | None = None  # inputs for a model of this modality: a folder's other files are skipped

    def reject(self, origin: str, problem: str, fix: str) -> None:
        """Refuse one item: ``problem`` says what is wrong, ``fix`` how to repair it."""
        if self.skip_bad:
            self.skipped.append(Skipped(origin=origin, reason=problem))
            return
        raise DataError(f"{origin}: {problem}. {fix}, or pass {SKIP_BAD} to skip such items.")

    def note(self, origin: str, reason: str) -> None:
        """Record something left out whatever ``skip_bad`` says (an empty class folder, a stray file)."""
        self.skipped.append(Skipped(origin=origin, reason=reason))


def normalize_label(value: Any) -> str | tuple[str, ...] | None:
    """Label as a stripped string, or None when missing (None, NaN, empty or blank); a flat list (JSON Lines, a
    Python list, an array) is a tuple of such strings: several labels (see headstart.data.targets)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        if any(isinstance(v, (list, tuple, dict, np.ndarray)) for v in value):
            raise DataError(f"{str(value)[:80]!r} is a nested list; a label list must hold names, e.g. "
                            '["cat", "indoor"]. Fix that row.')
        return tuple(text for text in (normalize_value(v) for v in value) if text is not None)
    return normalize_value(value)


def normalize_value(value: Any) -> str | None:
    """One cell as a stripped string (a whole float as an integer), or None when missing (None, NaN, empty or
    blank)."""
    try:
        missing = value is None or (np.ndim(value) == 0 and pd.isna(value))
    except ValueError as exc:  # a ragged nested list (JSON Lines, object columns): numpy cannot size it
        raise DataError(
            f"{str(value)[:80]!r} is a nested list, not a single value; a label or image path "
            "must be one value per row. Fix that row."
        ) from exc
    if missing:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def read_text_file(path: Path) -> str:
    """Contents of a text file, decoded as ``decode_text`` does."""
    return decode_text(path.read_bytes())


def decode_text(data: bytes) -> str:
    """Bytes of text as UTF-8 (BOM allowed) or else latin-1, which decodes any bytes: what every text reader
    (files, tables, stdin) does."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def build_dataset(
    items: Sequence[Any],
    labels: Sequence[str | None] | None,
    origins: Sequence[str],
    modality: str,
    gate: Gate,
    *,
    where: str = "",
    label_where: str = "",
) -> Dataset:
    """Check every item (and label) and return a Dataset of the good ones.

    ``where`` / ``label_where`` name the table column in messages, e.g. " in column 'text'".
    """
    kept: list[int] = []
    converted: list[Any] = []
    for index, (item, origin) in enumerate(zip(items, origins)):
        if labels is not None and labels[index] is None:
            gate.reject(origin, f"the label{label_where} is missing", "Fill it in or drop the row")
            continue
        item, problem, fix = _check_item(item, modality, where)
        if problem:
            gate.reject(origin, problem, fix)
            continue
        kept.append(index)
        converted.append(item)
    return Dataset(
        items=converted,
        labels=None if labels is None else [labels[i] for i in kept],
        modality=modality,
        origins=[origins[i] for i in kept],
    )


def _missing(value: Any) -> bool:
    """True for None and for a scalar that pandas counts as missing (NaN, pandas.NA, NaT)."""
    if value is None:
        return True
    try:
        return np.ndim(value) == 0 and bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _check_item(item: Any, modality: str, where: str) -> tuple[Any, str | None, str]:
    """The item ready for use, or a problem and a fix for it."""
    if modality == "text":
        if _missing(item):
            item = ""
        if not isinstance(item, str):
            shown = str(item) if len(str(item)) <= 40 else str(item)[:39] + "…"
            problem = f"the text{where} is not a string but {type(item).__name__} {shown}"
            return item, problem, "Give the text as a string or remove it"
        if not item.strip():
            return item, f"the text{where} is empty", "Fill it in or remove it"
        return str(item), None, ""  # a plain str, also for numpy's str_
    if modality == "audio":
        if _missing(item):
            return item, f"the audio path{where} is missing", "Give a sound file or remove the item"
        problem = audio_file_problem(str(item))
        return (str(item), None, "") if problem is None else (item, problem[0], problem[1])
    if item is None:
        return item, "the image is missing (None)", "Give an image or remove the item"
    if isinstance(item, Image.Image):
        return item, None, ""
    if isinstance(item, np.ndarray):
        problem = array_problem(item)
        if problem:
            return item, problem, "Give an HxW or HxWx3 array of uint8, or of floats in [0, 1] or [0, 255]"
        return array_to_image(item), None, ""
    problem = image_file_problem(str(item))
    if problem is None:
        return str(item), None, ""
    return item, problem[0], problem[1]
