"""Check and time headstart's strategies on a device (e.g. `python bench/device_check.py --device cuda`).

Prints one line per fit: data, model, strategy, device, precision, validation/test accuracy, seconds,
peak GPU memory. Uses the packaged MobileNetV2 weights and MNIST subset; for text it uses MiniLM-L6's
packaged weights or, with --text-model DIR, any local Hugging Face directory (random: prefix allowed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import headstart
from headstart.data import bbc_news_folder, mnist_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--per-class", type=int, default=500, help="MNIST images per class (500 = all)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--text-model", default="minilm-l6")
    parser.add_argument("--only", default="", help="comma-separated strategies to run (default: all)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="headstart-device-"))
    digits = mnist_folder(work / "mnist", per_class=args.per_class)
    common = dict(device=args.device, cache_dir=str(work / "cache"), progress=False, test_fraction=0.2,
                  epochs=args.epochs)
    jobs = [
        (digits, "mobilenetv2", "linear", dict(image_size=args.image_size)),
        (digits, "mobilenetv2", "linear", dict(image_size=args.image_size)),  # second time: cache hit
        (digits, "mobilenetv2", "partial", dict(image_size=args.image_size, hflip=False, batch_size=64)),
        (digits, "mobilenetv2", "full", dict(image_size=args.image_size, hflip=False, batch_size=64)),
        (str(bbc_news_folder()), args.text_model, "linear", {}),
        (str(bbc_news_folder()), args.text_model, "lp-ft", dict(unfreeze=3, batch_size=32)),
        (str(bbc_news_folder()), args.text_model, "lora", dict(batch_size=32)),
        (digits, "mobilenetv2", "lora", dict(image_size=args.image_size, hflip=False, batch_size=64)),
        # partial's fast path (frozen groups once, boundary activations cached) against recomputing them
        (digits, "mobilenetv2", "partial", dict(image_size=args.image_size, augment=False, batch_size=64)),
        (digits, "mobilenetv2", "partial", dict(image_size=args.image_size, augment=False, batch_size=64,
                                               cache_boundary=False)),
        (str(bbc_news_folder()), args.text_model, "partial", dict(batch_size=32)),
        (str(bbc_news_folder()), args.text_model, "partial", dict(batch_size=32, cache_boundary=False)),
    ]
    if args.only:
        jobs = [job for job in jobs if job[2] in args.only.split(",")]
    for data, model, strategy, options in jobs:
        start = time.perf_counter()
        r = headstart.fit(data, model, strategy, **common, **options)
        m = r.metrics
        print(f"{Path(str(data)).name:10s} {model:24s} {strategy:8s} {m['device']:6s} "
              f"feat={m['feature_precision']} train={m['train_precision']} "
              f"val={m['val']['accuracy']:.3f} test={m['test']['accuracy']:.3f} "
              f"forwarded={m['backbone_forward_items']} fit={m['seconds']:.1f}s wall={time.perf_counter() - start:.1f}s "
              f"peak_gpu={m.get('peak_gpu_mb', 0):.0f}MB boundary_cached={r.info.get('boundary_cached', '-')}",
              flush=True)


if __name__ == "__main__":
    main()
