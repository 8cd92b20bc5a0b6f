"""Learning from the unlabelled rest: label spreading on the neighbour graph of frozen features (Zhou et al. 2004,
scikit-learn's ``LabelSpreading``), and a check that the pool looks like the labelled data.

The graph joins each item (labelled or not) to its ``NEIGHBOURS`` nearest items in the space clustering uses
(headstart.features.space.embedded: unit length, leading principal components); the labels flow along it, each
labelled item keeping ``1 - ALPHA`` of its own. Each pool item gets the class that reaches it most, with that
share as its confidence; the probe is then fitted on the labelled items and the pool items whose confidence is
in the top ``KEEP`` of the pool's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.metrics import roc_auc_score
from sklearn.semi_supervised import LabelSpreading

from headstart.core.errors import ConfigError
from headstart.features.space import embedded
from headstart.report.unlabelled import pool_sentence
from headstart.tasks import Task
from headstart.tasks.kinds import kind
from headstart.training.heads import ProbeFit

NEIGHBOURS = 10
ALPHA = 0.2
KEEP = 0.5  # share of the pool, most confident first, whose spread labels the probe is fitted on (measured: see
# bench/RESULTS.md, "Label less": the surer half beat the whole pool at every budget and pool tried)
DOMAIN_AUC = 0.8  # a classifier telling pool from labelled features this well means they look unlike each other


@dataclass(frozen=True)
class Spread:
    """Pseudo-labels of the pool: positions of the pool items kept, their class (index) and confidence."""

    rows: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray


def spread_labels(x: np.ndarray, y: np.ndarray, pool: np.ndarray, seed: int = 0, keep: float = KEEP) -> Spread:
    """Label spreading from ``(x, y)`` (features, class indices) over ``pool`` (features): the ``keep`` share of
    the pool the spread labels are surest of."""
    every = embedded(np.concatenate([x, pool]), seed)
    targets = np.concatenate([np.asarray(y), np.full(len(pool), -1)])
    model = LabelSpreading(kernel="knn", n_neighbors=min(NEIGHBOURS, len(every) - 1), alpha=ALPHA, max_iter=100)
    model.fit(every, targets)
    shares = model.label_distributions_[len(x):]
    shares = np.nan_to_num(shares / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12))
    labels, confidence = model.classes_[shares.argmax(axis=1)], shares.max(axis=1)
    rows = np.argsort(-confidence, kind="stable")[:max(1, int(round(keep * len(pool))))]
    return Spread(np.sort(rows), labels[np.sort(rows)], confidence[np.sort(rows)])


def domain_auc(labelled: np.ndarray, pool: np.ndarray, seed: int = 0) -> float:
    """How well a cross-validated logistic regression tells ``pool`` features from ``labelled`` ones (ROC AUC:
    0.5 when they look alike, 1.0 when apart)."""
    x = embedded(np.concatenate([labelled, pool]), seed)
    side = np.r_[np.zeros(len(labelled)), np.ones(len(pool))]
    folds = min(5, len(labelled), len(pool))
    if folds < 2:
        return 0.5
    scores = cross_val_predict(LogisticRegression(max_iter=1000, class_weight="balanced"), x, side,
                               cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                               method="predict_proba")[:, 1]
    return float(roc_auc_score(side, scores))


def probe_with_pool(task: Task, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                    pool: np.ndarray, cs: tuple[float, ...], seed: int, weights: np.ndarray | None,
                    progress: bool = True) -> tuple[ProbeFit, dict]:
    """The task's probe fitted on ``train`` (features, class indices) plus the pool's spread labels, and on
    ``train`` alone; the one that validates better on ``val`` (the pool's on a tie), with what happened in
    ``{"unlabelled": ...}``: pool size, pseudo-labels used, both validation scores, whether the pool was kept,
    how unlike the labelled data the pool looks. Warns (stderr) when the pool looks unlike the labelled data."""
    if not kind(task.name).one_per_item:
        raise ConfigError(f"--unlabelled learns from the pool for single-label tasks; this is a {task.name} task. "
                          "Drop --unlabelled.")
    x, y = train
    auc = domain_auc(x, pool, seed)
    if auc >= DOMAIN_AUC:
        print(f"warning: the --unlabelled pool looks unlike the labelled data (a classifier tells their features "
              f"apart with ROC AUC {auc:.2f}; alike is 0.5): its spread labels may mislead. Check that the pool "
              "holds the same kind of items.", file=sys.stderr)
    spread = spread_labels(x, y, pool, seed)
    without = task.probe(x, y, *val, cs, seed, weights)
    pooled = task.probe(np.concatenate([x, pool[spread.rows]]), np.concatenate([y, spread.labels]), *val, cs,
                        seed, weights)
    key = f"val_{task.select_metric}"
    scores = {name: max(c[key] for c in fit.candidates) for name, fit in (("with", pooled), ("without", without))}
    kept = scores["with"] >= scores["without"]
    record = {"pool": len(pool), "pseudo_labels": int(len(spread.rows)) if kept else 0,
              "spread_labels": int(len(spread.rows)), f"{key}_with_pool": scores["with"],
              f"{key}_without_pool": scores["without"], "kept": kept, "domain_auc": auc,
              "metric": key,
              "method": f"label spreading, {NEIGHBOURS}-nearest-neighbour graph, alpha {ALPHA}, the surer {KEEP:.0%}"}
    if progress:
        print(f"note: {pool_sentence(record)}", file=sys.stderr)
    return (pooled if kept else without), {"unlabelled": record}

