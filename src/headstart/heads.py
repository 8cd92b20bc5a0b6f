"""Classification heads, and the linear probe fitted on cached features with its strength chosen on validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from torch import nn

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class ProbeFit:
    """A fitted linear probe: the head, the chosen inverse regularisation ``C`` and every candidate's scores."""

    head: nn.Linear
    C: float
    candidates: list[dict]


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                 n_classes: int, cs: tuple[float, ...] = DEFAULT_CS, seed: int = 0) -> ProbeFit:
    """Multinomial logistic regression on standardised features; ``C`` chosen by validation accuracy.

    Ties are broken by validation log-loss. The standardisation is folded into the returned
    ``nn.Linear``, so it applies to raw backbone features.
    """
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xt, xv = (x_train - mean) / std, (x_val - mean) / std
    candidates, best = [], None
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(xt, y_train)
        proba = _full_proba(clf, xv, n_classes)
        acc = float((proba.argmax(1) == y_val).mean())
        loss = float(log_loss(y_val, proba, labels=list(range(n_classes))))
        candidates.append({"C": c, "val_accuracy": acc, "val_loss": loss})
        if best is None or (acc, -loss) > (best[1], -best[2]):
            best = (clf, acc, loss, c)
    clf, _, _, c = best
    return ProbeFit(_to_linear(clf, mean, std, x_train.shape[1], n_classes), c, candidates)


def _full_proba(clf: LogisticRegression, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all ``n_classes`` columns, even when training lacked some class."""
    proba = np.zeros((x.shape[0], n_classes))
    proba[:, clf.classes_] = clf.predict_proba(x)
    proba = np.clip(proba, 1e-12, 1.0)
    return proba / proba.sum(1, keepdims=True)


def _to_linear(clf: LogisticRegression, mean: np.ndarray, std: np.ndarray, dim: int, n_classes: int) -> nn.Linear:
    """An ``nn.Linear`` on raw features equal to ``clf`` on standardised ones."""
    coef = np.zeros((n_classes, dim))
    intercept = np.full(n_classes, -1e4)  # a class absent from training is never predicted
    if len(clf.classes_) == 2:  # sklearn's binary form: one logit for the second class
        coef[clf.classes_[1]], intercept[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
        intercept[clf.classes_[0]] = 0.0
        coef[clf.classes_[0]] = 0.0
    else:
        coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
    weight = coef / std
    bias = intercept - (coef * (mean / std)).sum(1)
    head = nn.Linear(dim, n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight).float())
        head.bias.copy_(torch.from_numpy(bias).float())
    return head


class Classifier(nn.Module):
    """A backbone's pooled features followed by a linear head."""

    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.backbone(batch))
