"""Transferability estimates: rank candidate backbones on their cached frozen features, before any fitting.

- :func:`logme`: LogME, the maximised log evidence of Bayesian linear regression on the features
  (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML 2021), for
  classes, label sets (mean over labels) and numeric targets (natively: one regression).
- :func:`h_score`: H-score (Bao et al., "An Information-theoretic Approach to Transferability in Task
  Transfer Learning", ICIP 2019), by default regularised with Ledoit-Wolf shrinkage (Ibrahim et al.,
  "Newer is not always better: Rethinking transferability metrics, their peculiarities, stability and
  performance", ECML PKDD 2022).
- :func:`probe_cv_accuracy` and :func:`learning_curve_slope`: the accuracy a cross-validated logistic
  probe reaches, and how much doubling the data would still add; :func:`probe_cv_score` and
  :func:`probe_curve_slope` the same for any task, on its main metric with its own probe.

Scores are comparable between backbones on the same samples and labels, not across data sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats
from sklearn.model_selection import KFold, StratifiedKFold

from headstart.core.errors import DataError
from headstart.tasks.kinds import kind
from headstart.tasks.make import TASK_CLASSES
from headstart.training.heads import fit_predict_logistic
from headstart.core.metrics import metric_range
from headstart.training.defaults import DEFAULT_CS

if TYPE_CHECKING:
    from headstart.tasks import Task

_LOGME_MAX_ITER = 1000
_LOGME_TOL = 1e-12  # change of the per-sample log evidence between fixed-point steps


def _prepare(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(float64 [N, D] features, int [N] class codes)``, or a :class:`DataError` saying what is wrong."""
    y = np.asarray(labels)
    f = _features(features, len(y))
    if y.ndim != 1:
        raise DataError(f"labels must be one label per feature row: {len(f)} rows, labels of shape {y.shape}.")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"transferability needs at least 2 classes; the labels hold {len(classes)}.")
    return f, codes.reshape(-1)


