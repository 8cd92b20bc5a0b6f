"""Checks of a labelled data set that need no model: exact duplicates within the training data and across
splits (leakage), class imbalance, classes too small to fine-tune, and few-shot classes that fell short.

``fit`` prints these before training and records them in metrics.json; ``audit`` adds its model-based checks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from headstart.data.dataset import Dataset, DataSplits

IMBALANCE_RATIO = 3.0  # largest / smallest class count above which accuracy hides the small classes
FEW_EXAMPLES = 10  # training examples per class below which fine-tuning overfits (advise.FEW_SHOT)
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Pool:
    """Every item of train, val and test in one row order, with its split, label code, origin and hash."""

    datasets: list[Dataset]
    split: np.ndarray
    origins: list[str]
    labels: list[str]
    hashes: list[str]
    classes: list[str]

    @classmethod
    def of(cls, splits: DataSplits) -> "Pool":
        parts = [(name, ds) for name, ds in zip(SPLIT_NAMES, (splits.train, splits.val, splits.test)) if ds]
        return cls([ds for _, ds in parts], np.array([name for name, ds in parts for _ in range(len(ds))]),
                   [o for _, ds in parts for o in ds.origins], [y for _, ds in parts for y in ds.labels],
                   [h for _, ds in parts for h in ds.item_hashes()], list(splits.classes))

    @property
    def codes(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[y] for y in self.labels], dtype=np.int64)

    def item(self, i: int) -> dict:
        return {"origin": self.origins[i], "split": str(self.split[i]), "label": self.labels[i]}

    def contents(self) -> dict[str, Any]:
        """Each item (file path, PIL image, array or text) by its origin."""
        return {o: item for ds in self.datasets for o, item in zip(ds.origins, ds.items)}

    def duplicates(self) -> list[dict]:
        """Exact-duplicate groups ``{"kind", "hash", "items"}``, each item named by origin, split and label."""
        return [{"kind": g["kind"], "hash": g["hash"], "items": [self.item(i) for i in g["rows"]]}
                for g in exact_duplicates(self.hashes, self.split)]


def cheap_checks(splits: DataSplits, fine_tuning: bool = False) -> list[str]:
    """Warnings that need no model: exact duplicates in train, leakage across splits, imbalance, and, for a
    ``fine_tuning`` fit (where the advice to prefer the linear strategy can be acted on), tiny classes.

    Each warning names example items by origin. ``fit`` prints these before training.
    """
    groups = Pool.of(splits).duplicates()
    out = []
    leaks = [g for g in groups if g["kind"] == "cross-split"]
    if leaks:
        out.append(f"{len(leaks)} item(s) appear in more than one split (leakage: evaluation scores will be "
                   "optimistic), e.g. " + examples([group_text(g) for g in leaks]))
    within = [g for g in groups if g["kind"] == "within train"]
    if within:
        out.append(f"{len(within)} item(s) occur more than once in the training data (identical content), e.g. "
                   + examples([group_text(g) for g in within]))
    conflicts = [g for g in groups if len({i["label"] for i in g["items"]}) > 1]
    if conflicts:
        out.append(f"{len(conflicts)} duplicated item(s) carry different labels, e.g. "
                   + examples([group_text(g) for g in conflicts]))
    balance = class_balance(splits)
    if balance["imbalanced"]:
        c = balance["counts"]
        big, small = max(c, key=c.get), min(c, key=c.get)
        if splits.task == "multi-label":
            out.append(f"The labels are imbalanced: '{big}' is on {c[big]} training items and '{small}' on "
                       f"{c[small]} (ratio {balance['ratio']:.1f} > {IMBALANCE_RATIO:g}); watch macro-F1 and the "
                       "per-label scores, not only micro-F1.")
        else:
            out.append(f"The classes are imbalanced: '{big}' has {c[big]} training examples and '{small}' "
                       f"{c[small]} (ratio {balance['ratio']:.1f} > {IMBALANCE_RATIO:g}); watch macro-F1, not only "
                       "accuracy.")
    if balance["few"] and fine_tuning:
        listing = ", ".join(f"'{k}' ({balance['counts'][k]})" for k in balance["few"])
        out.append(f"Class(es) {listing} have fewer than {FEW_EXAMPLES} training examples: too few to fine-tune "
                   "reliably; prefer the linear strategy or add examples.")
    short = splits.split.get("shots_short")
    if short:
        listing = ", ".join(f"'{k}' ({n})" for k, n in short.items())
        out.append(f"{splits.split['shots']} shots per class were asked for, but class(es) {listing} have fewer "
                   "training examples; they keep all they have.")
    return out


def exact_duplicates(hashes: Sequence[str], split: Sequence[str]) -> list[dict]:
    """Groups of rows with the same content hash: ``{"kind", "rows"}`` sorted by first row.

    ``kind`` is "cross-split" when the group spans splits, else "within <split>"; ``rows`` index the input.
    """
    by_hash: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        by_hash.setdefault(h, []).append(i)
    groups = []
    for h, rows in by_hash.items():
        if len(rows) < 2:
            continue
        where = {str(split[i]) for i in rows}
        kind = "cross-split" if len(where) > 1 else f"within {where.pop()}"
        groups.append({"kind": kind, "hash": h, "rows": rows})
    return sorted(groups, key=lambda g: g["rows"][0])


def class_balance(splits: DataSplits) -> dict:
    """Training counts per class (multi-label: items holding each label; regression: none), their max/min
    ratio, whether that is imbalanced, and too-small classes."""
    counts = _class_counts(splits.train)
    everywhere = sum((_class_counts(ds) for ds in (splits.train, splits.val, splits.test) if ds), Counter())
    train = {c: int(counts.get(c, 0)) for c in splits.classes}
    ratio = max(train.values()) / max(1, min(train.values())) if train else 1.0
    return {"counts": train, "counts_all": {c: int(everywhere.get(c, 0)) for c in splits.classes},
            "ratio": float(ratio), "imbalanced": ratio > IMBALANCE_RATIO, "ratio_threshold": IMBALANCE_RATIO,
            "few": [c for c in splits.classes if train[c] < FEW_EXAMPLES], "few_threshold": FEW_EXAMPLES}


def _class_counts(data: Dataset) -> Counter:
    """Items per class; per label name for label sets; nothing for numeric targets."""
    if not data.labels or isinstance(data.labels[0], float):
        return Counter()
    if isinstance(data.labels[0], tuple):
        return Counter(name for names in data.labels for name in names)
    return Counter(data.labels)


def group_text(group: dict) -> str:
    return " = ".join(f"{i['origin']} ({i['split']}, '{i['label']}')" for i in group["items"])


def examples(texts: list[str], limit: int = 3) -> str:
    more = f" and {len(texts) - limit} more" if len(texts) > limit else ""
    return "; ".join(texts[:limit]) + more
