"""Metrics of each task, with 95% intervals: single-label (accuracy, balanced accuracy, macro-F1, per class,
confusion matrix), multi-label (micro/macro-F1, mAP, subset accuracy, per label) and regression (MAE, RMSE, R²,
Spearman). Which of them each task is judged and selected by, and what they are called, is ``tasks.kinds``."""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

SELECT_METRICS = ("accuracy", "macro_f1", "balanced_accuracy")  # what ``selection_score`` computes
# The range a metric's values (and intervals) can take.
METRIC_RANGES = {"r2": (-math.inf, 1.0), "spearman": (-1.0, 1.0), "mae": (0.0, math.inf), "rmse": (0.0, math.inf)}
SCORE_TOLERANCE = 1e-9  # scores closer than this are equal: their difference is floating-point rounding


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take: [0, 1] for the scores of classification, wider for regression's."""
    return METRIC_RANGES.get(metric, (0.0, 1.0))


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound at small n and near 0 or 1). All correct gives an upper
    bound of exactly 1, none correct a lower bound of exactly 0 (rounding gave 0.9999999999999999 at 6 of 6)."""
    if total == 0:
        return (0.0, 0.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    lo = 0.0 if correct == 0 else max(0.0, centre - half)
    hi = 1.0 if correct == total else min(1.0, centre + half)
    return (lo, hi)


def clearly_above(score: float, bound: float) -> bool:
    """``score > bound`` by more than rounding (``SCORE_TOLERANCE``): equal scores are never "better"."""
    return score > bound + SCORE_TOLERANCE


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy (with 95% interval), macro-F1, per-class precision/recall/F1/support, confusion matrix."""
    labels = list(range(len(classes)))
    correct = int((y_true == y_pred).sum())
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    hits = [int(((y_true == i) & (y_pred == i)).sum()) for i in labels]
    return {
        "n": int(len(y_true)),
        "accuracy": correct / max(1, len(y_true)),
        "accuracy_ci95": list(wilson_interval(correct, len(y_true))),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, len(classes)),
        "balanced_accuracy_ci95": list(balanced_accuracy_interval(hits, [int(s) for s in support])),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]),
                "recall_ci95": list(wilson_interval(hits[i], int(support[i]))), "f1": float(f1[i]),
                "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``y_true``."""
    recalls = [float((y_pred[y_true == c] == c).mean()) for c in range(n_classes) if (y_true == c).any()]
    return float(np.mean(recalls)) if recalls else 0.0


def balanced_accuracy_interval(hits: list[int], support: list[int], z: float = 1.96) -> tuple[float, float]:
    """95% interval of the mean per-class recall: a normal interval whose variance sums each class's
    Agresti-Coull variance ``p(1-p)/(n+4)`` with ``p = (hits+2)/(n+4)`` (sound when a class is all right or
    all wrong), over ``k^2``; clipped to [0, 1]."""
    present = [(h, n) for h, n in zip(hits, support) if n > 0]
    if not present:
        return (0.0, 0.0)
    k = len(present)
    centre = sum(h / n for h, n in present) / k
    var = sum(((h + 2) / (n + 4)) * (1 - (h + 2) / (n + 4)) / (n + 4) for h, n in present) / k**2
    half = z * math.sqrt(var)
    return (max(0.0, centre - half), min(1.0, centre + half))