def _features(features: np.ndarray, rows: int) -> np.ndarray:
    """Float64 ``[N, D]`` features with ``rows`` rows, or a :class:`DataError` saying what is wrong."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise DataError(f"features must be a non-empty [samples, dims] array; got shape {f.shape}.")
    if rows != len(f):
        raise DataError(f"labels must be one per feature row: {len(f)} rows, {rows} labels.")
    if not np.isfinite(f).all():
        raise DataError("features contain NaN or infinite values; check the backbone's output precision.")
    return f


def _logme_terms(sigma: np.ndarray, proj: np.ndarray, y2: np.ndarray, t: np.ndarray, tall: bool):
    """``(gamma, ||m||^2, ||f m - y||^2)`` per target at ``t = alpha / beta``, from the Gram spectrum.

    tall (N >= D): ``proj = V^T f^T y``; wide (N < D): ``proj = U^T y`` (U spans all of R^N).
    """
    w = 1.0 / (t + sigma[:, None])  # [k, C]: 1 / (t + sigma_i)
    gamma = (sigma[:, None] * w).sum(0)
    p2 = proj * proj
    if tall:
        return gamma, (p2 * w * w).sum(0), y2 - (p2 * (sigma[:, None] + 2 * t) * w * w).sum(0)
    return gamma, (sigma[:, None] * p2 * w * w).sum(0), (p2 * (t * w) ** 2).sum(0)


def _logme_evidence(sigma: np.ndarray, d: int, n: int, alpha: np.ndarray, beta: np.ndarray, m2: np.ndarray,
                    res2: np.ndarray) -> np.ndarray:
    """Per-sample log evidence per target (the paper's eq. 2); ``log|A|`` counts the ``d - k`` zero eigenvalues
    of ``f^T f`` that a wide ``f`` (N < D) has beyond its Gram spectrum (cf. thuml/LogME issue #23)."""
    log_det_a = np.log(alpha + beta * sigma[:, None]).sum(0) + (d - len(sigma)) * np.log(alpha)
    return (d * np.log(alpha) + n * np.log(beta) - log_det_a - beta * res2 - alpha * m2
            - n * np.log(2 * np.pi)) / (2 * n)


def logme(features: np.ndarray, labels: np.ndarray, task: str = "single-label") -> float:
    """LogME (You et al., ICML 2021; thuml/LogME): the per-sample log evidence, maximised over (alpha, beta), of
    Bayesian linear regression ``y ~ N(f w, 1/beta)``, ``w ~ N(0, 1/alpha)``, averaged over targets. Higher is
    better. The targets by ``task``:

    - ``single-label``: ``labels`` are classes; one one-hot target per class (the paper's classification form);
    - ``multi-label``: ``labels`` is the ``[N, labels]`` 0/1 matrix; each label is a binary classification
      (its two one-hot targets) and the score is the mean over labels (a label that is always or never
      present carries no evidence and is left out);
    - ``regression``: ``labels`` are numbers; the evidence of one regression on the standardised target
      (LogME's native form for a real-valued target).

    One eigendecomposition of the smaller Gram matrix, then MacKay's fixed-point updates for all targets at
    once, until the evidence stops changing (it also converges when the optimum lies at alpha or beta ->
    infinity)."""
    if task not in TASK_CLASSES:
        raise DataError(f"unknown task {task!r}; use {', '.join(TASK_CLASSES)}.")
    f = _features(features, len(labels))
    targets = TASK_CLASSES[task].evidence_targets(np.asarray(labels))  # the task says what is scored
    if not f.any():
        raise DataError("features are all zero; the backbone produced no signal.")
    return float(np.mean(_logme_evidences(f, targets)))


def _logme_evidences(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The maximised per-sample log evidence of each column of the targets ``y`` [N, T] on features ``f``."""
    n, d = f.shape
    tall = n >= d
    sigma, vecs = np.linalg.eigh(f.T @ f if tall else f @ f.T)  # sigma: squared singular values of f
    sigma = np.clip(sigma, 0.0, None)
    proj, y2 = (vecs.T @ (f.T @ y) if tall else vecs.T @ y), (y * y).sum(0)
    targets = y.shape[1]
    alpha, beta, evidence = np.ones(targets), np.ones(targets), np.full(targets, np.inf)
    active = np.arange(targets)  # targets whose evidence still moves
    for _ in range(_LOGME_MAX_ITER):
        a, b = alpha[active], beta[active]
        gamma, m2, res2 = _logme_terms(sigma, proj[:, active], y2[active], a / b, tall)
        new = _logme_evidence(sigma, d, n, a, b, m2, res2)
        moving = np.abs(new - evidence[active]) > _LOGME_TOL
        evidence[active] = new
        alpha[active] = np.where(moving, np.clip(gamma / np.maximum(m2, 1e-300), 1e-150, 1e150), a)
        beta[active] = np.where(moving, np.clip((n - gamma) / np.maximum(res2, 1e-300), 1e-150, 1e150), b)
        active = active[moving]
        if not len(active):
            break
    return evidence


def h_score(features: np.ndarray, labels: np.ndarray, shrinkage: bool = True) -> float:
    """H-score ``tr(cov(f)^-1 cov(E[f|y]))`` (Bao et al., ICIP 2019), between 0 and classes - 1.

    ``shrinkage=True``: the regularised H-score of Ibrahim et al. 2022, ``tr(S_a^-1 (1 - a) cov(E[f|y]))``
    with ``S_a`` the Ledoit-Wolf covariance and ``a`` its shrinkage (both covariances normalised by N,
    so ``a = 0`` gives the plain score). ``shrinkage=False``: the pseudo-inverse of the sample covariance
    (unreliable when dims approach samples). Higher is better."""
    f, codes = _prepare(features, labels)
    f = f - f.mean(0)
    counts = np.bincount(codes)
    means = np.zeros((len(counts), f.shape[1]))
    np.add.at(means, codes, f)
    means /= counts[:, None]
    between = means.T * np.sqrt(counts / len(f))  # [D, C]: cov(E[f|y]) = between @ between.T
    gram = f.T @ f / len(f)
    if shrinkage:
        covariance, amount = _ledoit_wolf(f, gram)
        return float((1.0 - amount) * _trace_inverse_times(covariance, between))
    return _trace_inverse_times(gram, between, pseudo=True)


def _ledoit_wolf(f: np.ndarray, gram: np.ndarray) -> tuple[np.ndarray, float]:
    """``(covariance, shrinkage)`` of scikit-learn's ``LedoitWolf(assume_centered=True)`` for centred ``f``,
    from its Gram matrix ``f^T f / N``: the sum of ``(f^2)^T f^2`` that scikit-learn forms as a second D x D
    product is ``sum_n ||f_n||^4``, one pass over the rows (measured on 30,000 x 1,280: 28 s -> 6 s)."""
    n, d = f.shape
    mu = np.trace(gram) / d
    delta = float((gram * gram).sum())
    beta = (float((np.einsum("ij,ij->i", f, f) ** 2).sum()) / n - delta) / (d * n)
    delta = (delta - 2 * mu * np.trace(gram) + d * mu * mu) / d
    amount = 0.0 if delta == 0 else min(beta, delta) / delta
    covariance = (1.0 - amount) * gram
    covariance.flat[::d + 1] += amount * mu
    return covariance, amount


def _trace_inverse_times(cov: np.ndarray, between: np.ndarray, pseudo: bool = False) -> float:
    """``tr(cov^-1 B B^T)``: by Cholesky (``||L^-1 B||^2``), or with the pseudo-inverse when ``pseudo`` or
    ``cov`` is singular (numpy's cut-off for a Gram matrix: ``max(shape) * eps * largest eigenvalue``)."""
    if not pseudo:
        try:
            half = np.linalg.solve(np.linalg.cholesky(cov), between)
            return float((half * half).sum())
        except np.linalg.LinAlgError:
            pass
    eig, vecs = np.linalg.eigh(cov)
    keep = eig > eig.max() * max(cov.shape) * np.finfo(float).eps
    proj = vecs[:, keep].T @ between
    return float(((proj * proj).sum(1) / eig[keep]).sum())


def _folds(codes: np.ndarray, folds: int, seed: int) -> StratifiedKFold:
    """Stratified folds, fewer when the smallest class has fewer samples than ``folds`` (at least 2)."""
    smallest = int(np.bincount(codes).min())
    if smallest < 2:
        raise DataError("cross-validation needs at least 2 samples in every class; "
                        f"one class has {smallest}. Add samples or drop that class.")
    if folds < 2:
        raise DataError(f"folds must be at least 2; got {folds}.")
    return StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)


def _probe_accuracy(f: np.ndarray, codes: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Held-out accuracy of a logistic-regression probe fitted on standardised training rows."""
    predicted = fit_predict_logistic(f[train], codes[train], f[test], c=1.0)  # sklearn's default strength
    return float((predicted == codes[test]).mean())


def probe_cv_accuracy(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> dict:
    """Cross-validated accuracy of a logistic probe on standardised features (scaler fitted per fold).

    Returns ``mean``, ``std`` (over folds, ddof 1), ``ci95`` (a t-interval over fold accuracies, clipped to
    [0, 1]; approximate, as folds share training data), ``per_fold`` and ``folds`` (the count used)."""
    f, codes = _prepare(features, labels)
    splitter = _folds(codes, folds, seed)
    return _fold_summary([_probe_accuracy(f, codes, tr, te) for tr, te in splitter.split(f, codes)])


def _fold_summary(per_fold: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> dict:
    """Mean, std (ddof 1) and a t-interval over fold scores, clipped to the metric's ``bounds``."""
    k, mean = len(per_fold), float(np.mean(per_fold))
    std = float(np.std(per_fold, ddof=1))
    half = float(stats.t.ppf(0.975, k - 1)) * std / np.sqrt(k)
    return {"mean": mean, "std": std, "ci95": [float(max(bounds[0], mean - half)), float(min(bounds[1], mean + half))],
            "per_fold": [float(x) for x in per_fold], "folds": k}


def learning_curve_slope(features: np.ndarray, labels: np.ndarray, fractions: Sequence[float] = (0.25, 0.5, 1.0),
                         seed: int = 0) -> dict:
    """Held-out probe accuracy (5-fold CV) when training on nested, stratified ``fractions`` of each
    training fold, and ``slope``: accuracy gained per doubling of the training set between the last two
    fractions (``d accuracy / d log2 n``). A slope near 0 says more labels of this kind would add little.

    Returns ``fractions``, ``n_train`` (mean training rows per fraction), ``accuracy``, ``slope``, ``folds``."""
    fractions = _check_fractions(fractions)
    f, codes = _prepare(features, labels)
    splitter = _folds(codes, 5, seed)
    rng = np.random.default_rng(seed)
    acc, sizes = np.zeros((splitter.n_splits, len(fractions))), np.zeros((splitter.n_splits, len(fractions)))
    for i, (train, test) in enumerate(splitter.split(f, codes)):
        by_class = [rng.permutation(train[codes[train] == c]) for c in np.unique(codes)]
        for j, x in enumerate(fractions):  # nested: each subset holds the smaller ones
            sub = np.concatenate([rows[:max(1, round(x * len(rows)))] for rows in by_class])
            acc[i, j], sizes[i, j] = _probe_accuracy(f, codes, sub, test), len(sub)
    n_train, accuracy = sizes.mean(0), acc.mean(0)
    return {"fractions": fractions, "n_train": n_train.tolist(), "accuracy": accuracy.tolist(),
            "slope": _slope(n_train, accuracy), "folds": splitter.n_splits}


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fractions = [float(x) for x in fractions]
    if len(fractions) < 2 or any(not 0 < x <= 1 for x in fractions) or fractions != sorted(set(fractions)):
        raise DataError(f"fractions must be at least 2 increasing values in (0, 1]; got {fractions}.")
    return fractions


def _slope(n_train: np.ndarray, scores: np.ndarray) -> float:
    """Score gained per doubling of the training rows between the last two fractions."""
    if n_train[-1] <= n_train[-2]:
        raise DataError(f"too few samples: the last two fractions both train on {n_train[-1]:.0f} rows.")
    return float((scores[-1] - scores[-2]) / (np.log2(n_train[-1]) - np.log2(n_train[-2])))


# ---------------------------------------------------------------- any task: the task's own probe


def probe_cv_score(features: np.ndarray, labels: Sequence, task: Task, folds: int = 5, seed: int = 0) -> dict:
    """Cross-validated main metric of ``task``'s own linear probe, on labels in the task's form: single-label,
    :func:`probe_cv_accuracy` (``C = 1``); multi-label, the micro-F1 at threshold 0.5 of one-vs-rest logistic
    regressions; regression, the R² of a ridge regression (their ``C`` chosen within each training fold).

    Returns ``mean``, ``std``, ``ci95`` (a t-interval over folds, clipped to the metric's range), ``per_fold``,
    ``folds`` and ``metric``. Folds are plain shuffled K folds for label sets and numbers."""
    if kind(task.name).one_per_item:  # classes: stratified folds
        return {**probe_cv_accuracy(features, np.asarray(labels), folds, seed), "metric": "accuracy"}
    f, y = _features(features, len(labels)), task.targets(labels)
    scores = [_task_score(f, y, task, tr, te) for tr, te in _kfold(len(f), folds, seed).split(f)]
    return {**_fold_summary(scores, metric_range(task.main_metric)), "metric": task.main_metric}


def probe_curve_slope(features: np.ndarray, labels: Sequence, task: Task,
                      fractions: Sequence[float] = (0.25, 0.5, 1.0), seed: int = 0) -> dict:
    """:func:`learning_curve_slope` for any task: the held-out main metric of ``task``'s probe (5-fold CV) when
    training on nested random ``fractions`` of each training fold, and its gain per doubling (``slope``).

    Returns ``fractions``, ``n_train``, the scores under the metric's name, ``slope``, ``folds`` and ``metric``."""
    if kind(task.name).one_per_item:  # classes: stratified folds
        return {**learning_curve_slope(features, np.asarray(labels), fractions, seed), "metric": "accuracy"}
    fractions = _check_fractions(fractions)
    f, y = _features(features, len(labels)), task.targets(labels)
    splitter = _kfold(len(f), 5, seed)
    rng = np.random.default_rng(seed)
    score, sizes = np.zeros((splitter.n_splits, len(fractions))), np.zeros((splitter.n_splits, len(fractions)))
    for i, (train, test) in enumerate(splitter.split(f)):
        order = rng.permutation(train)
        for j, x in enumerate(fractions):  # nested: each subset holds the smaller ones
            sub = order[:max(2, round(x * len(order)))]
            score[i, j], sizes[i, j] = _task_score(f, y, task, sub, test), len(sub)
    n_train, mean = sizes.mean(0), score.mean(0)
    return {"fractions": fractions, "n_train": n_train.tolist(), task.main_metric: mean.tolist(),
            "slope": _slope(n_train, mean), "folds": splitter.n_splits, "metric": task.main_metric}


def _kfold(n: int, folds: int, seed: int) -> KFold:
    if folds < 2:
        raise DataError(f"folds must be at least 2; got {folds}.")
    if n < 4:
        raise DataError(f"cross-validation needs at least 4 samples; there are {n}.")
    return KFold(n_splits=min(folds, n // 2), shuffle=True, random_state=seed)


def _task_score(f: np.ndarray, y: np.ndarray, task: Task, train: np.ndarray, test: np.ndarray) -> float:
    """The held-out main metric of ``task``'s probe fitted on the ``train`` rows, its ``C`` (of the linear
    strategy's ``DEFAULT_CS``) chosen on a fifth of them: a ridge's strength has no default that suits every
    data size as logistic regression's ``C = 1`` does (at 25 rows of 32 features, ``C = 1`` gave R² -10)."""
    inner = np.random.default_rng(0).permutation(train)
    cut = max(1, len(inner) // 5)
    c = task.probe(f[inner[cut:]], y[inner[cut:]], f[inner[:cut]], y[inner[:cut]], DEFAULT_CS, 0, None).C
    fit = task.probe(f[train], y[train], f[test], y[test], (c,), 0, None)
    return float(fit.candidates[0][f"val_{task.main_metric}"])
