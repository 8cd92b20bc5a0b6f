"""Transferability estimates: LogME and H-score against slow references written here from the papers'
formulas, behaviour on informative vs uninformative features, the CV probe, and (integration) the ranking of
pretrained vs random-initialised MiniLM on real BBC News articles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.covariance import ledoit_wolf

from headstart.core.errors import DataError
from headstart.tasks import MultiLabel, Regression
from headstart.workflows.transferability import (h_score, learning_curve_slope, logme, probe_curve_slope, probe_cv_accuracy,
                                       probe_cv_score)


def blobs(n: int, d: int, classes: int, separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes: unit-variance noise around class means drawn at scale ``separation``."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    means = rng.normal(size=(classes, d)) * separation
    return means[labels] + rng.normal(size=(n, d)), labels


# ---------------------------------------------------------------- LogME: slow reference from the paper


def evidence_direct(f: np.ndarray, t: np.ndarray, alpha: float, beta: float) -> float:
    """Per-sample log evidence, LogME eq. 2, with explicit A, its inverse and its determinant."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.inv(a) @ f.T @ t
    _, log_det = np.linalg.slogdet(a)
    return (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * np.sum((f @ m - t) ** 2) - alpha / 2 * m @ m - log_det / 2) / n


def logme_reference(f: np.ndarray, labels: np.ndarray) -> float:
    """LogME, naively: per class, MacKay's fixed point with full D x D matrices (no SVD), then eq. 2."""
    return float(np.mean([evidence_reference(f, (labels == c).astype(float)) for c in np.unique(labels)]))


def evidence_reference(f: np.ndarray, t: np.ndarray) -> float:
    """The maximised evidence of one real target ``t``: MacKay's fixed point with full D x D matrices, eq. 2."""
    n, d = f.shape
    alpha, beta = 1.0, 1.0
    for _ in range(20000):
        a_inv = np.linalg.inv(alpha * np.eye(d) + beta * f.T @ f)
        m = beta * a_inv @ f.T @ t
        gamma = d - alpha * np.trace(a_inv)  # = sum beta sigma_i / (alpha + beta sigma_i)
        new_alpha, new_beta = gamma / (m @ m), (n - gamma) / np.sum((f @ m - t) ** 2)
        converged = abs(new_alpha / alpha - 1) < 1e-13 and abs(new_beta / beta - 1) < 1e-13
        alpha, beta = new_alpha, new_beta
        if converged:
            return evidence_direct(f, t, alpha, beta)
    raise AssertionError("reference fixed point did not converge: pick data with an interior optimum")


def test_evidence_formula_is_the_gaussian_marginal_likelihood():
    """Eq. 2 (used by the reference) equals log N(y; 0, I/beta + f f^T/alpha): the reference's own check."""
    f, labels = blobs(25, 6, 2, 1.0)
    t = (labels == 1).astype(float)
    for alpha, beta in [(0.5, 2.0), (3.0, 0.7)]:
        cov = np.eye(len(f)) / beta + f @ f.T / alpha
        direct = multivariate_normal(np.zeros(len(f)), cov).logpdf(t) / len(f)
        assert evidence_direct(f, t, alpha, beta) == pytest.approx(direct, rel=1e-10)


@pytest.mark.parametrize("n,d,classes,separation", [
    (60, 10, 3, 1.0),   # N > D: eigenvectors of f^T f
    (80, 5, 4, 0.6),
    (30, 45, 3, 0.4),   # N < D: eigenvectors of f f^T, plus D - N zero eigenvalues in log|A|
])
def test_logme_matches_the_slow_reference(n, d, classes, separation):
    f, labels = blobs(n, d, classes, separation, seed=n + d)
    assert logme(f, labels) == pytest.approx(logme_reference(f, labels), rel=1e-9)


def test_logme_with_duplicated_features_matches_the_reference():
    f, labels = blobs(50, 6, 3, 1.0, seed=4)
    doubled = np.hstack([f, f[:, :3], 2 * f[:, :1]])  # rank 6 in 10 dims
    value = logme(doubled, labels)
    assert np.isfinite(value)
    assert value == pytest.approx(logme_reference(doubled, labels), rel=1e-9)