def selection_score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, metric: str) -> float:
    """The score ``metric`` (one of ``SELECT_METRICS``) of predictions ``y_pred``."""
    if metric == "balanced_accuracy":
        return balanced_accuracy(y_true, y_pred, n_classes)
    if metric == "macro_f1":
        return float(f1_score(y_true, y_pred, labels=list(range(n_classes)), average="macro", zero_division=0))
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def bootstrap_interval(score: Callable[[np.ndarray], float], n: int, rounds: int = 200,
                       seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of ``score(rows)`` over ``rounds`` resamples of ``n`` items."""
    if n < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    values = np.array([score(rng.integers(0, n, n)) for _ in range(rounds)], dtype=np.float64)
    values = values[np.isfinite(values)]
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))] if len(values) else \
        [float("nan"), float("nan")]


def multilabel_metrics(y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray, classes: list[str]) -> dict:
    """Micro- and macro-F1, mAP and subset accuracy (each with a bootstrap interval), per-label precision,
    recall (Wilson interval), F1, average precision and support, of ``proba >= thresholds`` against the 0/1
    matrix ``y_true``."""
    y_true = np.asarray(y_true) > 0.5
    pred = proba >= thresholds
    every = np.arange(len(y_true))
    out: dict = {"n": int(len(y_true))}
    for name in MULTILABEL_SCORES:
        score = functools.partial(_rows_score, name, y_true, pred, proba)
        out[name] = score(every)
        out[f"{name}_ci95"] = bootstrap_interval(score, len(y_true))
    hits, support, predicted = (y_true & pred).sum(0), y_true.sum(0), pred.sum(0)
    out["per_class"] = {c: {"precision": float(hits[i] / predicted[i]) if predicted[i] else 0.0,
                            "recall": float(hits[i] / support[i]) if support[i] else 0.0,
                            "recall_ci95": list(wilson_interval(int(hits[i]), int(support[i]))),
                            "f1": f1(y_true[:, i], pred[:, i]), "average_precision": average_precision(
                                y_true[:, i], proba[:, i]),
                            "support": int(support[i]), "threshold": float(thresholds[i])}
                        for i, c in enumerate(classes)}
    out["labels_per_item"] = {"true": float(y_true.sum(1).mean()), "predicted": float(pred.sum(1).mean())}
    return out


MULTILABEL_SCORES = ("micro_f1", "macro_f1", "map", "subset_accuracy")


def multilabel_score(metric: str, y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray) -> float:
    """One of ``MULTILABEL_SCORES`` of ``proba >= thresholds`` against the 0/1 matrix ``y_true`` (mAP: 0 when no
    label has a positive)."""
    y_true = np.asarray(y_true) > 0.5
    value = _rows_score(metric, y_true, proba >= thresholds, proba, np.arange(len(y_true)))
    return 0.0 if math.isnan(value) else value


def _rows_score(metric: str, y_true: np.ndarray, pred: np.ndarray, proba: np.ndarray, rows: np.ndarray) -> float:
    y, p = y_true[rows], pred[rows]
    if metric == "micro_f1":
        return f1(y, p)
    if metric == "macro_f1":
        return float(np.mean([f1(y[:, i], p[:, i]) for i in range(y.shape[1])]))
    if metric == "subset_accuracy":
        return float((y == p).all(1).mean()) if len(y) else 0.0
    return mean_average_precision(y, proba[rows])


def f1(y: np.ndarray, pred: np.ndarray) -> float:
    """F1 of boolean predictions (all entries pooled: micro for a matrix); 0 when nothing is true or predicted."""
    hits = float((y & pred).sum())
    return 2 * hits / max(float(y.sum() + pred.sum()), 1.0)


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision of one label, as scikit-learn's (precision at each positive, ties grouped); NaN when
    there is no positive."""
    y = np.asarray(y, bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-score, kind="stable")
    y, score = y[order], score[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # the last row of each run of tied scores
    hits = np.cumsum(y)[last]
    precision, recall = hits / (last + 1), hits / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean over the labels that have a positive of their average precision."""
    present = np.flatnonzero(np.asarray(y_true).any(0))
    if not len(present):
        return float("nan")
    return float(np.mean([average_precision(y_true[:, i], proba[:, i]) for i in present]))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """MAE, RMSE, R² and Spearman's rho, each with a bootstrap 95% interval, in the target's own units; and
    the predict-the-mean baseline's MAE and RMSE (the training mean is not known here: this split's)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    scores = {"mae": lambda r: float(np.abs(y_true[r] - y_pred[r]).mean()),
              "rmse": lambda r: float(np.sqrt(((y_true[r] - y_pred[r]) ** 2).mean())),
              "r2": lambda r: r2(y_true[r], y_pred[r]),
              "spearman": lambda r: spearman(y_true[r], y_pred[r])}
    every = np.arange(len(y_true))
    out: dict = {"n": int(len(y_true))}
    for name, score in scores.items():
        out[name] = score(every)
        out[f"{name}_ci95"] = bootstrap_interval(score, len(y_true))
    out["target_mean"], out["target_std"] = float(y_true.mean()), float(y_true.std())
    out["mean_baseline_mae"] = float(np.abs(y_true - y_true.mean()).mean())
    return out


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination (NaN for a constant target)."""
    total = float(((y_true - y_true.mean()) ** 2).sum())
    return 1.0 - float(((y_true - y_pred) ** 2).sum()) / total if total > 0 else float("nan")


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman's rank correlation (NaN when either side is constant)."""
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    return float(spearmanr(y_true, y_pred).statistic)
