"""Nearest neighbours of feature rows: one service for audit (near duplicates, outliers) and suggest (typicality).

Up to :data:`EXACT_ROWS` rows the search is exact: one blocked pass over the similarity matrix (``BLOCK x n``
floats at a time). Above it an approximate faiss index answers: the rows projected on their ``REDUCED_DIM``
leading principal components, an inverted file of ``4 sqrt(n)`` k-means lists of which ``NPROBE`` are scanned,
and the ``CANDIDATES x k`` candidates found reranked by exact distances on a float16 copy of the full rows.
The index is built once per feature set (the rows' bytes and the metric name it) and kept under the feature
cache's ``neighbours/`` folder, so a second audit of the same data loads it instead.

Measured on this 2-core machine under load, clustered synthetic rows of 1,280 dimensions, k = 10: exact search
and the index (built and searched) both took 8-10 s at 10,000 rows; at 20,000 exact took 36 s and the index
15 s at recall@10 0.993 (16 candidates per neighbour; 4 gave 0.83, the principal components alone rank
neighbours coarsely). ``python -m bench.scale`` times it at 10^5 and 10^6 rows with its recall.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from headstart.core.fileio import write_with

EXACT_ROWS = 10_000  # up to this many rows the search is exact (the two cost the same here; see the docstring)
BLOCK = 1024  # exact search: query rows per block of the similarity matrix
REDUCED_DIM = 128  # the approximate index's coarse search runs on this many principal components
CANDIDATES = 16  # the coarse search finds CANDIDATES x k rows, reranked on the full rows
NPROBE = 32  # inverted lists scanned per query
TRAIN_ROWS = 100_000  # at most this many rows train the projection and the k-means lists
SEARCH_ROWS = 16_384  # the approximate search answers this many query rows at a time
METRICS = ("cosine", "l2")
VERSION = "1"  # part of an index file's name: a change to the index's recipe builds new files


@dataclass(frozen=True)
class Neighbours:
    """Each row's ``k`` nearest other rows: ``indices`` ``[n, k]`` and ``distances`` ``[n, k]`` ascending (cosine
    distance ``1 - similarity``, or euclidean distance), and whether the search was ``exact``."""

    indices: np.ndarray
    distances: np.ndarray
    exact: bool

    def close_pairs(self, max_distance: float) -> list[tuple[int, int, float]]:
        """``(i, j, distance)`` with ``i < j`` for each listed neighbour within ``max_distance``, once per pair."""
        rows, cols = np.nonzero(self.distances <= max_distance)
        found = {}
        for r, c in zip(rows.tolist(), cols.tolist()):
            j = int(self.indices[r, c])
            if j >= 0:
                found[(min(r, j), max(r, j))] = float(self.distances[r, c])
        return [(i, j, d) for (i, j), d in sorted(found.items())]


def nearest(x: np.ndarray, k: int, metric: str = "cosine", cache_dir: Path | None = None,
            exact: bool | None = None, seed: int = 0) -> Neighbours:
    """The ``k`` nearest other rows of every row of ``x`` (``[n, d]``); exact up to :data:`EXACT_ROWS` rows
    unless ``exact`` says otherwise. With ``cache_dir``, an approximate index is read from and kept there."""
    x = prepared(x, metric)
    k = max(0, min(k, len(x) - 1))
    if exact if exact is not None else len(x) <= EXACT_ROWS:
        return exact_search(x, k, metric)
    with faiss_threads(1):
        index = cached_index(x, metric, cache_dir, seed)
        return search_index(index, lambda: blocks(x), k, metric)


@contextlib.contextmanager
def faiss_threads(count: int) -> Iterator[None]:
    """Run the block with faiss on ``count`` OpenMP threads, restoring its setting afterwards.

    Measured on this 2-core machine under load (20,000 x 1,280 rows): building the index took 71 s on faiss's
    default two threads and 8 s on one; OpenMP's threads spin while they wait for a core the others hold."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def prepared(x: np.ndarray, metric: str) -> np.ndarray:
    """``x`` as contiguous float32, rows at unit length for ``cosine`` (all-zero rows stay zero)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def exact_search(x: np.ndarray, k: int, metric: str = "cosine", within: float | None = None,
                 pairs: list | None = None, block: int = BLOCK) -> Neighbours:
    """Exact neighbours by one blocked pass over the ``n x n`` similarity matrix of prepared rows; with
    ``within``, every pair ``(i, j, distance)`` (``i < j``) within that distance is appended to ``pairs``."""
    n = len(x)
    indices, distances = np.zeros((n, k), dtype=np.int64), np.zeros((n, k), dtype=np.float32)
    squares = (x * x).sum(1) if metric == "l2" else None
    for start in range(0, n, block):
        stop = min(n, start + block)
        dist = _block_distances(x, start, stop, squares)
        rows = np.arange(stop - start)
        dist[rows, rows + start] = np.inf  # never one's own neighbour
        if within is not None and pairs is not None:
            r, c = np.nonzero(dist <= within)
            keep = c > r + start
            pairs += [(int(a) + start, int(b), float(dist[a, b])) for a, b in zip(r[keep], c[keep])]
        if k:
            top = np.argpartition(dist, k - 1, axis=1)[:, :k]
            near = np.take_along_axis(dist, top, 1)
            order = np.argsort(near, axis=1, kind="stable")
            indices[start:stop] = np.take_along_axis(top, order, 1)
            distances[start:stop] = np.take_along_axis(near, order, 1)
    return Neighbours(indices, distances, exact=True)


def _block_distances(x: np.ndarray, start: int, stop: int, squares: np.ndarray | None) -> np.ndarray:
    """``[stop - start, n]`` distances of rows ``start:stop`` to all rows (cosine, or euclidean with squares)."""
    product = x[start:stop] @ x.T
    if squares is None:
        return 1.0 - product
    return np.sqrt(np.maximum(squares[start:stop, None] + squares[None, :] - 2.0 * product, 0.0))


def blocks(x: np.ndarray, size: int = SEARCH_ROWS) -> Iterator[np.ndarray]:
    """Consecutive row blocks of ``x`` (views, no copies)."""
    for start in range(0, len(x), size):
        yield x[start:start + size]


def cached_index(x: np.ndarray, metric: str, cache_dir: Path | None, seed: int = 0):
    """The approximate index of prepared rows ``x``: read from ``cache_dir/neighbours`` when an earlier call
    built it for the same rows and metric, else built (and kept there with ``cache_dir``)."""
    import faiss

    path = None
    if cache_dir is not None:
        digest = hashlib.blake2b(x.data, digest_size=12)
        digest.update(f"{metric}/{VERSION}/{seed}/{x.shape}".encode())
        path = Path(cache_dir) / "neighbours" / f"{digest.hexdigest()}.faiss"
        if path.is_file():
            try:
                return faiss.read_index(str(path))
            except RuntimeError:
                path.unlink(missing_ok=True)  # truncated or foreign: rebuild
    index = build_index(lambda: blocks(x), len(x), x.shape[1], metric, sample(x, seed))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_with(path, lambda tmp: faiss.write_index(index, str(tmp)))
    return index


def sample(x: np.ndarray, seed: int = 0, rows: int = TRAIN_ROWS) -> np.ndarray:
    """At most ``rows`` rows of ``x``, drawn without replacement (all of them when there are fewer)."""
    if len(x) <= rows:
        return x
    pick = np.sort(np.random.default_rng(seed).choice(len(x), rows, replace=False))
    return x[pick]


def build_index(chunks: Callable[[], Iterable[np.ndarray]], n: int, dim: int, metric: str, train: np.ndarray):
    """An approximate index of ``n`` prepared rows given in ``chunks`` (called once), trained on ``train``: PCA to
    ``REDUCED_DIM``, an inverted file of ``4 sqrt(n)`` lists, reranking on float16 full rows."""
    import faiss

    kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    lists = max(1, min(int(4 * math.sqrt(n)), len(train) // 39))
    reduced = min(REDUCED_DIM, dim)
    coarse = faiss.index_factory(dim, f"PCA{reduced},IVF{lists},Flat", kind)
    refine = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, kind)
    index = faiss.IndexRefine(coarse, refine)
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    for chunk in chunks():
        index.add(np.ascontiguousarray(chunk, dtype=np.float32))
    return index


def search_index(index, queries: Callable[[], Iterable[np.ndarray]], k: int, metric: str) -> Neighbours:
    """Each indexed row's ``k`` nearest other rows; ``queries`` yields the indexed rows again, in order."""
    import faiss

    faiss.extract_index_ivf(index.base_index).nprobe = NPROBE
    index.k_factor = CANDIDATES
    n = index.ntotal
    indices, distances = np.full((n, k), -1, dtype=np.int64), np.full((n, k), np.inf, dtype=np.float32)
    start = 0
    for block in queries():
        found_d, found_i = index.search(np.ascontiguousarray(block, dtype=np.float32), k + 1)
        own = np.arange(start, start + len(block))[:, None]
        found_d = _as_distances(found_d, metric)
        found_d[(found_i == own) | (found_i < 0)] = np.inf  # one's own row (wherever a tie put it) is not a neighbour
        order = np.argsort(found_d, axis=1, kind="stable")[:, :k]
        indices[start:start + len(block)] = np.take_along_axis(found_i, order, 1)
        distances[start:start + len(block)] = np.take_along_axis(found_d, order, 1)
        start += len(block)
    missing = ~np.isfinite(distances)
    indices[missing] = -1
    return Neighbours(indices, distances, exact=False)


def _as_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    """faiss's scores as distances: ``1 - inner product`` for cosine, the root of squared L2 otherwise."""
    if metric == "cosine":
        return (1.0 - scores).astype(np.float32)
    return np.sqrt(np.maximum(scores, 0.0)).astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """recall@k: the share of the true ``k`` nearest (``truth`` ``[q, k]``) that ``found`` ``[q, k]`` lists."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size
