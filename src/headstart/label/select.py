"""Which unlabelled items to label next, on frozen features: typical-and-diverse while labels are few,
uncertain-and-diverse once the run has enough.

Typical-and-diverse is TypiClust (Hacohen, Dekel and Weinshall, ICML 2022): k-means with k = labelled items +
picks; the clusters that hold no labelled item are uncovered; from each uncovered cluster, largest first, the
item of highest typicality (the inverse of its mean distance to its ``NEIGHBOURS`` nearest neighbours in the
cluster). Uncertain-and-diverse ranks the pool by the run's doubt (single-label: the margin between its two
most probable classes; multi-label: the closeness of a label's probability to its decision threshold;
regression: the spread of a bootstrap of ridge heads refitted on the labelled features), keeps the
``CANDIDATES`` x picks most doubtful, clusters them into as many groups as picks and takes the most doubtful of
each group, so that the picks are not near-copies of one another.

The switch (TCM, Doucet et al. 2024: TypiClust first, then margin) is at ``UNCERTAIN_FROM`` labelled items per
class (regression: per ``REGRESSION_GROUPS`` groups). Measured by ``python -m bench.suggest`` (bench/RESULTS.md,
"Label less: suggest"; test accuracy of the probe, 5 seeds): on MNIST (mobilenetv2) typical picks beat half
typical then half margin at 2, 5 and 10 labels a class (0.510, 0.646, 0.745 against 0.435, 0.616, 0.702) and
margin is ahead at 20 (0.804 against 0.793), as on issue 21's clothing pool (0.787 against 0.777 at 20 a class);
on BBC News (minilm-l6) the two are within a standard deviation at 2 to 10 a class and typical is ahead at 20.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.linear_model import Ridge

from headstart.features.neighbours import nearest
from headstart.features.space import embedded, normalised

UNCERTAIN_FROM = 20  # labelled items per class from which uncertain-and-diverse picks are made
REGRESSION_GROUPS = 5  # regression: "classes" for the switch rule
NEIGHBOURS = 20  # typicality: mean distance to this many nearest neighbours (TypiClust's)
CANDIDATES = 10  # uncertain picks: the most doubtful CANDIDATES x n items are clustered into n groups
FULL_KMEANS = 64  # clusters up to which full k-means runs; above, mini-batch k-means
BOOTSTRAP_HEADS = 10  # regression doubt: ridge heads on bootstrap resamples of the labelled items


@dataclass(frozen=True)
class Pick:
    """One item to label: its position in the pool and why it was picked, in words."""

    index: int
    reason: str


def use_uncertain(labelled: int, groups: int) -> bool:
    """Whether ``labelled`` items over ``groups`` classes (regression: ``REGRESSION_GROUPS``) call for
    uncertain-and-diverse picks rather than typical-and-diverse ones (the rule in the module doc)."""
    return labelled >= UNCERTAIN_FROM * max(groups, 1)


def typical(pool: np.ndarray, n: int, labelled: np.ndarray | None = None, seed: int = 0) -> list[Pick]:
    """TypiClust: ``n`` items of ``pool`` (features, one row each), the most typical of each of the largest
    clusters that no ``labelled`` row (features of items already labelled) falls in."""
    known = np.zeros((0, pool.shape[1]), pool.dtype) if labelled is None else labelled
    every = embedded(np.concatenate([pool, known]), seed)
    k = min(n + len(known), len(every))
    clusters = cluster(every, k, seed)
    covered = set(clusters[len(pool):].tolist())
    ids, sizes = np.unique(clusters[:len(pool)], return_counts=True)
    order = [int(c) for c, _ in sorted(zip(ids, sizes), key=lambda cs: -cs[1]) if c not in covered]
    ranked = {c: g for g, c in enumerate(sorted(ids.tolist(), key=lambda c: -int((clusters == c).sum())), 1)}
    picks = []
    for c in order[:n]:
        members = np.flatnonzero(clusters[:len(pool)] == c)
        best = members[int(np.argmax(typicality(every[members], seed)))]
        items = f"{len(members)} unlabelled item{'s' if len(members) > 1 else ''}"
        picks.append(Pick(int(best), f"typical of group {ranked[c]} of {k} ({items})"))
    return picks


def uncertain(pool: np.ndarray, n: int, doubt: np.ndarray, reasons: list[str], seed: int = 0) -> list[Pick]:
    """``n`` doubtful and diverse items: the most doubtful of each of ``n`` clusters of the ``CANDIDATES * n``
    most doubtful items (``doubt``: higher is less sure; ``reasons``: one phrase per item)."""
    candidates = np.argsort(-doubt, kind="stable")[:max(CANDIDATES * n, n)]
    clusters = cluster(embedded(pool, seed)[candidates], min(n, len(candidates)), seed)
    best = [candidates[clusters == c][0] for c in np.unique(clusters)]  # candidates are most doubtful first
    return [Pick(int(i), reasons[i]) for i in sorted(best, key=lambda i: -doubt[i])][:n]


def margin_doubt(proba: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Single-label doubt: 1 minus the margin between the two most probable classes, with the reason."""
    top = np.argsort(-proba, axis=1)[:, :2]
    first, second = proba[np.arange(len(proba)), top[:, 0]], proba[np.arange(len(proba)), top[:, 1]]
    reasons = [f"unsure: {classes[a]} {p:.2f} vs {classes[b]} {q:.2f}"
               for (a, b), p, q in zip(top, first, second)]
    return 1 - (first - second), reasons


def threshold_doubt(proba: np.ndarray, thresholds: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Multi-label doubt: how close the least certain label's probability is to its threshold (1: on it)."""
    gap = np.abs(proba - thresholds) / np.where(proba >= thresholds, 1 - thresholds, thresholds)
    worst = gap.argmin(axis=1)
    reasons = [f"unsure about {classes[j]}: {row[j]:.2f} (threshold {thresholds[j]:.2f})"
               for row, j in zip(proba, worst)]
    return 1 - gap[np.arange(len(proba)), worst], reasons


def ridge_doubt(pool: np.ndarray, labelled: np.ndarray, targets: np.ndarray,
                seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Regression doubt: the spread (standard deviation) of the values that ``BOOTSTRAP_HEADS`` ridge heads,
    each fitted on a bootstrap resample of the labelled features, give each pool item."""
    rng = np.random.default_rng(seed)
    x, xp = normalised(labelled), normalised(pool)
    values = np.stack([Ridge(alpha=1.0).fit(x[draw], targets[draw]).predict(xp)
                       for draw in (rng.integers(0, len(x), len(x)) for _ in range(BOOTSTRAP_HEADS))])
    spread, middle = values.std(axis=0), values.mean(axis=0)
    return spread, [f"unsure: heads disagree, {m:.3g} +- {s:.2g}" for m, s in zip(middle, spread)]


def cluster(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means cluster of each row (full k-means up to ``FULL_KMEANS`` clusters, mini-batch above)."""
    if k <= 1:
        return np.zeros(len(x), dtype=np.int64)
    model = (KMeans(k, n_init=3, random_state=seed) if k <= FULL_KMEANS
             else MiniBatchKMeans(k, n_init=3, batch_size=2048, random_state=seed))
    return model.fit_predict(x)


def typicality(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each row's inverse mean distance to its ``NEIGHBOURS`` nearest other rows (1 for a lone row), found by
    :mod:`headstart.features.neighbours` (exact up to its ``EXACT_ROWS`` rows, an approximate index above)."""
    if len(x) == 1:
        return np.ones(1)
    found = nearest(x, NEIGHBOURS, "l2", seed=seed)
    return 1 / (found.distances.mean(axis=1) + 1e-8)

