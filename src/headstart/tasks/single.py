"""Single-label classification: one class per item; softmax head, cross-entropy, the logistic probe, temperature
scaling, accuracy and the per-class scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from headstart.training import distributed
from headstart.training.calibration import ECE_BINS, calibration_scores, fit_temperature, fold_temperature
from headstart.training.distributed import BatchLoss
from headstart.training.heads import ProbeFit, linear_probe
from headstart.core.errors import DataError
from headstart.core.metrics import classification_metrics, selection_score, softmax
from headstart.tasks.base import check_select
from headstart.tasks.kinds import SINGLE_LABEL


@dataclass
class SingleLabel:
    """One class of ``classes`` per item."""

    classes: list[str]
    select_metric: str = "auto"
    temperature: float = 1.0  # fitted on validation by ``finish`` (1: not calibrated)
    name: str = field(default=SINGLE_LABEL.name, init=False)

    def __post_init__(self) -> None:
        self.select_metric = check_select(self.name, self.select_metric)

    @property
    def outputs(self) -> int:
        return len(self.classes)

    @property
    def main_metric(self) -> str:
        return SINGLE_LABEL.main_metric

    def fresh_head(self, features: int, targets: np.ndarray) -> nn.Linear:
        return nn.Linear(features, self.outputs)

    def targets(self, labels: Sequence) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[y] for y in labels], dtype=np.int64)

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y, reduction="none")

    def batch_loss(self, outputs: torch.Tensor, y: torch.Tensor, label_smoothing: float,
                   weight: torch.Tensor | None) -> BatchLoss:
        return distributed.batch_loss(outputs, y, label_smoothing, weight)

    def hits(self, outputs: torch.Tensor, y: torch.Tensor) -> int:
        return int((outputs.argmax(1) == y).sum())

    def scores(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        loss = float(F.cross_entropy(torch.from_numpy(outputs).float(), torch.as_tensor(y)))
        row = {"val_loss": loss, "val_accuracy": float((outputs.argmax(1) == y).mean())}
        if self.select_metric != "accuracy":
            row[f"val_{self.select_metric}"] = selection_score(np.asarray(y), outputs.argmax(1), outputs.shape[1],
                                                               self.select_metric)
        return row

    def probe(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              cs: tuple[float, ...], seed: int, class_weight: np.ndarray | None) -> ProbeFit:
        return linear_probe(x_train, y_train, x_val, y_val, len(self.classes), cs, seed, class_weight,
                            self.select_metric)

    def finish(self, model: nn.Module, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray],
               calibrate: bool) -> dict:
        """Temperature scaling (``calibrate``): one temperature fitted on validation, folded into the head; ECE
        and NLL before and after on validation and test."""
        if not calibrate:
            return {}
        self.temperature = fit_temperature(outputs["val"], targets["val"])
        fold_temperature(model, self.temperature)
        return {"calibration": {"temperature": self.temperature, "bins": ECE_BINS, "fitted_on": "val",
                                **{name: calibration_scores(split, targets[name], self.temperature)
                                   for name, split in outputs.items() if name != "train"}}}

    def adjust(self, outputs: np.ndarray) -> np.ndarray:
        return outputs / self.temperature

    def metrics(self, outputs: np.ndarray, labels: Sequence) -> dict:
        return classification_metrics(self.targets(labels), outputs.argmax(1), self.classes)

    def mistakes(self, labels: Sequence, outputs: np.ndarray, limit: int) -> list[tuple[int, dict]]:
        """The most confident misclassified items, with the probability of the class predicted."""
        proba, targets = softmax(np.asarray(outputs, dtype=np.float64)), self.targets(labels)
        predicted = proba.argmax(1)
        wrong = np.flatnonzero(predicted != targets)
        ranked = wrong[np.argsort(-proba[wrong, predicted[wrong]], kind="stable")][:limit]
        return [(int(i), {"true": str(self.classes[targets[i]]), "predicted": str(self.classes[predicted[i]]),
                          "probability": round(float(proba[i, predicted[i]]), 4)}) for i in ranked]

    @staticmethod
    def evidence_targets(labels: np.ndarray) -> np.ndarray:
        """LogME's targets (transferability): one one-hot column per class (the paper's classification form)."""
        if labels.ndim != 1:
            raise DataError(f"labels must be one label per feature row: labels of shape {labels.shape}.")
        classes, codes = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"transferability needs at least 2 classes; the labels hold {len(classes)}.")
        return np.eye(len(classes))[codes.reshape(-1)]

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(outputs, np.float64))

    def rows(self, outputs: np.ndarray) -> list[dict]:
        probs = self.probabilities(outputs)
        return [{"label": self.classes[int(p.argmax())],
                 "probabilities": {c: float(p[i]) for i, c in enumerate(self.classes)}} for p in probs]

    def spec(self) -> dict:
        return {"name": self.name, "temperature": self.temperature}

    @classmethod
    def from_spec(cls, spec: dict) -> "SingleLabel":
        temperature = spec.get("temperature", (spec.get("task") or {}).get("temperature", 1.0))
        return cls(list(spec["classes"]), temperature=float(temperature)
                   if isinstance(temperature, (int, float)) else 1.0)