def test_logme_is_the_maximum_of_the_evidence():
    """Moving the reference's fixed point (alpha, beta) either way lowers the evidence: it is a maximum."""
    f, labels = blobs(60, 8, 2, 1.0, seed=2)
    t = (labels == 0).astype(float)
    best = logme_reference(f, np.where(labels == 0, 0, 1))  # both targets: mean of two maxima
    assert logme(f, labels) == pytest.approx(best, rel=1e-9)
    # the fixed point for class 0 alone, then perturbations around it
    n, d = f.shape
    alpha, beta = 1.0, 1.0
    for _ in range(5000):
        a_inv = np.linalg.inv(alpha * np.eye(d) + beta * f.T @ f)
        m = beta * a_inv @ f.T @ t
        gamma = d - alpha * np.trace(a_inv)
        alpha, beta = gamma / (m @ m), (n - gamma) / np.sum((f @ m - t) ** 2)
    peak = evidence_direct(f, t, alpha, beta)
    for da, db in [(1.05, 1), (0.95, 1), (1, 1.05), (1, 0.95)]:
        assert evidence_direct(f, t, alpha * da, beta * db) < peak


# ---------------------------------------------------------------- LogME of label sets and numbers


def linear_target(n: int = 200, d: int = 16, noise: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and a target that is a linear function of them plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d))
    return f, f @ rng.normal(size=d) + noise * rng.normal(size=n)


def test_logme_of_a_number_is_the_evidence_of_one_regression_on_the_standardised_target():
    f, y = linear_target(n=80, d=6, noise=2.0, seed=3)
    z = (y - y.mean()) / y.std()
    assert logme(f, y, "regression") == pytest.approx(evidence_reference(f, z), rel=1e-9)
    assert logme(f, 1000 * y - 7, "regression") == pytest.approx(logme(f, y, "regression"), rel=1e-9)  # units


def test_logme_scores_a_linear_target_above_the_same_values_shuffled():
    f, y = linear_target()
    rng = np.random.default_rng(1)
    shuffled = [logme(f, rng.permutation(y), "regression") for _ in range(5)]
    assert logme(f, y, "regression") > max(shuffled) + 0.5  # measured: -0.07 against about -1.42
    noisier = logme(f, linear_target(noise=3.0)[1], "regression")
    assert max(shuffled) < noisier < logme(f, y, "regression")  # more noise, less evidence


def test_logme_of_label_sets_is_the_mean_over_labels_of_binary_logme():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(150, 8))
    present = np.column_stack([f[:, 0] > 0, f[:, 1] + rng.normal(size=150) > 0, rng.random(150) < 0.5,
                               np.zeros(150, bool)]).astype(float)  # the last label is never present
    per_label = [logme(f, present[:, k]) for k in range(3)]
    assert logme(f, present, "multi-label") == pytest.approx(np.mean(per_label), rel=1e-12)
    assert per_label[0] > per_label[1] > per_label[2]  # at one base rate: a clean split, a noisy one, a random one
    with pytest.raises(DataError, match="no label is present on some items and absent on others"):
        logme(f, np.zeros((150, 2)), "multi-label")


def test_logme_refuses_a_constant_or_missing_target():
    f, y = linear_target(n=20)
    with pytest.raises(DataError, match="constant"):
        logme(f, np.ones(20), "regression")
    with pytest.raises(DataError, match="finite"):
        logme(f, np.where(np.arange(20) == 3, np.nan, y), "regression")
    with pytest.raises(DataError, match="one per feature row"):
        logme(f, y[:10], "regression")


def test_cv_probes_of_label_sets_and_numbers_score_their_main_metric():
    f, y = linear_target(n=200)
    task = Regression.fitted_on(y)
    good, bad = probe_cv_score(f, list(y), task), probe_cv_score(f, list(np.random.default_rng(0).permutation(y)), task)
    assert good["metric"] == "r2" and good["folds"] == 5 and good["mean"] > 0.95 and bad["mean"] < 0.1
    assert bad["ci95"][0] < 0 and good["ci95"][1] <= 1.0  # R² intervals may go below 0, never above 1
    curve = probe_curve_slope(f, list(y), task)
    assert curve["metric"] == "r2" and len(curve["r2"]) == 3
    assert curve["r2"][-1] == pytest.approx(good["mean"], abs=0.02)
    sets = [tuple(name for name, on in zip("ab", row) if on) for row in (f[:, :2] > 0.3)]
    labels = MultiLabel(["a", "b"])
    result = probe_cv_score(f, sets, labels)
    assert result["metric"] == "micro_f1" and result["mean"] > 0.85
    assert probe_cv_score(f, sets[::-1], labels)["mean"] < 0.6  # labels of other items


# ---------------------------------------------------------------- H-score: reference from the definition


