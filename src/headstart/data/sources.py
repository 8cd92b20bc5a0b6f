"""Turning any accepted source (path, DataFrame, (items, labels), list of items) into a Dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from headstart.data.dataset import Dataset
from headstart.data.audio import is_audio_name
from headstart.data.folders import read_folder
from headstart.data.hf import column_values, hf_dataset, is_hf_column, is_hf_dataset
from headstart.data.images import is_image_name, pixel_problem, to_uint8
from headstart.data.items import Gate, build_dataset, normalize_label, read_text_file
from headstart.data.tables import TABLE_EXTENSIONS, Columns, frame_table, read_table, table_dataset
from headstart.core.errors import DataError

SEQUENCES = (list, tuple, pd.Series, np.ndarray, Sequence)  # Sequence: a datasets Column, among others
ACCEPTED = (
    "a folder laid out as <folder>/<class>/<files>, a table file "
    f"({', '.join(TABLE_EXTENSIONS)}), a pandas DataFrame, a Hugging Face datasets.Dataset, "
    "or a pair (items, labels)"
)
FILE_SUFFIXES = frozenset({*TABLE_EXTENSIONS, ".txt"})


def read_source(source: Any, *, labelled: bool, columns: Columns, gate: Gate, role: str) -> Dataset:
    """Dataset from ``source``; ``role`` ('train', 'val', 'test', 'input') is used in messages."""
    prefix = "" if role in ("train", "input") else f"{role} "
    if isinstance(source, pd.DataFrame):
        table = frame_table(source, f"{prefix}DataFrame", None)
        return table_dataset(table, columns, gate, labelled)
    if is_hf_dataset(source):
        return hf_dataset(source, columns, gate, labelled, f"{prefix}Dataset")
    if not labelled and gate.modality == "text" and isinstance(source, str) and is_text_not_path(source):
        return _list_dataset([source], None, prefix, gate, role)  # predict("some text") on a text model
    if isinstance(source, (str, os.PathLike)):
        return _read_path(Path(source), str(source), labelled, columns, gate, role)
    if is_pair(source):
        return _pair_dataset(source[0], source[1], prefix, gate, role)
    if labelled:
        raise DataError(
            f"The {role} data is a {type(source).__name__}, which carries no labels. "
            f"Pass {ACCEPTED}."
        )
    if _is_single_image(source):
        source = [source]
    if (isinstance(source, SEQUENCES) or is_hf_column(source)) and not isinstance(source, (str, bytes)):
        return _list_dataset(as_items(source), None, prefix, gate, role)
    raise DataError(
        f"Cannot read inputs from a {type(source).__name__}. Pass image files or a folder, a "
        "table file, a DataFrame, a datasets.Dataset, or a list of texts, image paths, PIL images "
        "or numpy image arrays."
    )


def is_pair(source: Any) -> bool:
    """True if ``source`` looks like (items, labels): two sequences, the second one-dimensional."""
    if not isinstance(source, (tuple, list)) or len(source) != 2:
        return False
    items, labels = source
    if isinstance(items, (str, bytes)) or not (isinstance(items, SEQUENCES) or is_hf_column(items)):
        return False
    if isinstance(labels, np.ndarray):
        return labels.ndim == 1
    return isinstance(labels, (list, tuple, pd.Series)) or is_hf_column(labels)


def is_text_not_path(source: str) -> bool:
    """True if a string given as inputs to a text model is a text to classify rather than a file name.

    It is a file name if that file or folder exists, or if it is one word ending in a file suffix that
    headstart reads (a table, .txt, an image) or holding a path separator; then a missing one is an error.
    """
    if os.path.exists(source):
        return False
    word = source.strip()
    if not word or any(c.isspace() for c in word):
        return True
    suffix = os.path.splitext(word)[1].lower()
    return not (suffix in FILE_SUFFIXES or is_image_name(word) or "/" in word or os.sep in word)


def as_items(values: Any) -> list:
    """A list of items from a sequence: a datasets Column's values (class names for ClassLabel), or the
    images of a numeric array stack (N x H x W[ x C]) scaled to uint8 as a whole (see ``to_uint8``)."""
    if is_hf_column(values):
        return column_values(values)
    if isinstance(values, np.ndarray) and values.ndim in (3, 4) and values.dtype.kind in "uif":
        if pixel_problem(values) is None:
            values = to_uint8(values)
    return list(values)


def _is_single_image(source: Any) -> bool:
    """True for one PIL image or one HxW / HxWxC array."""
    if isinstance(source, Image.Image):
        return True
    return isinstance(source, np.ndarray) and (
        source.ndim == 2 or (source.ndim == 3 and source.shape[-1] in (1, 3, 4))
    )


def _read_path(
    path: Path, shown: str, labelled: bool, columns: Columns, gate: Gate, role: str
) -> Dataset:
    """Dataset from a folder, a table file or (for inputs) one image or .txt file."""
    if not path.exists():
        raise DataError(
            f"{shown}: no such file or folder (given as the {role} data). Check the path."
        )
    if path.is_dir():
        return read_folder(path, shown, gate, labelled)
    suffix = path.suffix.lower()
    if suffix in TABLE_EXTENSIONS:
        return table_dataset(read_table(path, shown, gate), columns, gate, labelled)
    if not labelled and is_image_name(path.name):
        return build_dataset([os.path.abspath(path)], None, [shown], "image", gate)
    if not labelled and is_audio_name(path.name):
        return build_dataset([os.path.abspath(path)], None, [shown], "audio", gate)
    if not labelled and suffix == ".txt":
        return build_dataset([read_text_file(path)], None, [shown], "text", gate)
    wanted = ACCEPTED if labelled else "an image, a sound file, a .txt file, a folder or a table file"
    raise DataError(
        f"{shown}: cannot read a '{suffix or 'no extension'}' file as {role} data. Pass {wanted}."
    )


def _pair_dataset(items: Any, labels: Any, prefix: str, gate: Gate, role: str) -> Dataset:
    """Dataset from (items, labels) with one label per item."""
    items, labels = as_items(items), as_items(labels)
    if len(items) != len(labels):
        raise DataError(
            f"The {role} (items, labels) pair has {len(items)} items but {len(labels)} labels. "
            "Give exactly one label per item."
        )
    return _list_dataset(items, [normalize_label(label) for label in labels], prefix, gate, role)


def _list_dataset(items: list, labels: list | None, prefix: str, gate: Gate, role: str) -> Dataset:
    """Dataset from in-memory items: texts, or image paths / PIL images / numpy image arrays."""
    if not items:
        raise DataError(f"The {role} data is an empty list; give at least one item.")
    kinds = [_item_kind(item) for item in items]
    origins = [f"{prefix}list item {i}" for i in range(1, len(items) + 1)]
    if "image" in kinds and "text" in kinds:
        first_image, first_text = kinds.index("image"), kinds.index("text")
        raise DataError(
            f"The {role} data mixes modalities: {origins[first_image]} is an image "
            f"({str(items[first_image])[:60]!r}) but {origins[first_text]} is a text "
            f"({str(items[first_text])[:60]!r}). Give only texts or only images (paths "
            f"ending in an image extension, PIL images or numpy image arrays)."
        )
    if "audio" in kinds and len(set(kinds) - {None}) > 1:
        other = next(i for i, kind in enumerate(kinds) if kind not in ("audio", None))
        raise DataError(
            f"The {role} data mixes modalities: {origins[kinds.index('audio')]} is a sound file but "
            f"{origins[other]} is {'an image' if kinds[other] == 'image' else 'a text'}. Give only one kind."
        )
    modality = "audio" if "audio" in kinds else "image" if "image" in kinds else "text"
    if modality in ("image", "audio"):
        items = [os.path.abspath(i) if isinstance(i, (str, os.PathLike)) else i for i in items]
    return build_dataset(items, labels, origins, modality, gate)


def _item_kind(item: Any) -> str | None:
    """'image', 'text' or None (missing, fits either) for one in-memory item."""
    if item is None or (isinstance(item, float) and np.isnan(item)):
        return None
    if isinstance(item, (str, os.PathLike)) and "\n" not in str(item) and is_audio_name(str(item).strip()):
        return "audio"
    if isinstance(item, (Image.Image, np.ndarray, os.PathLike)):
        return "image"
    if isinstance(item, str) and "\n" not in item and is_image_name(item.strip()):
        return "image"
    return "text"
