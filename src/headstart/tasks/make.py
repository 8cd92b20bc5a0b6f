"""Build a fit's task from its data, or a saved model's from its record."""

from __future__ import annotations

from headstart.data import DataSplits
from headstart.tasks.base import Task
from headstart.tasks.multilabel import MultiLabel
from headstart.tasks.regression import Regression
from headstart.tasks.single import SingleLabel

TASK_CLASSES = {cls.name: cls for cls in (SingleLabel, MultiLabel, Regression)}  # by name (tasks.kinds)


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
    if name not in TASK_CLASSES:
        raise ValueError(f"unknown task {name!r}")
    return TASK_CLASSES[name].from_spec(spec)
