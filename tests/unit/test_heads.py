"""The linear probe: the standardisation folded into nn.Linear must predict exactly what sklearn does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from headstart.training.heads import DEFAULT_CS, Classifier, Scaled, linear_probe, moments, standardised


def blobs(n_classes: int, n: int, dim: int = 6, seed: int = 0, spread: float = 1.5):
    """Overlapping Gaussian classes whose features have very different scales and offsets."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, dim))
    y = np.arange(n) % n_classes
    x = centres[y] + rng.normal(0, spread, (n, dim))
    scale = np.logspace(-2, 3, dim)  # standardisation matters
    return (x * scale + 7.0 * scale).astype(np.float32), y


def head_proba(head: torch.nn.Linear, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(head(torch.from_numpy(x).float()).double(), dim=1).numpy()


def sklearn_proba(x_train, y_train, x, C) -> np.ndarray:
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=10000, tol=1e-10).fit((x_train - mean) / std, y_train)  # the exact optimum
    return clf.predict_proba((x - mean) / std)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_folded_head_predicts_like_sklearn_on_standardised_features(n_classes):
    x_train, y_train = blobs(n_classes, 90, seed=n_classes)
    x_val, y_val = blobs(n_classes, 45, seed=n_classes + 100)
    probe = linear_probe(x_train, y_train, x_val, y_val, n_classes, cs=(0.01, 1.0))
    ours = head_proba(probe.head, x_val)
    reference = sklearn_proba(x_train, y_train, x_val, probe.C)
    assert ours.shape == (45, n_classes)
    # L-BFGS stops at max|gradient| <= 1e-6: probabilities agree to ~1e-3; a wrong fold is off by O(1)
    np.testing.assert_allclose(ours, reference, atol=2e-3)
    np.testing.assert_array_equal(ours.argmax(1), reference.argmax(1))


def test_C_is_the_candidate_with_the_best_validation_accuracy_then_loss():
    x_train, y_train = blobs(3, 60, seed=1, spread=2.5)
    x_val, y_val = blobs(3, 60, seed=2, spread=2.5)
    cs = (1e-4, 1e-2, 1.0, 100.0)
    probe = linear_probe(x_train, y_train, x_val, y_val, 3, cs=cs)
    tried = [c["C"] for c in probe.candidates]
    assert tried == list(cs)[:len(tried)]  # strong to weak regularisation
    if len(tried) < len(cs):  # stopped early: the last one tried was no better and its loss rose
        assert probe.candidates[-1]["val_loss"] > probe.candidates[-2]["val_loss"]
    for cand in probe.candidates:  # each candidate is scored on the validation split
        proba = sklearn_proba(x_train, y_train, x_val, cand["C"])
        assert cand["val_accuracy"] == pytest.approx(float((proba.argmax(1) == y_val).mean()))
        assert cand["val_loss"] == pytest.approx(log_loss(y_val, proba, labels=[0, 1, 2]), rel=1e-4)
    best = max(probe.candidates, key=lambda c: (c["val_accuracy"], -c["val_loss"]))
    assert probe.C == best["C"]


def test_C_follows_the_validation_data():
    """Validation that agrees with training picks weak regularisation; shuffled labels pick strong."""
    x_train, y_train = blobs(2, 80, seed=3, spread=0.3)
    x_val, y_val = blobs(2, 40, seed=4, spread=0.3)
    cs = (1e-4, 10.0)
    agrees = linear_probe(x_train, y_train, x_val, y_val, 2, cs=cs)
    flipped = linear_probe(x_train, y_train, x_val, 1 - y_val, 2, cs=cs)
    assert agrees.C == 10.0
    assert flipped.C == 1e-4  # the least confident model loses least on labels it gets wrong


def test_a_class_missing_from_training_is_never_predicted():
    x, y = blobs(3, 60, seed=5)
    keep = y != 1
    probe = linear_probe(x[keep], y[keep], x, y, 3, cs=(1.0,))
    proba = head_proba(probe.head, x)
    assert proba.shape == (60, 3)
    assert proba[:, 1].max() < 1e-6
    reference = sklearn_proba(x[keep], y[keep], x, 1.0)  # binary over classes 0 and 2
    np.testing.assert_allclose(proba[:, [0, 2]], reference, atol=1e-4)


def test_default_candidates_span_orders_of_magnitude():
    assert len(DEFAULT_CS) >= 3 and max(DEFAULT_CS) / min(DEFAULT_CS) >= 1000


def test_classifier_applies_the_head_to_backbone_features():
    backbone = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    head = torch.nn.Linear(3, 2)
    x = torch.randn(5, 4)
    torch.testing.assert_close(Classifier(backbone, head)(x), head(backbone(x)))


def test_the_probe_on_20000_rows_is_quick_and_predicts_like_sklearn():
    """Above PATH_ROWS the C path runs on a sample, then on all rows from there: few L-BFGS iterations on
    all 20,000 rows (float32), and the same predictions as scikit-learn's optimum at the chosen C."""
    x, y = blobs(10, 22_000, dim=256, seed=7, spread=6.0)  # one draw: validation from the same classes
    x_train, y_train, x_val, y_val = x[:20_000], y[:20_000], x[20_000:], y[20_000:]
    probe = linear_probe(x_train, y_train, x_val, y_val, 10)
    assert probe.iterations <= 100  # measured 32 over the 3 Cs tried on all rows
    assert probe.sample_iterations > 0 and {c["rows"] for c in probe.candidates} >= {len(y_train)}
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    clf = LogisticRegression(C=probe.C).fit((x_train - mean) / std, y_train)  # its default tolerance
    sample = np.random.default_rng(0).choice(len(y_val), 1_000, replace=False)
    ours = head_proba(probe.head, x_val[sample]).argmax(1)
    assert (ours == clf.predict((x_val[sample] - mean) / std)).mean() >= 0.99


def test_the_float32_solve_reads_the_callers_features_without_a_copy():
    """Standardisation is folded into the weights: the solver's rows are the caller's array itself, and the
    products equal those on a standardised copy."""
    x = np.random.default_rng(3).normal(2.0, 3.0, (500, 40)).astype(np.float32)
    mean, std = moments(x)
    scaled = Scaled.of(x, mean, std, torch.float32)
    assert np.shares_memory(scaled.x.numpy(), x)
    weight = torch.from_numpy(np.random.default_rng(4).normal(size=(3, 40)).astype(np.float32))
    want = standardised(x, mean, std, torch.float64) @ weight.double().T
    np.testing.assert_allclose(scaled.product(weight).numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
