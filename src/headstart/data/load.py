"""The two entry points: load_data (labelled train/val/test splits) and load_items (inputs)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from headstart.data.dataset import Dataset, DataSplits, Skipped, modality_plural
from headstart.data.folders import split_layout
from headstart.data.items import Gate
from headstart.data.sources import read_source
from headstart.data.split import carve, drop_rare_classes, drop_unseen, strata
from headstart.data.tables import Columns
from headstart.data.targets import TaskChoice, decide_task, parse_labels
from headstart.core.errors import ConfigError, DataError, option


def load_data(
    source: Any,
    *,
    val: Any = None,
    test: Any = None,
    text_col: str | None = None,
    label_col: str | None = None,
    image_col: str | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    skip_bad: bool = False,
    task: str = "auto",
    label_sep: str | None = None,
) -> DataSplits:
    """Load, check and split labelled data; see the package docstring for accepted sources.

    ``task`` (``auto``, ``single-label``, ``multi-label``, ``regression``) and ``label_sep`` say what the labels
    are; ``auto`` decides from all the training labels before any is skipped (see headstart.data.targets).

    A folder with a train/ subfolder supplies its val/ (or validation/) and test/ subfolders as
    splits unless ``val``/``test`` are given. Without a val split, a seeded stratified
    ``val_fraction`` of the training data becomes val; likewise ``test_fraction`` for test.
    With ``skip_bad`` bad items (and classes) are dropped and listed in ``skipped``.
    """
    _check_fractions(val_fraction, test_fraction)
    gate = Gate(skip_bad)
    columns = Columns(text=text_col, image=image_col, label=label_col)
    source, val, test = _split_folders(source, val, test, gate)
    train = _read(source, "train", columns, gate)
    given = {
        role: _read(data, role, columns, gate)
        for role, data in (("val", val), ("test", test))
        if data is not None
    }
    for role, data in given.items():
        if data.modality != train.modality:
            raise DataError(
                f"Mixed modalities: the training data holds {modality_plural(train.modality)} but the {role} "
                f"data holds {modality_plural(data.modality)}. Give {role} data of the same kind as the training data."
            )
    choice = decide_task(task, train.labels, label_sep)
    train = _nonempty(as_task(train, choice, gate, columns.label), "train", gate)
    given = {role: _nonempty(as_task(data, choice, gate, columns.label), role, gate) for role, data in given.items()}
    if choice.task == "single-label":
        train = drop_rare_classes(train, gate)
    classes = train.classes
    _check_targets(train, choice, gate)
    for role in list(given):
        given[role] = _nonempty(drop_unseen(given[role], classes, gate, role), role, gate)
    splits = _assemble(train, given, classes, val_fraction, test_fraction, seed, gate, choice.task)
    splits.split["task"] = choice.to_dict()
    return splits


def as_task(data: Dataset, choice: TaskChoice, gate: Gate, label_col: str | None = None) -> Dataset:
    """``data`` with its labels in ``choice.task``'s form; a bad label is refused, or skipped with skip_bad."""
    where = f" in column '{label_col}'" if label_col else ""
    parsed, bad = parse_labels(choice, data.labels, data.origins, where)
    for index, problem, fix in bad:
        gate.reject(data.origins[index], problem, fix)
    dropped = {index for index, _, _ in bad}
    kept = [i for i in range(len(data)) if i not in dropped]
    skipped = data.skipped + tuple(gate.skipped[-len(bad):] if bad and gate.skip_bad else ())
    return dataclasses.replace(data.subset(kept), labels=tuple(parsed[i] for i in kept), skipped=skipped)


def _check_targets(train: Dataset, choice: TaskChoice, gate: Gate) -> None:
    """DataError unless the training labels can teach ``choice.task``: 2 classes, 1 label name, 2 values."""
    dropped = f" after skipping {_listing(gate.skipped)}" if gate.skipped else ""
    if choice.task == "regression":
        if len(set(train.labels)) < 2:
            raise DataError(f"Every training target is {train.labels[0]}{dropped}; regression needs targets "
                            "that differ. Check the label column.")
        return
    classes = train.classes
    if choice.task == "multi-label":
        if not classes:
            raise DataError(f"No training item has a label{dropped}; give each item its labels, separated by "
                            f"{choice.sep!r} (--label-sep sets the separator).")
        return
    if len(classes) < 2:
        raise DataError(
            f"The training data has {len(classes)} class(es) {classes}{dropped}; a classifier "
            "needs at least 2. Add examples of another class."
        )


def load_items(
    source: Any,
    *,
    text_col: str | None = None,
    image_col: str | None = None,
    skip_bad: bool = False,
    modality: str | None = None,
    run_columns: dict[str, str] | None = None,
) -> Dataset:
    """Load unlabelled inputs: image/.txt file(s), a folder (recursive), a table, a list or a datasets.Dataset.

    Inputs carry no labels (``labels`` is None): a table's label column, if any, is not read, so rows with
    an empty or odd label are predicted like the others.
    With ``skip_bad`` bad items are dropped and listed in the result's ``skipped``. ``modality``
    (the model's) reads a folder's files of that kind and skips the others, listing them; for a text
    model a string that names no file is a text (see ``sources.is_text_not_path``). ``run_columns``
    (a run's ``{"text": name, ...}``) are read from a table that has them when no column is given.
    """
    gate = Gate(skip_bad, modality=modality)
    columns = Columns(text=text_col, image=image_col, run=_run_columns(run_columns))
    dataset = read_source(source, labelled=False, columns=columns, gate=gate, role="input")
    dataset = _nonempty(dataset, "input", gate)
    return dataclasses.replace(dataset, skipped=tuple(gate.skipped))


