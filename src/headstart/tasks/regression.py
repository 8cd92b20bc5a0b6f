"""Regression: one number per item, in the user's units. The head learns the standardised target (training mean
and deviation); ``finish`` folds the scale back into the head, so the saved model, predict and every export give
values in the target's own units. Ridge probe, MSE loss; MAE, RMSE, R² and Spearman with intervals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from headstart.training import distributed
from headstart.training.distributed import BatchLoss
from headstart.training.heads import ProbeFit, moments
from headstart.core.errors import DataError
from headstart.core.metrics import r2, regression_metrics, spearman
from headstart.tasks.base import check_select, linear_from
from headstart.tasks.kinds import REGRESSION

PLOTTED = 2_000  # (true, predicted) pairs per split kept in metrics.json for the report's scatter plot


HUBER_DELTA = 1.0  # in standard deviations of the training target: errors beyond it count linearly
EXTEND = 4  # decades of stronger penalty tried beyond ``cs`` when its strongest wins


@dataclass
class Regression:
    """A numeric target; ``mean`` and ``std`` of the training targets standardise it for training."""

    mean: float
    std: float
    select_metric: str = "auto"
    target: str = "target"
    scale_folded: bool = False  # True once ``finish`` put the units into the head
    loss_kind: str = "mse"  # fine-tuning's loss: mse or huber (``REGRESSION_LOSSES``)
    name: str = field(default=REGRESSION.name, init=False)

    def __post_init__(self) -> None:
        self.select_metric = check_select(self.name, self.select_metric)

    @classmethod
    def fitted_on(cls, labels: Sequence[float], select_metric: str = "auto", target: str = "target",
                  loss_kind: str = "mse") -> "Regression":
        values = np.asarray(labels, dtype=np.float64)
        return cls(float(values.mean()), float(values.std()) or 1.0, select_metric, target, loss_kind=loss_kind)

    @property
    def classes(self) -> list[str]:
        return [self.target]

    @property
    def outputs(self) -> int:
        return 1

    @property
    def main_metric(self) -> str:
        return REGRESSION.main_metric

    def fresh_head(self, features: int, targets: np.ndarray) -> nn.Linear:
        return nn.Linear(features, 1)  # the target is standardised: a bias near 0 starts at its mean

    def targets(self, labels: Sequence) -> np.ndarray:
        return ((np.asarray(labels, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "huber":
            return F.huber_loss(outputs[:, 0], y, reduction="none", delta=HUBER_DELTA)
        return (outputs[:, 0] - y) ** 2

    def batch_loss(self, outputs: torch.Tensor, y: torch.Tensor, label_smoothing: float,
                   weight: torch.Tensor | None) -> BatchLoss:
        return distributed.batch_loss(outputs, y, per_item=self.loss)  # padding rows (NaN targets) left out

    def hits(self, outputs: torch.Tensor, y: torch.Tensor) -> None:
        return None

    def scores(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        pred, y = np.asarray(outputs, np.float64)[:, 0], np.asarray(y, np.float64)
        row = {"val_loss": float(((pred - y) ** 2).mean())}
        for metric in dict.fromkeys((self.main_metric, self.select_metric)):
            value = r2(y, pred) if metric == "r2" else spearman(y, pred)
            row[f"val_{metric}"] = -1.0 if np.isnan(value) else value
        return row

    def probe(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              cs: tuple[float, ...], seed: int, class_weight: np.ndarray | None) -> ProbeFit:
        """Ridge regression on standardised features, ``sum of squared errors / 2 + ||w||^2 / (2 C)`` (``C`` as
        the logistic probe's), solved for every ``C`` at once from one SVD; ``C`` chosen on validation. When the
        smallest ``C`` wins, up to ``EXTEND`` smaller ones (a decade apart) are tried: ridge on a few hundred
        items of a 384-wide embedding often wants more penalty than the logistic grid holds (VADER, 600 words:
        validation R² 0.600 at the grid's strongest, C = 0.001; 0.0001 gave 0.327). Half-decade steps around the
        best were tried and dropped: on the same split test R² went 0.518 -> 0.509."""
        mean, std = moments(x_train)
        xt = (np.asarray(x_train, np.float64) - mean) / std
        xv = (np.asarray(x_val, np.float64) - mean) / std
        y = np.asarray(y_train, np.float64)
        centre = y.mean()
        u, s, vt = np.linalg.svd(xt - xt.mean(0), full_matrices=False)
        uty = u.T @ (y - centre)
        fits: dict[float, tuple[dict, tuple[np.ndarray, np.ndarray]]] = {}

        def solve(c: float) -> None:
            w = vt.T @ (s / (s * s + 1.0 / c) * uty)
            b = centre - xt.mean(0) @ w
            fits[c] = ({"C": c, "alpha": 1.0 / c, "rows": len(y), **self.scores((xv @ w + b)[:, None], y_val)}, (w, b))

        def best() -> float:
            return max(fits, key=lambda c: (fits[c][0][f"val_{self.select_metric}"], -fits[c][0]["val_loss"]))

        for c in sorted(cs):
            solve(c)
        for _ in range(EXTEND):  # the strongest penalty tried won: try stronger ones, a decade at a time
            if best() != min(fits):
                break
            solve(min(fits) / 10)
        w, b = fits[best()][1]
        candidates = [fits[c][0] for c in sorted(fits)]
        head = linear_from((w / std)[None, :], np.array([b - (w * mean / std).sum()]))
        return ProbeFit(head, best(), candidates)

    def finish(self, model: nn.Module, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray],
               calibrate: bool) -> dict:
        """Fold the target's scale into the head: its output becomes ``output * std + mean``."""
        with torch.no_grad():
            model.head.weight.mul_(self.std)
            model.head.bias.mul_(self.std).add_(self.mean)
        adapter = getattr(model, "adapter", None)  # LoRA's saved head, kept in step with the model's
        for key, tensor in (getattr(adapter, "tensors", None) or {}).items():
            if key == "head.weight":
                adapter.tensors[key] = tensor * self.std
            elif key == "head.bias":
                adapter.tensors[key] = tensor * self.std + self.mean
        self.scale_folded = True
        return {"target": {"name": self.target, "train_mean": self.mean, "train_std": self.std,
                           "units": "the target's own"}}

    def adjust(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs, np.float64) * self.std + self.mean

    def metrics(self, outputs: np.ndarray, labels: Sequence) -> dict:
        truth = np.asarray(labels, dtype=np.float64)
        out = regression_metrics(truth, np.asarray(outputs, np.float64)[:, 0])
        out["train_mean_baseline_mae"] = float(np.abs(truth - self.mean).mean())  # predict the training mean
        out["train_mean_baseline_r2"] = r2(truth, np.full_like(truth, self.mean))
        out["predictions"] = kept_predictions(truth, np.asarray(outputs, np.float64)[:, 0])
        return out

    def mistakes(self, labels: Sequence, outputs: np.ndarray, limit: int) -> list[tuple[int, dict]]:
        """The items with the largest absolute errors."""
        truth, pred = np.asarray(labels, np.float64), np.asarray(outputs, np.float64)[:, 0]
        ranked = np.argsort(-np.abs(truth - pred), kind="stable")[:limit]
        return [(int(i), {"true": f"{truth[i]:.4g}", "predicted": f"{pred[i]:.4g}", "error": float(pred[i] - truth[i])})
                for i in ranked]

    @staticmethod
    def evidence_targets(labels: np.ndarray) -> np.ndarray:
        """LogME's target (transferability): the standardised values, one regression (LogME's native form)."""
        values = np.asarray(labels, dtype=np.float64)
        if values.ndim != 1 or not np.isfinite(values).all():
            raise DataError(f"a regression target must be one finite number per row; got shape {values.shape}.")
        if values.std() == 0:
            raise DataError("the regression target is constant: transferability needs values that vary.")
        return ((values - values.mean()) / values.std())[:, None]

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs, np.float64)  # no probabilities: the values themselves

    def rows(self, outputs: np.ndarray) -> list[dict]:
        return [{"value": float(v)} for v in np.asarray(outputs, np.float64)[:, 0]]

    def spec(self) -> dict:
        return {"name": self.name, "target": self.target, "train_mean": self.mean, "train_std": self.std,
                "scale_folded": self.scale_folded}

    @classmethod
    def from_spec(cls, spec: dict) -> "Regression":
        record = spec["task"]
        mean, std = float(record["train_mean"]), float(record["train_std"])
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ValueError("the task's train_mean must be a finite number and train_std a positive one")
        return cls(mean, std, target=str(record.get("target", "target")),
                   scale_folded=bool(record.get("scale_folded", True)))


def kept_predictions(truth: np.ndarray, pred: np.ndarray, limit: int = PLOTTED) -> dict:
    """At most ``limit`` items' true and predicted values, evenly spaced over the split, to 4 significant digits:
    what the report's predicted-vs-true plot draws."""
    rows = np.linspace(0, len(truth) - 1, limit).round().astype(int) if len(truth) > limit else np.arange(len(truth))
    return {"true": [float(f"{v:.4g}") for v in truth[rows]], "predicted": [float(f"{v:.4g}") for v in pred[rows]]}
