"""The task a fit learns (single-label, multi-label, regression): one object that decides the head's width, the
loss, the linear probe, the validation scores, what happens after fitting (calibration, thresholds, units),
the metrics, predict's rows and what the saved model records. Fit, the engine, strategies, predict and export
consult it; none of them branch on the task.

``make_task(splits)`` builds it from the training labels (a regression task standardises the target with the
training mean and deviation); ``task_from_spec`` rebuilds a saved model's from its ``headstart.json``.
"""

from __future__ import annotations

from headstart.data import DataSplits
from headstart.tasks.base import Task
from headstart.tasks.multilabel import MultiLabel
from headstart.tasks.regression import Regression
from headstart.tasks.single import SingleLabel

__all__ = ["MultiLabel", "Regression", "SingleLabel", "Task", "make_task", "task_from_spec"]


def make_task(splits: DataSplits, select_metric: str = "auto", target: str | None = None,
              regression_loss: str = "mse") -> Task:
    """The task of ``splits`` (``splits.task``), selecting on ``select_metric`` (``auto``: its main metric);
    ``target`` names a regression target (the label column) in the report, ``regression_loss`` its loss."""
    if splits.task == "regression":
        return Regression.fitted_on(splits.train.labels, select_metric, target or "target", regression_loss)
    if splits.task == "multi-label":
        return MultiLabel(list(splits.classes), select_metric,
                          sep=(splits.split.get("task") or {}).get("label_sep") or "|")
    return SingleLabel(list(splits.classes), select_metric)


def task_from_spec(spec: dict) -> Task:
    """A saved model's task, from its ``headstart.json`` (a model saved before tasks existed is single-label)."""
    record = spec.get("task") or {"name": "single-label"}
    if not isinstance(record, dict):
        raise ValueError("the task must be a record with a 'name'")
    name = record.get("name")
    kinds = {"single-label": SingleLabel, "multi-label": MultiLabel, "regression": Regression}
    if name not in kinds:
        raise ValueError(f"unknown task {name!r}")
    return kinds[name].from_spec(spec)
