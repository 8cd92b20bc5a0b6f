"""How a report names and writes each task's scores: shares (accuracy, F1, mAP) as percentages, R² and
Spearman's rho as signed numbers, errors (MAE, RMSE) in the target's own units.

metrics.json says its task and main metric (``"task"``, ``"main_metric"``); a run written before tasks existed
has neither and is single-label, scored by accuracy. Which scores each task shows is ``tasks.kinds``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from headstart.tasks.kinds import METRIC_NAMES

MEANINGS = {"micro_f1": "every label decision pooled", "macro_f1": "each label counting the same",
            "map": "mean average precision: how well each label's probabilities rank the items, at any threshold",
            "subset_accuracy": "items with every label right, none missing, none extra",
            "r2": "share of the target's variance explained: 1 is perfect, 0 no better than predicting the mean",
            "spearman": "rank correlation: 1 when the predictions put the items in the true order",
            "mae": "mean absolute error, in the target's units",
            "rmse": "root mean squared error: big misses weigh more"}
SHARES = frozenset({"accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "map", "subset_accuracy"})


def finite(value: object) -> float | None:
    """``value`` as a float, or None when it is missing or not finite (JSON ``NaN`` marks a skipped result)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def main_metric(metrics: dict | None) -> str:
    """The metric a run is judged by: metrics.json's ``main_metric``, else accuracy."""
    return str((metrics or {}).get("main_metric") or "accuracy")


def name(key: str) -> str:
    """A metric as a sentence says it: ``micro_f1`` -> "micro-F1"."""
    return METRIC_NAMES.get(key, key.replace("_", " "))


def title(key: str) -> str:
    """A metric as a label starts: "Accuracy", "Macro-F1", but "mAP" and "R²" as written."""
    text = name(key)
    return text[:1].upper() + text[1:] if text[1:2].islower() else text


def value(key: str, number: object, decimals: int | None = None) -> str:
    """One score: ``84.0%`` for a share, ``0.412`` for R² or rho, ``3.710`` (4 significant digits, or ``decimals``)
    for an error."""
    number = finite(number)
    if number is None:
        return "—"
    if key in SHARES:
        return f"{100 * number:.1f}%"
    if key in ("r2", "spearman"):
        return f"{number:.3f}"
    return f"{number:.{_decimals(number) if decimals is None else decimals}f}"


def _decimals(number: float) -> int:
    """Decimals that leave 4 significant digits of ``number`` (none for 1000 and above)."""
    return max(0, 3 - math.floor(math.log10(abs(number)))) if number else 3


def interval(key: str, bounds: Sequence[float] | None) -> str:
    """A 95% interval: ``78.1–86.0%`` for a share, ``-0.120 to 0.733`` otherwise; empty when unknown."""
    low, high = ([finite(b) for b in (bounds or [])[:2]] + [None, None])[:2]
    if low is None or high is None:
        return ""
    if key in SHARES:
        return f"{100 * low:.1f}–{100 * high:.1f}%"
    decimals = _decimals(max(abs(low), abs(high)))  # both bounds alike: "1.200 to 4.518", not "1.2 to 4.518"
    return f"{value(key, low, decimals)} to {value(key, high, decimals)}"


def difference(key: str, number: object) -> str:
    """A difference of two scores: ``+8.0 pts`` for shares, ``+0.080`` otherwise."""
    number = finite(number)
    if number is None:
        return "—"
    return f"{100 * number:+.1f} pts" if key in SHARES else f"{number:+.3f}"


def spread(key: str, bounds: Sequence[float] | None) -> str:
    """How wide an interval is, in words: "12 percentage points" for a share, "0.41" otherwise."""
    low, high = ([finite(b) for b in (bounds or [])[:2]] + [None, None])[:2]
    if low is None or high is None:
        return ""
    return f"{100 * (high - low):.0f} percentage points" if key in SHARES else f"{high - low:.2g}"
