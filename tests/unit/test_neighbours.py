"""headstart.features.neighbours: the approximate index agrees with exact search, and is built once per feature set."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.features import neighbours
from headstart.workflows.audit import similarity_scan


def clustered(n: int, dim: int = 48, seed: int = 0) -> np.ndarray:
    """Rows in 20 clusters of a 12-dimensional latent space, mapped into ``dim`` dimensions, with small noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (20, 12))
    latent = centres[rng.integers(0, 20, n)] + rng.normal(0, 1, (n, 12))
    return (latent @ rng.normal(0, 1, (12, dim)) + rng.normal(0, 0.1, (n, dim))).astype(np.float32)


def brute_force(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Every pair's distance, sorted: the reference the service must match."""
    if metric == "cosine":
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        dist = 1.0 - unit.astype(np.float64) @ unit.T
    else:
        dist = np.linalg.norm(x[:, None, :].astype(np.float64) - x[None, :, :], axis=2)
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(dist, order, 1)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_exact_search_matches_brute_force(metric):
    x = clustered(300)
    found = neighbours.nearest(x, 7, metric, exact=True)
    want_i, want_d = brute_force(x, 7, metric)
    assert found.exact
    np.testing.assert_allclose(found.distances, want_d, atol=1e-4)
    assert neighbours.recall(found.indices, want_i) > 0.99  # only ties may swap


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_index_agrees_with_exact_search(metric, tmp_path):
    x = clustered(3000)
    exact = neighbours.nearest(x, 10, metric, exact=True)
    approx = neighbours.nearest(x, 10, metric, cache_dir=tmp_path, exact=False)
    assert not approx.exact and approx.indices.shape == (3000, 10)
    assert neighbours.recall(approx.indices, exact.indices) >= 0.95
    assert (approx.indices != np.arange(3000)[:, None]).all()  # never one's own neighbour
    same = approx.indices == exact.indices  # where both list the same row, they give it the same distance
    np.testing.assert_allclose(approx.distances[same], exact.distances[same], rtol=2e-3, atol=2e-3)  # float16 rows


def test_index_is_built_once_per_feature_set_and_kept_in_the_cache(tmp_path):
    x = clustered(2000)
    first = neighbours.nearest(x, 5, cache_dir=tmp_path, exact=False)
    files = sorted((tmp_path / "neighbours").iterdir())
    assert len(files) == 1 and files[0].suffix == ".faiss"
    stamp = files[0].stat().st_mtime_ns
    again = neighbours.nearest(x, 5, cache_dir=tmp_path, exact=False)
    assert files[0].stat().st_mtime_ns == stamp  # read, not rebuilt
    np.testing.assert_array_equal(first.indices, again.indices)
    neighbours.nearest(x[:1500], 5, cache_dir=tmp_path, exact=False)  # other rows: another index
    assert len(list((tmp_path / "neighbours").iterdir())) == 2


def test_a_damaged_index_file_is_rebuilt_not_read(tmp_path):
    x = clustered(2000)
    want = neighbours.nearest(x, 5, cache_dir=tmp_path, exact=False)
    path = next((tmp_path / "neighbours").iterdir())
    path.write_bytes(path.read_bytes()[:100])
    again = neighbours.nearest(x, 5, cache_dir=tmp_path, exact=False)
    np.testing.assert_array_equal(want.indices, again.indices)


def test_audit_scan_through_the_index_finds_the_near_duplicates(tmp_path):
    x = clustered(3000, seed=1)
    copies = x[:15] + np.random.default_rng(2).normal(0, 0.01, (15, x.shape[1])).astype(np.float32)
    rows = np.vstack([x, copies])
    exact_pairs, exact_knn = similarity_scan(rows, 0.9999, 10, exact=True)
    pairs, knn = similarity_scan(rows, 0.9999, 10, cache_dir=tmp_path, exact=False)
    assert {(i, j) for i, j, _ in pairs} == {(i, j) for i, j, _ in exact_pairs}
    assert {(i, 3000 + i) for i in range(15)} <= {(i, j) for i, j, _ in pairs}
    assert knn.shape == exact_knn.shape == (3015, 10)
    assert np.abs(knn.mean(1) - exact_knn.mean(1)).max() < 0.01  # outlier scores barely move
