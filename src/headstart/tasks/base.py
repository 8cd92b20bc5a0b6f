"""The contract of a task; see headstart.tasks."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import torch
from torch import nn

from headstart.training.distributed import BatchLoss
from headstart.core.errors import ConfigError
from headstart.tasks.kinds import KINDS


class Task(Protocol):
    """What a fit's labels ask of the head, the loss, the probe, the metrics and predict's output."""

    name: str  # single-label | multi-label | regression
    classes: list[str]  # the head's outputs by name (classes, labels, or the target)
    select_metric: str  # what chooses the probe's strength and the epoch kept (``val_`` + it in history rows)

    @property
    def outputs(self) -> int:
        """The head's width."""

    @property
    def main_metric(self) -> str:
        """The metric the task is judged by (learning curves, compare's recommendation)."""

    def fresh_head(self, features: int, targets: np.ndarray) -> nn.Linear:
        """A new head for fine-tuning (drawn from the caller's generator), knowing the training targets."""

    def targets(self, labels: Sequence) -> np.ndarray:
        """The labels in the form the loss takes (class codes, 0/1 rows, standardised values)."""

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-item loss of a batch (``[n]``), before any weighting; NaN targets (padding) give NaN rows."""

    def batch_loss(self, outputs: torch.Tensor, y: torch.Tensor, label_smoothing: float,
                   weight: torch.Tensor | None) -> BatchLoss:
        """A training batch's loss (``distributed.batch_loss``: one process's mean, scaled under a launch);
        label smoothing and class weights are single-label's."""

    def hits(self, outputs: torch.Tensor, y: torch.Tensor) -> int | None:
        """Correct items of a training batch (the accuracy shown as it trains); None for a task without one."""

    def scores(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        """Validation row of a history: ``val_loss``, ``val_<main metric>`` and ``val_<select metric>``."""

    def probe(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              cs: tuple[float, ...], seed: int, class_weight: np.ndarray | None):
        """The linear head fitted on cached features, its strength chosen on validation (``heads.ProbeFit``)."""

    def finish(self, model: nn.Module, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray],
               calibrate: bool) -> dict:
        """After fitting, from the outputs and targets by split: fold what the task learns on validation into
        ``model``'s head (temperature, units) or keep it (thresholds); what to add to metrics.json."""

    def adjust(self, outputs: np.ndarray) -> np.ndarray:
        """Outputs of the model as it was before ``finish``, as the finished model gives them."""

    def metrics(self, outputs: np.ndarray, labels: Sequence) -> dict:
        """The task's metrics of the finished model's ``outputs`` against the dataset's ``labels``."""

    def mistakes(self, labels: Sequence, outputs: np.ndarray, limit: int) -> list[tuple[int, dict]]:
        """The report's gallery: the ``limit`` worst mistakes of the finished model's ``outputs`` against ``labels``,
        worst first, as ``(index, {"true", "predicted", ...})`` (the caller adds the item's origin and preview)."""

    @staticmethod
    def evidence_targets(labels: np.ndarray) -> np.ndarray:
        """The ``[N, T]`` targets whose LogME evidence, averaged, scores a backbone for this task
        (``workflows.transferability.logme``); a DataError saying why when there is none."""

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """The finished model's outputs as probabilities (softmax; each label's sigmoid); a regression's values."""

    def rows(self, outputs: np.ndarray) -> list[dict]:
        """Predict's output per item: the label(s) or value, and the probabilities where there are some."""

    def spec(self) -> dict:
        """What a saved model records of the task (``headstart.json``'s ``task``)."""


def check_select(task: str, metric: str) -> str:
    """``metric`` when the task can select on it (``auto``: the task's main metric), else ConfigError."""
    allowed = KINDS[task].select_metrics
    if metric == "auto":
        return allowed[0]
    if metric not in allowed:
        raise ConfigError(f"--select-metric {metric} does not apply to a {task} task; use one of "
                          f"{', '.join(allowed)} (or auto).")
    return metric


def linear_from(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    """An ``nn.Linear`` holding ``weight`` ``[out, in]`` and ``bias`` ``[out]`` (float32)."""
    head = nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0])  # set below: no draw from the generator
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.asarray(weight, np.float64)).float())
        head.bias.copy_(torch.from_numpy(np.asarray(bias, np.float64)).float())
    return head
