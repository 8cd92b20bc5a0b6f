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

from headstart.core.metrics import selection_score
from headstart.training.defaults import DEFAULT_CS

PATH_ROWS = 4096  # above this many training rows the C path is walked on a stratified sample of this size
FINE_CS = 2  # ...and then on all rows at most this many Cs: the sample's best and the next weaker one
# Up to this many training values: float64 to a gradient of 1e-6 (sklearn's exact optimum); above, float32 to
# sklearn's own 1e-4. Measured at 2,700 x 1,280: 10.5 s -> 1.1 s, the same predictions as sklearn.
EXACT_VALUES = 250_000
MAX_ITER = 1000


@dataclass(frozen=True)
class ProbeFit:
    """A fitted linear probe: the head, the chosen inverse regularisation ``C``, every candidate's scores, and
    the L-BFGS iterations spent on all training rows (``iterations``) and on the path's sample."""

    head: nn.Linear
    C: float
    candidates: list[dict]
    iterations: int = 0
    sample_iterations: int = 0


@dataclass
class _Path:
    """Solutions along a C path: one candidate dict and ``(weight, bias)`` per C tried, and L-BFGS iterations."""

    candidates: list[dict]
    solutions: list[tuple[torch.Tensor, torch.Tensor]]
    iterations: int
    metric: str = "val_accuracy"  # the candidates' key chosen on (``val_`` + the select metric)

    def best(self) -> int:
        """Index of the best candidate: the select metric on validation, ties broken by validation loss."""
        return max(range(len(self.candidates)),
                   key=lambda i: (self.candidates[i][self.metric], -self.candidates[i]["val_loss"]))


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                 n_classes: int, cs: tuple[float, ...] = DEFAULT_CS, seed: int = 0,
                 class_weight: np.ndarray | None = None, select_metric: str = "accuracy") -> ProbeFit:
    """L2-regularised logistic regression on standardised features; ``C`` chosen by validation
    ``select_metric`` (accuracy, macro_f1 or balanced_accuracy; ``metrics.SELECT_METRICS``).

    ``class_weight`` (one per class, e.g. ``balance.class_weights``) weighs each item's log-loss by its class,
    as scikit-learn's ``class_weight`` does; weights that average 1 over the items keep ``C``'s meaning.

    The objective is scikit-learn's (``C * sum(log-loss) + ||W||^2 / 2``, binary form for two classes),
    solved by full-batch L-BFGS with a warm start along ``cs`` from strong to weak regularisation. Ties are
    broken by validation log-loss. The path stops at the first ``C`` that is not better and whose validation
    loss rose (the optimum is behind; the weakest regularisation costs the most iterations). Above
    :data:`PATH_ROWS` training rows the path is walked on a stratified sample of that many rows (coarse), then
    resumed on all rows from the sample's best ``C`` and solution at :data:`FINE_CS` Cs, that one and the next
    weaker (fine). At 24,000 x 1,280 features and 10 classes, on this 2-core machine under load, 72 s for the
    path on all rows became 25 s with a walk on all rows toward weaker and then stronger regularisation; at
    18,000 training rows FINE_CS then cut the iterations on all rows from 163 to 132. Up to
    :data:`EXACT_VALUES` values the solve is float64 (sklearn's optimum), above it float32 at sklearn's own
    tolerance. The features are never copied for the solve (see :class:`Scaled`); the standardisation is folded
    into the returned ``nn.Linear`` (it takes raw features). ``seed`` chooses the sample.
    """
    mean, std = moments(x_train)
    dtype = torch.float64 if x_train.size <= EXACT_VALUES else torch.float32
    xt, xv = Scaled.of(x_train, mean, std, dtype), Scaled.of(x_val, mean, std, dtype)
    present, codes = np.unique(y_train, return_inverse=True)
    yt = torch.from_numpy(codes.reshape(-1))
    order = sorted(cs)
    item_weight = None if class_weight is None else torch.from_numpy(
        np.asarray(class_weight, np.float64)[present]).to(dtype)
    metric = f"val_{select_metric}"

    def score(weight: torch.Tensor, bias: torch.Tensor, c: float) -> dict:
        proba = np.full((len(x_val), n_classes), 1e-12)
        proba[:, present] = torch.softmax(_logits(xv, weight, bias).double(), 1).numpy()
        proba /= proba.sum(1, keepdims=True)
        cand = {"C": c, "val_accuracy": float((proba.argmax(1) == y_val).mean()),
                "val_loss": float(log_loss(y_val, proba, labels=list(range(n_classes))))}
        if select_metric != "accuracy":
            cand[metric] = selection_score(y_val, proba.argmax(1), n_classes, select_metric)
        return cand

    def walk(x: Scaled, y: torch.Tensor, cs_: list[float], init=None, path: _Path | None = None,
             last: dict | None = None) -> _Path:
        return _walk(x, y, len(present), cs_, score, init, path or _Path([], [], 0, metric), last, item_weight)

    sample_iterations, sampled = 0, []
    if len(yt) > PATH_ROWS:
        rows = torch.from_numpy(stratified_sample(codes, PATH_ROWS, seed))
        coarse = walk(xt.rows(rows), yt[rows], order)
        sample_iterations, start = coarse.iterations, coarse.best()
        init, weaker = coarse.solutions[start], order[start:]
        sampled = [{**cand, "rows": len(rows)} for cand in coarse.candidates]
        path = walk(xt, yt, weaker[:FINE_CS], init)  # more rows bear weaker regularisation, never stronger
    else:
        path = walk(xt, yt, order)
    for cand in path.candidates:
        cand["rows"] = len(yt)
    weight, bias = path.solutions[path.best()]
    chosen = path.candidates[path.best()]["C"]
    tried = {cand["C"]: cand for cand in sampled + path.candidates}  # all rows' score where both were tried
    candidates = sorted(tried.values(), key=lambda cand: list(cs).index(cand["C"]))
    head = _to_linear(weight.double(), bias.double(), present, mean, std, n_classes)
    return ProbeFit(head, chosen, candidates, path.iterations, sample_iterations)


