"""Classification metrics: accuracy and balanced accuracy with their intervals, macro-F1, per-class scores
(recall with its interval), confusion matrix; and the scores a fit may select on (``SELECT_METRICS``)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

SELECT_METRICS = ("accuracy", "macro_f1", "balanced_accuracy")  # what early stopping and the probe's C optimise


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound at small n and near 0 or 1)."""
    if total == 0:
        return (0.0, 0.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


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