def h_score_reference(f: np.ndarray, labels: np.ndarray) -> float:
    """tr(cov(f)^+ cov(E[f|y])) with explicit per-sample class means g and numpy's covariance and pinv."""
    g = np.zeros_like(f)
    for c in np.unique(labels):
        g[labels == c] = f[labels == c].mean(axis=0)
    return float(np.trace(np.linalg.pinv(np.cov(f, rowvar=False)) @ np.cov(g, rowvar=False)))


@pytest.mark.parametrize("n,d,classes,separation", [(60, 10, 3, 1.0), (200, 30, 5, 0.3), (40, 4, 2, 2.0)])
def test_h_score_matches_the_definition(n, d, classes, separation):
    f, labels = blobs(n, d, classes, separation, seed=d)
    assert h_score(f, labels, shrinkage=False) == pytest.approx(h_score_reference(f, labels), rel=1e-8)


def test_h_score_pseudo_inverse_copes_with_duplicated_features():
    f, labels = blobs(60, 8, 3, 1.0, seed=5)
    doubled = np.hstack([f, f[:, :4]])
    assert h_score(doubled, labels, shrinkage=False) == pytest.approx(h_score_reference(doubled, labels), rel=1e-8)
    assert h_score(doubled, labels, shrinkage=False) == pytest.approx(h_score(f, labels, shrinkage=False), rel=1e-8)


def test_h_score_ignores_constant_and_repeated_columns_in_both_modes():
    f, labels = blobs(500, 4, 3, 1.0, seed=12)
    padded = np.hstack([f, np.zeros((len(f), 2)), f[:, :1]])  # singular covariance, N >> D
    for shrinkage in (True, False):
        value = h_score(padded, labels, shrinkage=shrinkage)
        assert np.isfinite(value) and 0 < value <= 2 + 1e-9
    assert h_score(padded, labels, shrinkage=False) == pytest.approx(h_score(f, labels, shrinkage=False), rel=1e-8)


def test_regularised_h_score_uses_the_ledoit_wolf_covariance():
    """Ibrahim et al. 2022: tr(inv(S_a) (1 - a) cov(E[f|y])), S_a Ledoit-Wolf; covariances normalised by N."""
    f, labels = blobs(40, 60, 4, 0.5, seed=6)  # D > N: the plain covariance is singular
    shrunk, a = ledoit_wolf(f)
    g = np.zeros_like(f)
    for c in np.unique(labels):
        g[labels == c] = f[labels == c].mean(axis=0)
    g = g - g.mean(axis=0)
    expected = np.trace(np.linalg.inv(shrunk) @ ((1 - a) * g.T @ g / len(f)))
    assert 0 < a < 1
    assert h_score(f, labels) == pytest.approx(expected, rel=1e-8)


def test_h_score_lies_between_zero_and_classes_minus_one():
    for separation in (0.0, 1.0, 10.0):
        f, labels = blobs(120, 6, 4, separation, seed=7)
        for shrinkage in (True, False):
            assert 0 <= h_score(f, labels, shrinkage=shrinkage) <= 3 + 1e-9


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("score", [logme, h_score, lambda f, y: h_score(f, y, shrinkage=False)],
                         ids=["logme", "h_score", "h_score_plain"])
def test_informative_features_beat_shuffled_labels_and_noise(score):
    f, labels = blobs(300, 20, 4, 1.0, seed=8)
    shuffled = np.random.default_rng(1).permutation(labels)
    noise = np.random.default_rng(2).normal(size=f.shape) * f.std()
    informative = score(f, labels)
    assert informative > score(f, shuffled) + 0.1
    assert informative > score(noise, labels) + 0.1


def test_scores_do_not_depend_on_sample_order():
    f, labels = blobs(90, 12, 3, 0.8, seed=9)
    order = np.random.default_rng(3).permutation(len(f))
    assert logme(f[order], labels[order]) == pytest.approx(logme(f, labels), rel=1e-10, abs=1e-12)
    assert h_score(f[order], labels[order]) == pytest.approx(h_score(f, labels), rel=1e-10)


def test_label_names_and_float32_features_are_accepted():
    f, labels = blobs(60, 5, 3, 1.0, seed=10)
    names = np.array(["cat", "dog", "owl"])[labels]
    assert logme(f.astype(np.float32), names) == pytest.approx(logme(f.astype(np.float32), labels), rel=1e-12)
    assert h_score(f, list(names)) == pytest.approx(h_score(f, labels), rel=1e-12)


