"""`contrastive` (SetFit) against `linear` on few-shot BBC News with MiniLM-L6: test accuracy and wall time.

    python bench/contrastive_check.py                       # shots 8 and 64, seeds 0 1 2
    python bench/contrastive_check.py --shots 8 --seeds 0

Every seed draws its own training examples (``shots`` per class) from one pool; validation (20 per class,
which chooses the probe's C) and test (100 per class) are fixed and shared by every row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import headstart
from headstart.data import bbc_news_folder, load_labelled

VAL_PER_CLASS, TEST_PER_CLASS = 20, 100


def bbc_few_shot(shots: int | None, seed: int) -> dict[str, tuple[list[str], list[str]]]:
    """``{"train", "val", "test"}`` as (texts, labels): val and test fixed (seed 0), train drawn with ``seed``
    (``shots`` None: every remaining article)."""
    data = load_labelled(bbc_news_folder())
    fixed, draw = np.random.default_rng(0), np.random.default_rng(1000 + seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in data.classes:
        idx = fixed.permutation([i for i, y in enumerate(data.labels) if y == c])
        parts["val"] += list(idx[:VAL_PER_CLASS])
        parts["test"] += list(idx[VAL_PER_CLASS:VAL_PER_CLASS + TEST_PER_CLASS])
        parts["train"] += list(draw.permutation(idx[VAL_PER_CLASS + TEST_PER_CLASS:])[:shots])
    return {k: ([data.items[i] for i in v], [data.labels[i] for i in v]) for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ceiling", action="store_true", help="also linear on every remaining article")
    args = parser.parse_args()
    cache = str(Path(tempfile.mkdtemp(prefix="headstart-contrastive-")) / "cache")
    print(f"{'shots':>5s} {'seed':>4s} {'strategy':12s} {'test acc':>8s} {'macro-F1':>8s} {'seconds':>8s}", flush=True)
    gains: dict[int, list[float]] = {}
    for shots in args.shots:
        for seed in args.seeds:
            split = bbc_few_shot(shots, seed)
            accs = {}
            for strategy in ("linear", "contrastive"):
                start = time.perf_counter()
                r = headstart.fit(split["train"], "minilm-l6", strategy, val=split["val"], test=split["test"],
                                  seed=seed, cache_dir=cache, progress=False)
                seconds = time.perf_counter() - start
                accs[strategy] = r.metrics["test"]["accuracy"]
                print(f"{shots:5d} {seed:4d} {strategy:12s} {r.metrics['test']['accuracy']:8.4f} "
                      f"{r.metrics['test']['macro_f1']:8.4f} {seconds:8.1f}", flush=True)
            gains.setdefault(shots, []).append(accs["contrastive"] - accs["linear"])
    if args.ceiling:
        split = bbc_few_shot(None, 0)
        r = headstart.fit(split["train"], "minilm-l6", "linear", val=split["val"], test=split["test"],
                          cache_dir=cache, progress=False)
        print(f"{'all':>5s} {0:4d} {'linear':12s} {r.metrics['test']['accuracy']:8.4f} "
              f"{r.metrics['test']['macro_f1']:8.4f}   ({len(split['train'][0])} training articles)", flush=True)
    for shots, diffs in gains.items():
        print(f"shots {shots}: contrastive - linear = {100 * np.mean(diffs):+.1f} points "
              f"(per seed: {', '.join(f'{100 * d:+.1f}' for d in diffs)})")


if __name__ == "__main__":
    main()
