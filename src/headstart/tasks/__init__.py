"""The task a fit learns (single-label, multi-label, regression): one object that decides the head's width, the
loss, the linear probe, the validation scores, what happens after fitting (calibration, thresholds, units),
the metrics, predict's rows and what the saved model records. Fit, the engine, strategies, predict and export
consult it; none of them branch on the task.

Its names and facts (metric names, words, what it has) are one table, ``tasks.kinds``, read without torch: the
names below load on first use (PEP 562), so ``headstart.tasks.kinds`` imports alone (``headstart --help``).

``make_task(splits)`` builds it from the training labels (a regression task standardises the target with the
training mean and deviation); ``task_from_spec`` rebuilds a saved model's from its ``headstart.json``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headstart.tasks.base import Task
    from headstart.tasks.make import make_task, task_from_spec
    from headstart.tasks.multilabel import MultiLabel
    from headstart.tasks.regression import Regression
    from headstart.tasks.single import SingleLabel

_HOMES = {"MultiLabel": "multilabel", "Regression": "regression", "SingleLabel": "single", "Task": "base",
          "make_task": "make", "task_from_spec": "make"}

__all__ = ["MultiLabel", "Regression", "SingleLabel", "Task", "make_task", "task_from_spec"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
