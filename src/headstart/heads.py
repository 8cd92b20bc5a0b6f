"""Classification heads, and the linear probe fitted on cached features with its strength chosen on validation."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss
from torch import nn

from headstart.metrics import selection_score

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class ProbeFit:
    """A fitted linear probe: the head, the chosen inverse regularisation ``C`` and every candidate's scores."""

    head: nn.Linear
    C: float
    candidates: list[dict]


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                 n_classes: int, cs: tuple[float, ...] = DEFAULT_CS, seed: int = 0,
                 class_weight: np.ndarray | None = None, select_metric: str = "accuracy") -> ProbeFit:
    """L2-regularised logistic regression on standardised features; ``C`` chosen by validation
    ``select_metric`` (accuracy, macro_f1 or balanced_accuracy; ``metrics.SELECT_METRICS``).

    ``class_weight`` (one per class, e.g. ``balance.class_weights``) weighs each item's log-loss by its class,
    as scikit-learn's ``class_weight`` does; weights that average 1 over the items keep ``C``'s meaning.

    The objective is scikit-learn's (``C * sum(log-loss) + ||W||^2 / 2``, binary form for two classes),
    solved by full-batch L-BFGS in float64 with a warm start along ``cs`` from strong to weak
    regularisation: the same solution in a fraction of the time. Ties are broken by validation
    log-loss. The path stops at the first ``C`` that is not better and whose validation loss rose (the
    optimum is behind; the weakest regularisation costs the most iterations). The standardisation is folded into the returned ``nn.Linear`` (it takes raw features).
    ``seed`` is accepted for the strategy contract; the solve is deterministic.
    """
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.from_numpy((x_train - mean) / std).double()
    xv = torch.from_numpy((x_val - mean) / std).double()
    present = np.unique(y_train)
    remap = {c: i for i, c in enumerate(present)}
    yt = torch.tensor([remap[c] for c in y_train])
    item_weight = None if class_weight is None else torch.from_numpy(np.asarray(class_weight, np.float64)[present])
    candidates, best, init = [], None, None
    for c in sorted(cs):
        weight, bias = _solve(xt, yt, len(present), c, init, item_weight)
        init = (weight, bias)
        proba = np.full((len(x_val), n_classes), 1e-12)
        proba[:, present] = torch.softmax(_logits(xv, weight, bias), 1).numpy()
        proba /= proba.sum(1, keepdims=True)
        acc = float((proba.argmax(1) == y_val).mean())
        loss = float(log_loss(y_val, proba, labels=list(range(n_classes))))
        rising = bool(candidates) and loss > candidates[-1]["val_loss"]
        candidates.append({"C": c, "val_accuracy": acc, "val_loss": loss})
        if select_metric != "accuracy":
            acc = candidates[-1][f"val_{select_metric}"] = selection_score(y_val, proba.argmax(1), n_classes,
                                                                           select_metric)
        if best is None or (acc, -loss) > (best[0], -best[1]):
            best = (acc, loss, c, weight, bias)
        elif rising:  # past the validation optimum: weaker regularisation costs the most iterations, for nothing
            break
    candidates.sort(key=lambda cand: list(cs).index(cand["C"]))
    _, _, c, weight, bias = best
    return ProbeFit(_to_linear(weight, bias, present, mean, std, n_classes), c, candidates)


def fit_predict_logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Labels predicted for ``x_test`` by the L2 logistic regression fitted on standardised ``x_train``."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    present, codes = np.unique(y_train, return_inverse=True)
    xt = torch.from_numpy((x_train - mean) / std).double()
    weight, bias = _solve(xt, torch.from_numpy(codes), len(present), c)
    logits = _logits(torch.from_numpy((x_test - mean) / std).double(), weight, bias)
    return present[logits.argmax(1).numpy()]


def fit_predict_proba(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int,
                      c: float = 1.0) -> np.ndarray:
    """``[len(x_test), n_classes]`` class probabilities of the same logistic regression as
    :func:`fit_predict_logistic`; ``y_train`` holds codes ``0..n_classes-1``, absent classes get 0."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    present, codes = np.unique(y_train, return_inverse=True)
    xt = torch.from_numpy((x_train - mean) / std).double()
    weight, bias = _solve(xt, torch.from_numpy(codes.reshape(-1)), len(present), c)
    logits = _logits(torch.from_numpy((x_test - mean) / std).double(), weight, bias)
    proba = np.zeros((len(x_test), n_classes))
    proba[:, present] = torch.softmax(logits, 1).numpy()
    return proba


def _logits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Class logits; the binary form has one weight row and a fixed zero logit for the first class."""
    z = x @ weight.T + bias
    return torch.cat([torch.zeros_like(z), z], 1) if weight.shape[0] == 1 else z


def _solve(x: torch.Tensor, y: torch.Tensor, k: int, c: float, init=None,
           class_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``mean CE + ||W||^2 / (2 C n)`` with L-BFGS (the class-weighted mean CE with ``class_weight``,
    one per class of ``y``); one weight row when ``k == 2``."""
    rows = 1 if k == 2 else k
    weight = (init[0].clone() if init else torch.zeros(rows, x.shape[1], dtype=torch.float64)).requires_grad_()
    bias = (init[1].clone() if init else torch.zeros(rows, dtype=torch.float64)).requires_grad_()
    penalty = 1.0 / (2.0 * c * len(y))
    with _one_thread():  # L-BFGS's many small vector dot products run up to 1000x slower multi-threaded
        return _run_lbfgs(x, y, weight, bias, penalty, class_weight)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the block on one intra-op thread, restoring the caller's setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_lbfgs(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               penalty: float, class_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=1000, history_size=20, tolerance_grad=1e-6,
                                  tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(_logits(x, weight, bias), y, weight=class_weight) + penalty * (weight * weight).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def _to_linear(weight: torch.Tensor, bias: torch.Tensor, present: np.ndarray, mean: np.ndarray, std: np.ndarray,
               n_classes: int) -> nn.Linear:
    """An ``nn.Linear`` over all classes on raw features, equal to the solved model on standardised ones."""
    dim = weight.shape[1]
    coef = np.zeros((n_classes, dim))
    intercept = np.full(n_classes, -1e4)  # a class absent from training is never predicted
    if weight.shape[0] == 1:  # binary form: the first present class has the fixed zero logit
        coef[present[1]], intercept[present[1]] = weight[0].numpy(), float(bias[0])
        intercept[present[0]] = 0.0
    else:
        coef[present], intercept[present] = weight.numpy(), bias.numpy()
    folded_weight = coef / std
    folded_bias = intercept - (coef * (mean / std)).sum(1)
    head = nn.utils.skip_init(nn.Linear, dim, n_classes)  # both set below: no draw from the global generator
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(folded_weight).float())
        head.bias.copy_(torch.from_numpy(folded_bias).float())
    return head


class Classifier(nn.Module):
    """A backbone's pooled features followed by a linear head."""

    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.backbone(batch))