def load_labelled(
    source: Any,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    image_col: str | None = None,
    skip_bad: bool = False,
    run_columns: dict[str, str] | None = None,
) -> Dataset:
    """Load one labelled data set as it is, with no split (for evaluation); ``run_columns`` as in load_items."""
    gate = Gate(skip_bad)
    columns = Columns(text=text_col, image=image_col, label=label_col, run=_run_columns(run_columns))
    dataset = _read(source, "evaluation", columns, gate)
    return dataclasses.replace(dataset, skipped=tuple(gate.skipped))


def _run_columns(names: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    """A run's column names as ``Columns.run`` holds them (only those it named)."""
    return tuple((role, name) for role, name in (names or {}).items() if name)


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    """ConfigError unless 0 < val_fraction < 1, 0 <= test_fraction < 1 and their sum < 1."""
    val, test = option("val_fraction"), option("test_fraction")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"{val} must be between 0 and 1 (exclusive); got {val_fraction}.")
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"{test} must be at least 0 and below 1; got {test_fraction}.")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"{val} plus {test} must be below 1 so that some data is left for training; got "
            f"{val_fraction} + {test_fraction}."
        )


def _split_folders(source: Any, val: Any, test: Any, gate: Gate) -> tuple[Any, Any, Any]:
    """Use root/train, root/val (or validation), root/test when source is such a folder."""
    if not isinstance(source, (str, os.PathLike)) or not Path(source).is_dir():
        return source, val, test
    layout = split_layout(Path(source), str(source), gate)
    if layout is None:
        return source, val, test
    shown = {split: os.path.join(str(source), path.name) for split, path in layout.items()}
    return (
        shown["train"],
        val if val is not None else shown.get("val"),
        test if test is not None else shown.get("test"),
    )


def _read(source: Any, role: str, columns: Columns, gate: Gate) -> Dataset:
    """Labelled Dataset for one split, refusing an empty result."""
    return _nonempty(
        read_source(source, labelled=True, columns=columns, gate=gate, role=role), role, gate
    )


HASH_CHARS = 16  # of each item's SHA-256: 64 bits, plenty to tell items apart, short in split.json


def content_record(train: Dataset, val: Dataset) -> dict[str, list[str]]:
    """``train_hashes`` and ``val_hashes``: each item's content hash (its first HASH_CHARS hex digits), so that
    evaluation data can be matched against what the run was fitted and selected on."""
    return {"train_hashes": [h[:HASH_CHARS] for h in train.item_hashes()],
            "val_hashes": [h[:HASH_CHARS] for h in val.item_hashes()]}


def _listing(skipped: list[Skipped], limit: int = 3) -> str:
    """The first ``limit`` skipped items with their reasons, and how many more, for a message."""
    shown = "; ".join(f"{s.origin} ({s.reason})" for s in skipped[:limit])
    return shown + (f" and {len(skipped) - limit} more" if len(skipped) > limit else "")


def _nonempty(data: Dataset, role: str, gate: Gate) -> Dataset:
    """``data`` unless it has no items; then a DataError saying why."""
    if len(data):
        return data
    why = "every item was skipped as bad (see the skipped list)" if gate.skipped else "it is empty"
    raise DataError(f"The {role} data has no usable items: {why}. Add or fix items.")


def _assemble(
    train: Dataset,
    given: dict[str, Dataset],
    classes: list[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    gate: Gate,
    task: str = "single-label",
) -> DataSplits:
    """Carve the missing splits from train and record how the splits were made."""
    carve_val = "val" not in given
    carve_test = "test" not in given and test_fraction > 0
    train_idx, val_idx, test_idx = carve(
        strata(task, train.labels),
        val_fraction if carve_val else None,
        test_fraction if carve_test else None,
        seed,
    )
    train.item_hashes()  # memoised: the subsets below keep theirs, for the record and the feature cache
    val = train.subset(val_idx) if carve_val else given["val"]
    test = given.get("test")
    if carve_test and test_idx:  # classes too small to spare a test example give none
        test = train.subset(test_idx)
    train = train.subset(train_idx)
    carved = [name for name, flag in (("val", carve_val), ("test", bool(test_idx))) if flag]
    record = {
        "method": "stratified" if carved else "given",
        "carved": carved,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "sizes": {"train": len(train), "val": len(val), "test": 0 if test is None else len(test)},
        "train_origins": list(train.origins),
        "val_origins": list(val.origins),
        "test_origins": [] if test is None else list(test.origins),
        **content_record(train, val),
    }
    return DataSplits(train, val, test, classes, record, list(gate.skipped), task)