def _walk(x: Scaled, y: torch.Tensor, k: int, cs: list[float], score, init=None,
          path: _Path | None = None, last: dict | None = None, class_weight: torch.Tensor | None = None) -> _Path:
    """Solve for each C in ``cs`` in turn, warm-started from the last, scoring each on validation, until one is
    not better than the best and its validation loss rose; ``path`` continues an earlier walk from ``last``."""
    path = path or _Path([], [], 0)
    for c in cs:
        weight, bias, steps = _solve(x, y, k, c, init, class_weight)
        init = (weight, bias)
        path.iterations += steps
        cand = score(weight, bias, c)
        rising = last is not None and cand["val_loss"] > last["val_loss"]
        path.candidates.append(cand)
        last = cand
        path.solutions.append(init)
        if path.best() != len(path.candidates) - 1 and rising:
            break  # past the validation optimum: weaker regularisation costs the most iterations, for nothing
    return path


def stratified_sample(codes: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a seeded sample of ``size`` rows with every class in proportion (at least one each)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(codes)
    quota = np.maximum(1, np.floor(counts * size / len(codes))).astype(int)
    quota = np.minimum(quota, counts)
    rows = [rng.choice(np.flatnonzero(codes == c), q, replace=False) for c, q in enumerate(quota) if q]
    return np.sort(np.concatenate(rows))


def fit_predict_logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Labels predicted for ``x_test`` by the L2 logistic regression fitted on standardised ``x_train``."""
    present, logits = _fit_logits(x_train, y_train, x_test, c)
    return present[logits.argmax(1).numpy()]


def fit_predict_proba(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int,
                      c: float = 1.0) -> np.ndarray:
    """``[len(x_test), n_classes]`` class probabilities of the same logistic regression as
    :func:`fit_predict_logistic`; ``y_train`` holds codes ``0..n_classes-1``, absent classes get 0."""
    present, logits = _fit_logits(x_train, y_train, x_test, c)
    proba = np.zeros((len(x_test), n_classes))
    proba[:, present] = torch.softmax(logits.double(), 1).numpy()
    return proba


def _fit_logits(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                c: float) -> tuple[np.ndarray, torch.Tensor]:
    """``(classes present in training, logits of x_test)`` of the logistic regression fitted at ``c``."""
    mean, std = moments(x_train)
    dtype = torch.float64 if np.size(x_train) <= EXACT_VALUES else torch.float32
    present, codes = np.unique(y_train, return_inverse=True)
    weight, bias, _ = _solve(Scaled.of(x_train, mean, std, dtype), torch.from_numpy(codes.reshape(-1)),
                             len(present), c)
    return present, _logits(Scaled.of(x_test, mean, std, dtype), weight, bias)


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (+1e-6), accumulated in float64."""
    x64 = np.asarray(x, dtype=np.float64) if np.size(x) <= EXACT_VALUES else None
    if x64 is not None:
        return x64.mean(0), x64.std(0) + 1e-6
    mean = np.zeros(x.shape[1])
    square = np.zeros(x.shape[1])
    for start in range(0, len(x), 8192):  # float64 sums without a float64 copy of the whole matrix
        block = np.asarray(x[start:start + 8192], dtype=np.float64)
        mean += block.sum(0)
        square += (block * block).sum(0)
    mean /= len(x)
    return mean, np.sqrt(np.maximum(square / len(x) - mean * mean, 0.0)) + 1e-6


def standardised(x: np.ndarray, mean: np.ndarray, std: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """``(x - mean) / std`` as a new tensor of ``dtype``, computed block by block (no float64 temporary)."""
    out = torch.empty(x.shape, dtype=dtype)
    np_out = out.numpy()
    for start in range(0, len(x), 8192):
        np_out[start:start + 8192] = (np.asarray(x[start:start + 8192], dtype=np.float64) - mean) / std
    return out


@dataclass(frozen=True)
class Scaled:
    """Features standardised without a standardised copy: raw rows ``x`` (the caller's array itself when it is
    already float32 and contiguous in the float32 solve), with ``(x - mean) / std`` folded into the weights each
    time logits are taken. At 30,000 x 1,280 features that keeps the 154 MB copy (train and validation) out
    of the fit's memory; the matrix product costs the same."""

    x: torch.Tensor
    mean: torch.Tensor
    inv_std: torch.Tensor

    @classmethod
    def of(cls, x: np.ndarray, mean: np.ndarray, std: np.ndarray, dtype: torch.dtype) -> "Scaled":
        """``x`` in ``dtype`` (no copy when it is already that, contiguous) with the moments to apply."""
        raw = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64 if dtype == torch.float64 else np.float32))
        return cls(raw, torch.from_numpy(mean).to(dtype), torch.from_numpy(1.0 / std).to(dtype))

    def rows(self, index: torch.Tensor) -> "Scaled":
        """The rows at ``index`` (a copy of those rows only)."""
        return Scaled(self.x[index], self.mean, self.inv_std)

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    @property
    def shape(self) -> torch.Size:
        return self.x.shape

    def __len__(self) -> int:
        return len(self.x)

    def product(self, weight: torch.Tensor) -> torch.Tensor:
        """``standardised(x) @ weight.T``, as ``x @ (weight / std).T - (weight / std) @ mean``."""
        folded = weight * self.inv_std
        return self.x @ folded.T - folded @ self.mean


