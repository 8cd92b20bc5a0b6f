"""The demo: transfer learning against fine-tuning on packaged data and weights, side by side, offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headstart.api import FitResult, fit
from headstart.data import bbc_news_folder, load_labelled, mnist_folder
from headstart.features.cache import default_cache_dir


@dataclass(frozen=True)
class DemoTask:
    """One data set, one backbone, the strategies to compare and their shared options."""

    title: str
    model: str
    strategies: tuple[str, ...]
    options: dict


def demo_tasks(cache_dir: Path) -> list[tuple[DemoTask, object]]:
    """MNIST digits (far from ImageNet photos) with MobileNetV2; BBC News topics with MiniLM-L6.

    The digits' folder names are classes, said so (``task``) rather than noted on every fit; the BBC set's
    exact duplicate articles are left out, so that its own copies raise no leakage warning on a first run."""
    digits = mnist_folder(cache_dir / "data" / "mnist-100", per_class=100)
    news = load_labelled(bbc_news_folder())
    keep = _per_class(news.labels, 60, news.item_hashes())
    news_subset = ([news.items[i] for i in keep], [news.labels[i] for i in keep])
    return [
        (DemoTask("MNIST subset: 1000 digits, 96 px", "mobilenetv2", ("linear", "partial", "lp-ft"),
                  dict(image_size=96, test_fraction=0.3, epochs=8, hflip=False, unfreeze=3, task="single-label")),
         digits),
        (DemoTask("BBC News: 300 articles, 5 topics", "minilm-l6", ("linear", "lp-ft"),
                  dict(test_fraction=0.3, epochs=3, unfreeze=2, max_length=128)), news_subset),
    ]


def _per_class(labels, n: int, hashes: list[str]) -> list[int]:
    """Indices of the first ``n`` items of each class, in order, leaving out copies (same content ``hashes``)."""
    seen: dict[str, int] = {}
    kept_hashes: set[str] = set()
    keep = []
    for i, label in enumerate(labels):
        if seen.get(label, 0) < n and hashes[i] not in kept_hashes:
            kept_hashes.add(hashes[i])
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return keep


def run_demo(out: Path = Path("runs/demo"), progress: bool = True) -> list[tuple[str, FitResult]]:
    """Fit every demo strategy, save each run under ``out``, and return (task title, result) pairs."""
    results = []
    for task, data in demo_tasks(default_cache_dir()):
        for strategy in task.strategies:
            options = dict(task.options)
            if strategy == "linear":
                options = {k: v for k, v in options.items() if k not in {"unfreeze"}}
            run_dir = out / f"{task.model}-{strategy}"
            result = fit(data, task.model, strategy, out=run_dir, overwrite=True, progress=progress, **options)
            results.append((task.title, result))
    return results
