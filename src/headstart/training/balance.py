"""Class imbalance: ``--balance none|weights|sampler|auto``, resolved once per fit from the training labels.

``weights`` weighs each class's loss by its inverse frequency (``n / (k * n_c)``, scikit-learn's "balanced": a
balanced set gets weight 1 everywhere) in fine-tuning's cross-entropy and in the linear probe's logistic loss;
``sampler`` draws fine-tuning batches with a class-balanced sampler instead (the probe, which sees every item
at once, takes the weights); ``auto`` is ``weights`` when the largest class outnumbers the smallest by more than
``IMBALANCE_RATIO`` (the data checks' threshold), else ``none``.
"""

from __future__ import annotations

import numpy as np

from headstart.data.checks import IMBALANCE_RATIO
from headstart.core.errors import ConfigError, option



def class_weights(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights ``n / (k * n_c)`` over the ``k`` classes present; 0 for an absent class."""
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(targets) / (present.sum() * counts[present])
    return weights


def resolve_balance(mode: str, targets: np.ndarray, classes: list[str], unbalanced_task: str | None = None) -> dict:
    """What ``mode`` means for these training targets: ``{asked, used, ratio, threshold, class_weights}``
    (``class_weights`` by class name, None when ``used`` is ``none``). Balancing is for one class per item:
    ``unbalanced_task`` names a task without (multi-label, regression), which records ``none``, with why; asking
    it for ``weights`` or ``sampler`` is a ConfigError, as the option would be ignored."""
    task = unbalanced_task
    if task is not None:
        if mode not in ("auto", "none"):
            raise ConfigError(f"{option('balance', mode)} balances the classes of a single-label task, but this task "
                              f"is {task}, so it would be ignored. Leave out {option('balance')} (or give "
                              f"{option('balance', 'none')}).")
        return {"asked": mode, "used": "none", "ratio": None, "threshold": IMBALANCE_RATIO, "class_weights": None,
                "why": f"class balancing applies to single-label tasks, not {task}"}
    counts = np.bincount(targets, minlength=len(classes))
    ratio = float(counts.max() / max(counts[counts > 0].min(), 1)) if len(targets) else 1.0
    used = ("weights" if ratio > IMBALANCE_RATIO else "none") if mode == "auto" else mode
    weights = class_weights(targets, len(classes)) if used != "none" else None
    return {"asked": mode, "used": used, "ratio": ratio, "threshold": IMBALANCE_RATIO,
            "class_weights": None if weights is None else {c: float(w) for c, w in zip(classes, weights)}}
