"""Few-shot subsets: ``shots`` training examples per class, drawn with a seed."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from headstart.data.dataset import DataSplits
from headstart.data.load import content_record
from headstart.data.split import strata
from headstart.core.errors import ConfigError


def keep_shots(splits: DataSplits, shots: int, seed: int) -> DataSplits:
    """Keep ``shots`` training examples per class (seeded); validation and test stay whole.

    A class with fewer keeps all of its own; ``split["shots_short"]`` records such classes with their sizes
    (``data.checks.cheap_checks`` turns that into a warning). Multi-label items count for their rarest label
    (``data.split.strata``); a regression has no classes to count (ConfigError).
    """
    if splits.task == "regression":
        raise ConfigError("--shots keeps that many training examples per class, and a regression has no classes; "
                          "give a smaller training table instead.")
    groups = strata(splits.task, splits.train.labels)  # multi-label: each item counts for its rarest label
    idx = subsample_per_class(groups, shots, seed)
    names, sizes = np.unique(np.asarray(groups, dtype=object), return_counts=True)
    short = {str(c): int(n) for c, n in zip(names, sizes) if n < shots}
    split = {**splits.split, "shots": shots, "train_origins": [splits.train.origins[i] for i in idx],
             **content_record(splits.train.subset(idx), splits.val),
             **({"shots_short": short} if short else {})}
    return replace(splits, train=splits.train.subset(idx), split=split)


def subsample_per_class(labels: Sequence[str], per_class: int, seed: int) -> list[int]:
    """Indices of at most ``per_class`` items of each class, drawn with ``seed``, in original order."""
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        keep += list(rng.permutation(members)[:per_class])
    return sorted(int(i) for i in keep)
