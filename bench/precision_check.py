"""bf16 autocast vs fp32 for frozen features: accuracy and extraction time on the packaged sets, side by side.

    python bench/precision_check.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


import headstart
from headstart.data import bbc_news_folder, load_labelled, mnist_folder


def bbc_pair(per_class: int = 100) -> tuple[list[str], list[str]]:
    """The first ``per_class`` BBC News articles of each topic."""
    data = load_labelled(bbc_news_folder())
    keep = [i for c in data.classes for i in [j for j, y in enumerate(data.labels) if y == c][:per_class]]
    return [data.items[i] for i in keep], [data.labels[i] for i in keep]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="headstart-precision-"))
    tasks = [("MNIST 1000 @96px", mnist_folder(work / "mnist", per_class=100), "mobilenetv2", {"image_size": 96}),
             ("BBC 500 articles", bbc_pair(), "minilm-l6", {})]
    print(f"{'data':18s} {'model':12s} {'precision':9s} {'test acc':>8s} {'macro-F1':>8s} {'seconds':>8s}")
    for title, data, model, options in tasks:
        accs = {}
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            r = headstart.fit(data, model, "linear", precision=precision, test_fraction=0.3, progress=False,
                              cache_dir=str(work / f"cache-{precision}"), **options)
            seconds = time.perf_counter() - start
            accs[precision] = r.metrics["test"]["accuracy"]
            print(f"{title:18s} {model:12s} {precision:9s} {r.metrics['test']['accuracy']:8.4f} "
                  f"{r.metrics['test']['macro_f1']:8.4f} {seconds:8.1f}", flush=True)
        print(f"{title:18s} bf16 - fp32 accuracy: {accs['bf16'] - accs['fp32']:+.4f}")


if __name__ == "__main__":
    main()