@pytest.mark.parametrize("features,labels", [
    (np.ones((10, 3)), np.zeros(10)),                              # one class
    (np.ones((10, 3)), np.arange(9) % 2),                          # lengths differ
    (np.ones(10), np.arange(10) % 2),                              # not 2-D
    (np.where(np.eye(10, 3) > 0, np.nan, 1.0), np.arange(10) % 2),  # NaN
])
def test_unusable_inputs_raise_data_error(features, labels):
    for score in (logme, h_score, probe_cv_accuracy):
        with pytest.raises(DataError):
            score(features, labels)


def test_logme_refuses_all_zero_features():
    with pytest.raises(DataError, match="all zero"):
        logme(np.zeros((10, 3)), np.arange(10) % 2)


# ---------------------------------------------------------------- probe and learning curve


def test_probe_separates_well_separated_classes():
    f, labels = blobs(150, 10, 3, 4.0, seed=11)
    result = probe_cv_accuracy(f, labels)
    assert result["mean"] > 0.95
    assert len(result["per_fold"]) == result["folds"] == 5
    assert result["ci95"][0] <= result["mean"] <= result["ci95"][1]
    assert result["mean"] == pytest.approx(np.mean(result["per_fold"]))


def test_probe_on_random_labels_is_near_chance():
    f, _ = blobs(300, 10, 3, 0.0, seed=12)
    labels = np.random.default_rng(4).integers(0, 3, len(f))
    result = probe_cv_accuracy(f, labels)
    assert 0.2 < result["mean"] < 0.47
    assert result["ci95"][0] <= result["mean"] <= result["ci95"][1]
    assert 0.0 <= result["ci95"][0] and result["ci95"][1] <= 1.0


def test_probe_folds_shrink_to_the_smallest_class_and_refuse_singletons():
    f, labels = blobs(40, 4, 2, 3.0, seed=13)
    labels = labels.copy()
    labels[:3] = 2  # a third class with 3 samples
    assert probe_cv_accuracy(f, labels)["folds"] == 3
    labels[3] = 3  # a class with a single sample
    with pytest.raises(DataError, match="at least 2 samples"):
        probe_cv_accuracy(f, labels)


def test_learning_curve_reports_accuracy_per_fraction_and_the_slope_between_the_last_two():
    f, labels = blobs(400, 100, 4, 0.25, seed=14)  # learnable, but not well from 80 samples in 100 dims
    curve = learning_curve_slope(f, labels)
    assert curve["fractions"] == [0.25, 0.5, 1.0]
    assert curve["n_train"][0] < curve["n_train"][1] < curve["n_train"][2] == pytest.approx(320)
    assert curve["accuracy"][2] > curve["accuracy"][0] + 0.04 and curve["slope"] > 0
    expected = (curve["accuracy"][2] - curve["accuracy"][1]) / np.log2(curve["n_train"][2] / curve["n_train"][1])
    assert curve["slope"] == pytest.approx(expected)
    easy = learning_curve_slope(*blobs(200, 5, 2, 5.0, seed=15))
    assert min(easy["accuracy"]) > 0.95 and abs(easy["slope"]) < 0.02  # saturated: doubling adds nothing


def test_learning_curve_refuses_bad_fractions():
    f, labels = blobs(40, 4, 2, 1.0)
    for fractions in [(0.5,), (0.5, 0.25), (0.0, 1.0), (0.5, 1.5)]:
        with pytest.raises(DataError, match="fractions"):
            learning_curve_slope(f, labels, fractions=fractions)


# ---------------------------------------------------------------- real data


@pytest.mark.integration
def test_pretrained_minilm_outranks_a_random_one_on_bbc_news():
    import torch

    from headstart.backbones import load_backbone
    from headstart.data import bbc_news_folder, load_labelled
    from headstart.features.cache import Extraction, extract

    data = load_labelled(bbc_news_folder())
    rng = np.random.default_rng(0)
    labels = np.array(data.labels)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), 30, replace=False) for c in data.classes])
    subset = data.subset(idx.tolist())
    run = Extraction(device=torch.device("cpu"), precision="fp32", progress=False)
    torch.manual_seed(0)
    scores = {}
    for name in ("minilm-l6", "random:minilm-l6"):
        f = extract(load_backbone(name), subset, run)
        y = np.array(subset.labels)
        scores[name] = {"logme": logme(f, y), "h_score": h_score(f, y), "probe": probe_cv_accuracy(f, y)["mean"]}
    print(scores)
    pretrained, random = scores["minilm-l6"], scores["random:minilm-l6"]
    for key in ("logme", "h_score", "probe"):
        assert pretrained[key] > random[key], (key, scores)
