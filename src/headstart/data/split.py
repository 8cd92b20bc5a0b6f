"""Class checks across splits, and the seeded stratified carving of val/test out of train."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from headstart.data.dataset import Dataset, Skipped
from headstart.data.items import SKIP_BAD, Gate
from headstart.core.errors import DataError

MIN_PER_CLASS = 2


def drop_rare_classes(train: Dataset, gate: Gate) -> Dataset:
    """Refuse (or with skip_bad drop) classes with fewer than MIN_PER_CLASS training examples."""
    counts = Counter(train.labels)
    rare = sorted(label for label, count in counts.items() if count < MIN_PER_CLASS)
    if not rare:
        return train
    if not gate.skip_bad:
        first = train.origins[train.labels.index(rare[0])]
        listing = ", ".join(f"'{label}' ({counts[label]} example)" for label in rare)
        raise DataError(
            f"The training data has fewer than {MIN_PER_CLASS} examples of class(es) {listing}, "
            f"e.g. {first}. Add more examples of each class or remove the class, or pass "
            f"{SKIP_BAD} to drop such classes."
        )
    keep = []
    for index, label in enumerate(train.labels):
        if label in rare:
            reason = (
                f"class '{label}' has only {counts[label]} training example; at least "
                f"{MIN_PER_CLASS} are needed, so the class was dropped"
            )
            gate.skipped.append(Skipped(train.origins[index], reason))
        else:
            keep.append(index)
    return train.subset(keep)


def drop_unseen(data: Dataset, classes: list[str], gate: Gate, role: str) -> Dataset:
    """Refuse (or with skip_bad drop) items whose class (multi-label: any of whose labels) does not occur in the
    training data; numeric targets (regression) are all kept."""
    if not data.labels or isinstance(data.labels[0], float):
        return data
    known = set(classes)
    unseen = [i for i, label in enumerate(data.labels)
              if (not set(label) <= known if isinstance(label, tuple) else label not in known)]
    if not unseen:
        return data
    if not gate.skip_bad:
        first = unseen[0]
        label = _unseen_name(data.labels[first], known)
        others = sorted({_unseen_name(data.labels[i], known) for i in unseen} - {label})
        also = f" ({len(unseen)} {role} item(s) in all; also {others})" if others else ""
        raise DataError(
            f"{data.origins[first]}: its class '{label}' is not in the training data{also}; the "
            f"training classes are {classes}. Add training examples of '{label}' or remove such "
            f"items from the {role} data, or pass {SKIP_BAD} to skip them."
        )
    for index in unseen:
        reason = f"{role} class '{_unseen_name(data.labels[index], known)}' is not in the training data"
        gate.skipped.append(Skipped(data.origins[index], reason))
    dropped = set(unseen)
    return data.subset([i for i in range(len(data)) if i not in dropped])


def _unseen_name(label: str | tuple[str, ...], known: set[str]) -> str:
    """The class of ``label`` that training lacks (the first, for a label set)."""
    return min(set(label) - known) if isinstance(label, tuple) else label


REGRESSION_BINS = 5  # regression splits are stratified on this many quantile bins of the target


def strata(task: str, labels: tuple) -> list[str]:
    """What a split stratifies on, per item: the class; for multi-label the item's rarest label (``""`` for
    none), so every label reaches validation where it can; for regression the target's quantile bin."""
    if task == "regression":
        values = np.asarray(labels, dtype=np.float64)
        edges = np.quantile(values, np.linspace(0, 1, REGRESSION_BINS + 1)[1:-1])
        return [f"bin{b}" for b in np.searchsorted(edges, values, side="right")]
    if task == "multi-label":
        counts = Counter(name for names in labels for name in names)
        return [min(names, key=lambda name: (counts[name], name)) if names else "" for names in labels]
    return list(labels)


def carve(
    labels: tuple[str, ...], val_fraction: float | None, test_fraction: float | None, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Seeded stratified (train, val, test) indices; None for a fraction means: carve nothing.

    Per class of n items: test gets round(test_fraction * n) while leaving at least 2 (or 1 when
    val is not carved) for train and val; val gets round(val_fraction * n), at least 1, while
    leaving at least 1 for train. Fractions are of the whole training pool.
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    for label in sorted(by_class):
        members = [int(i) for i in rng.permutation(by_class[label])]
        n = len(members)
        n_test = 0
        if test_fraction:
            n_test = min(_round(test_fraction * n), n - (2 if val_fraction else 1))
        n_val = 0
        if val_fraction:
            n_val = min(max(1, _round(val_fraction * n)), n - n_test - 1)
        parts[2].extend(members[:n_test])
        parts[1].extend(members[n_test : n_test + n_val])
        parts[0].extend(members[n_test + n_val :])
    train, val, test = (sorted(part) for part in parts)
    return train, val, test


def _round(value: float) -> int:
    """Round half up (0.5 -> 1), never below 0."""
    return max(0, math.floor(value + 0.5))