def _logits(x: Scaled, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Class logits; the binary form has one weight row and a fixed zero logit for the first class."""
    z = x.product(weight) + bias
    return torch.cat([torch.zeros_like(z), z], 1) if weight.shape[0] == 1 else z


def _solve(x: Scaled, y: torch.Tensor, k: int, c: float, init=None,
           class_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minimise ``mean CE + ||W||^2 / (2 C n)`` with L-BFGS (the class-weighted mean CE with ``class_weight``,
    one per class of ``y``); one weight row when ``k == 2``. Returns ``(weight, bias, iterations)`` in ``x``'s
    dtype."""
    rows = 1 if k == 2 else k
    zeros = torch.zeros(rows, x.shape[1], dtype=x.dtype), torch.zeros(rows, dtype=x.dtype)
    weight, bias = (t.to(x.dtype).clone().requires_grad_() for t in (init or zeros))
    penalty = 1.0 / (2.0 * c * len(y))
    with one_thread():
        return _run_lbfgs(x, y, weight, bias, penalty, class_weight)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one intra-op thread, restoring the caller's setting afterwards.

    Measured on this 2-core machine under load (24,000 x 1,280 features, 10 classes, float32): the whole probe
    took 25 s on one thread and 144 s on two; L-BFGS's many small vector products and the threads' waits for
    each other cost more than the matrix products gain."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def lbfgs(weight: torch.Tensor, bias: torch.Tensor) -> torch.optim.LBFGS:
    """The probes' full-batch L-BFGS over ``weight`` and ``bias``: to a gradient of 1e-6 in float64 (sklearn's
    exact optimum), to sklearn's own 1e-4 in float32."""
    exact = weight.dtype == torch.float64
    return torch.optim.LBFGS([weight, bias], lr=1, max_iter=MAX_ITER, history_size=20,
                             tolerance_grad=1e-6 if exact else 1e-4, tolerance_change=1e-10 if exact else 1e-8,
                             line_search_fn="strong_wolfe")


def _run_lbfgs(x: Scaled, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               penalty: float, class_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    optimizer = lbfgs(weight, bias)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(_logits(x, weight, bias), y, weight=class_weight) + penalty * (weight * weight).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach(), int(optimizer.state[weight]["n_iter"])


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
    """A backbone's pooled features followed by a linear head (class logits, or a regression's values).

    The head runs in float32 even under bf16 autocast: a regression value in its own units (say 1,234.5) would
    otherwise come out rounded to bf16's 8 significant bits (1,232)."""

    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, batch) -> torch.Tensor:
        features = self.backbone(batch)
        with torch.autocast(features.device.type, enabled=False):
            return self.head(features.float())
