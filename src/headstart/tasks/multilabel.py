"""Multi-label classification: any number of labels per item (none included); one sigmoid per label, binary
cross-entropy, a one-vs-rest logistic probe, and per-label decision thresholds tuned on validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from headstart.training import distributed
from headstart.training.distributed import BatchLoss
from headstart.training.heads import EXACT_VALUES, ProbeFit, lbfgs, moments, one_thread, standardised
from headstart.core.errors import DataError
from headstart.core.metrics import f1, multilabel_metrics, multilabel_score
from headstart.tasks.base import check_select, linear_from
from headstart.tasks.kinds import MULTI_LABEL

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)  # candidate thresholds, tuned per label on validation
MIN_POSITIVES = 3  # a label with fewer validation positives keeps 0.5: too few to tune on


@dataclass
class MultiLabel:
    """Any subset of ``classes`` per item."""

    classes: list[str]
    select_metric: str = "auto"
    thresholds: np.ndarray | None = None  # per label, tuned on validation by ``finish`` (None: 0.5)
    sep: str = "|"  # what separated a table cell's labels (evaluate reads new tables with it)
    name: str = field(default=MULTI_LABEL.name, init=False)

    def __post_init__(self) -> None:
        self.select_metric = check_select(self.name, self.select_metric)
        if self.thresholds is None:
            self.thresholds = np.full(len(self.classes), 0.5)

    @property
    def outputs(self) -> int:
        return len(self.classes)

    @property
    def main_metric(self) -> str:
        return MULTI_LABEL.main_metric

    def fresh_head(self, features: int, targets: np.ndarray) -> nn.Linear:
        """A new head whose biases start at each label's training log-odds, so the first steps predict the
        labels' frequencies instead of 0.5 everywhere: the first gradients no longer push every label down at
        once through the unfrozen backbone (Lin et al. 2017's prior initialisation). Measured with partial: MNIST
        digit pairs (360 training images, MobileNetV2) test micro-F1 0.676 -> 0.792; NRC emotions (600 words,
        MiniLM-L6) 0.544/0.506/0.556 -> 0.508/0.549/0.556 over seeds 0/1/2, no change on average."""
        head = nn.Linear(features, self.outputs)
        prevalence = np.clip(np.asarray(targets, np.float64).mean(0), 0.01, 0.99)
        with torch.no_grad():
            head.bias.copy_(torch.from_numpy(np.log(prevalence / (1 - prevalence))).float())
        return head

    def targets(self, labels: Sequence) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        out = np.zeros((len(labels), len(self.classes)), dtype=np.float32)
        for row, names in enumerate(labels):
            out[row, [index[name] for name in names if name in index]] = 1.0
        return out

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs, y, reduction="none").mean(1)

    def batch_loss(self, outputs: torch.Tensor, y: torch.Tensor, label_smoothing: float,
                   weight: torch.Tensor | None) -> BatchLoss:
        return distributed.batch_loss(outputs, y, per_item=self.loss)  # padding rows (NaN targets) left out

    def hits(self, outputs: torch.Tensor, y: torch.Tensor) -> None:
        return None

    def scores(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        """Validation loss and the metrics at a 0.5 threshold (thresholds are tuned once, after fitting)."""
        proba = sigmoid(outputs)
        loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(outputs).double(),
                                                        torch.from_numpy(np.asarray(y, np.float64))))
        row = {"val_loss": loss}
        for metric in dict.fromkeys((self.main_metric, self.select_metric)):
            row[f"val_{metric}"] = multilabel_score(metric, y, proba, np.full(proba.shape[1], 0.5))
        return row

    def probe(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              cs: tuple[float, ...], seed: int, class_weight: np.ndarray | None) -> ProbeFit:
        """One-vs-rest L2 logistic regressions sharing one ``C`` (the sum of their objectives, solved at once by
        L-BFGS, warm-started from strong to weak regularisation), chosen by the select metric on validation."""
        mean, std = moments(x_train)
        dtype = torch.float64 if x_train.size <= EXACT_VALUES else torch.float32
        xt, xv = standardised(x_train, mean, std, dtype), standardised(x_val, mean, std, dtype)
        yt = torch.from_numpy(np.asarray(y_train)).to(dtype)
        weight = torch.zeros(yt.shape[1], xt.shape[1], dtype=dtype, requires_grad=True)
        bias = torch.zeros(yt.shape[1], dtype=dtype, requires_grad=True)
        candidates, solutions, iterations = [], [], 0
        for c in sorted(cs):
            iterations += _solve_bce(xt, yt, weight, bias, 1.0 / (2.0 * c * len(yt)))
            logits = (xv @ weight.detach().T + bias.detach()).double().numpy()
            cand = {"C": c, "rows": len(yt), **self.scores(logits, y_val)}
            candidates.append(cand)
            solutions.append((weight.detach().clone(), bias.detach().clone()))
            best = max(range(len(candidates)), key=lambda i: _key(candidates[i], self.select_metric))
            if best != len(candidates) - 1 and len(candidates) > 1 and cand["val_loss"] > candidates[-2]["val_loss"]:
                break  # past the validation optimum
        best = max(range(len(candidates)), key=lambda i: _key(candidates[i], self.select_metric))
        w, b = (t.double().numpy() for t in solutions[best])
        head = linear_from(w / std, b - (w * (mean / std)).sum(1))
        return ProbeFit(head, candidates[best]["C"], candidates, iterations)

    def finish(self, model: nn.Module, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray],
               calibrate: bool) -> dict:
        """Each label's decision threshold: the one of ``THRESHOLD_GRID`` with the best validation F1 (0.5 for a
        label with fewer than ``MIN_POSITIVES`` validation positives, or when none beats it)."""
        val_y = targets["val"]
        proba = sigmoid(outputs["val"])
        y = np.asarray(val_y) > 0.5
        chosen = np.full(len(self.classes), 0.5)
        for i in range(len(self.classes)):
            if y[:, i].sum() < MIN_POSITIVES:
                continue
            chosen[i] = max((f1(y[:, i], proba[:, i] >= t), -abs(t - 0.5), t) for t in THRESHOLD_GRID)[2]
        half = np.full(len(self.classes), 0.5)
        self.thresholds = chosen
        return {"thresholds": {"by_label": {c: float(t) for c, t in zip(self.classes, chosen)}, "tuned_on": "val",
                               "val_micro_f1_at_0.5": multilabel_score("micro_f1", val_y, proba, half),
                               "val_micro_f1_tuned": multilabel_score("micro_f1", val_y, proba, chosen),
                               "val_macro_f1_at_0.5": multilabel_score("macro_f1", val_y, proba, half),
                               "val_macro_f1_tuned": multilabel_score("macro_f1", val_y, proba, chosen)}}

    def adjust(self, outputs: np.ndarray) -> np.ndarray:
        return outputs

    def metrics(self, outputs: np.ndarray, labels: Sequence) -> dict:
        return multilabel_metrics(self.targets(labels), sigmoid(outputs), self.thresholds, self.classes)

    def mistakes(self, labels: Sequence, outputs: np.ndarray, limit: int) -> list[tuple[int, dict]]:
        """The items with the most wrong labels (missed or extra), the most confident first."""
        proba, y = sigmoid(outputs), self.targets(labels) > 0.5
        pred = proba >= self.thresholds
        wrong = (pred != y).sum(1)
        confidence = np.abs(proba - 0.5).max(1)
        ranked = [i for i in np.lexsort((-confidence, -wrong)) if wrong[i]][:limit]
        return [(int(i), {"true": ", ".join(labels[i]) or "(none)",
                          "predicted": ", ".join(c for c, p in zip(self.classes, pred[i]) if p) or "(none)"})
                for i in ranked]

    @staticmethod
    def evidence_targets(labels: np.ndarray) -> np.ndarray:
        """LogME's targets (transferability) of the ``[N, labels]`` 0/1 matrix: each label is a binary
        classification, its presence and its absence; a label always or never present carries no evidence and
        is left out, so the evidence is the mean over the informative labels."""
        y = np.asarray(labels, dtype=np.float64) > 0.5
        if y.ndim != 2:
            raise DataError(f"multi-label targets must be a [rows, labels] 0/1 matrix; got shape {labels.shape}.")
        varying = y.any(0) & ~y.all(0)
        if not varying.any():
            raise DataError("no label is present on some items and absent on others: nothing to transfer to.")
        y = y[:, varying].astype(np.float64)
        return np.concatenate([y, 1.0 - y], axis=1)  # equal columns per label: their mean is the mean over labels

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return sigmoid(outputs)

    def rows(self, outputs: np.ndarray) -> list[dict]:
        proba = self.probabilities(outputs)
        return [{"labels": [c for c, p, t in zip(self.classes, row, self.thresholds) if p >= t],
                 "probabilities": {c: float(p) for c, p in zip(self.classes, row)}} for row in proba]

    def spec(self) -> dict:
        return {"name": self.name, "thresholds": [float(t) for t in self.thresholds], "label_sep": self.sep}

    @classmethod
    def from_spec(cls, spec: dict) -> "MultiLabel":
        thresholds = spec["task"].get("thresholds")
        if not isinstance(thresholds, list) or len(thresholds) != len(spec["classes"]) or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in thresholds):
            raise ValueError("the task's thresholds must be a list with one number from 0 to 1 per label")
        return cls(list(spec["classes"]), thresholds=np.asarray(thresholds, dtype=np.float64),
                   sep=str(spec["task"].get("label_sep") or "|"))


def sigmoid(outputs: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, in float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(outputs, np.float64)))


def _solve_bce(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, penalty: float) -> int:
    """Minimise ``mean over items of the summed BCE + penalty * ||W||^2`` in place; L-BFGS iterations."""
    optimizer = lbfgs(weight, bias)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ weight.T + bias, y, reduction="sum") / len(y)
        loss = loss + penalty * (weight * weight).sum()
        loss.backward()
        return loss

    with one_thread():
        optimizer.step(closure)
    return int(optimizer.state[weight]["n_iter"])


def _key(candidate: dict, metric: str) -> tuple:
    return (candidate[f"val_{metric}"], -candidate["val_loss"])
