"""What each task is called, scored by and said to be, in one table, importable without torch.

Metrics (``core.metrics`` computes them), the report (``report.scores``), ``headstart evaluate``, the terminal's
tables (``cli.output``), compare, advise, audit, predict and serve read a task's metric names and its words
from here, and ask what a task has (classes? one per item?) instead of comparing its name.

The second metric, shown beside the main one wherever two fit (the terminal's tables, compare, audit's probe,
the report's cards), is macro-F1 for single-label, mAP for multi-label and MAE for regression. Multi-label takes
mAP rather than macro-F1: like macro-F1 it counts each label the same, so a rare label's failure shows, but it
does not depend on the decision thresholds, which are tuned on the same small validation set that is then
scored; and it tells what micro-F1 cannot, how well each label's probabilities rank the items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


# Every metric's name as a sentence or a heading says it, and its short name (columns, terminal lines).
METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1",
                "micro_f1": "micro-F1", "map": "mAP", "subset_accuracy": "subset accuracy", "r2": "R²",
                "spearman": "Spearman ρ", "mae": "MAE", "rmse": "RMSE"}
SHORT_NAMES = {**METRIC_NAMES, "accuracy": "acc", "balanced_accuracy": "bal. acc", "subset_accuracy": "subset acc",
               "spearman": "Spearman"}


@dataclass(frozen=True)
class TaskKind:
    """One task's names and facts: what the code that scores, shows or serves it needs to know."""

    name: str  # single-label | multi-label | regression: metrics.json's and config.json's ``task``
    select_metrics: tuple[str, ...]  # what --select-metric may name for it; the first is its main metric
    second_metric: str  # shown beside the main one where two fit
    headline: tuple[str, ...]  # the scores shown with their 95% intervals (report, evaluate), the main one first
    output: tuple[str, str]  # what one of the head's outputs is called, singular and plural
    described: str  # the task in a phrase, ``{n}`` the number of outputs: "10 classes"
    answer: str  # predict's column (and a row's key) holding the answer
    label_issues: str  # what audit's label check finds
    reading: tuple[str, str]  # an export's task.json: what the outputs are, and what to apply to them
    has_classes: bool  # the outputs are classes or labels with probabilities (not a value)
    one_per_item: bool  # each item has exactly one class

    @property
    def main_metric(self) -> str:
        """The metric the task is judged by (learning curves, compare's recommendation)."""
        return self.select_metrics[0]

    def describe(self, outputs: int) -> str:
        """The task in a phrase for ``outputs`` classes or labels: "10 classes", "one number per item"."""
        return self.described.format(n=outputs)


SINGLE_LABEL = TaskKind(
    "single-label", ("accuracy", "macro_f1", "balanced_accuracy"), "macro_f1",
    ("accuracy", "balanced_accuracy", "macro_f1"), ("class", "classes"), "{n} classes", "label",
    "likely label errors",
    ("logits, one per class (the calibration temperature is already folded in)",
     "softmax over the outputs; the label is the class with the highest probability"),
    has_classes=True, one_per_item=True)
MULTI_LABEL = TaskKind(
    "multi-label", ("micro_f1", "macro_f1", "map", "subset_accuracy"), "map",
    ("micro_f1", "macro_f1", "map", "subset_accuracy"), ("label", "labels"), "{n} labels, any number per item",
    "labels", "likely label errors (item, label pairs)",
    ("logits, one per label",
     "sigmoid to each output; an item has every label whose probability is >= that label's entry in thresholds "
     "(same order as outputs); no label at all is a valid answer"),
    has_classes=True, one_per_item=False)
REGRESSION = TaskKind(
    "regression", ("r2", "spearman"), "mae", ("r2", "spearman", "mae", "rmse"), ("target", "targets"),
    "one number per item", "value", "large residuals (likely wrong targets)",
    ("the predicted value of the target, already in the target's own units (the training mean and deviation are "
     "folded into the head)", "nothing: use the output as it is"),
    has_classes=False, one_per_item=False)

KINDS: Mapping[str, TaskKind] = {kind.name: kind for kind in (SINGLE_LABEL, MULTI_LABEL, REGRESSION)}
SELECT_CHOICES = ("auto", *sorted({m for kind in KINDS.values() for m in kind.select_metrics}))
BY_MAIN_METRIC = {kind.main_metric: kind for kind in KINDS.values()}


def kind(name: str | None) -> TaskKind:
    """The task called ``name``; None (a record written before tasks existed) is single-label."""
    return KINDS[name or SINGLE_LABEL.name]


def kind_of(metrics: dict | None) -> TaskKind:
    """The task of a metrics.json: its ``task``, else the one its ``main_metric`` belongs to, else single-label."""
    metrics = metrics or {}
    named = metrics.get("task")
    if named in KINDS:
        return KINDS[named]
    return BY_MAIN_METRIC.get(metrics.get("main_metric"), SINGLE_LABEL)
