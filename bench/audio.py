"""The audio row of bench/RESULTS.md: aisfx-cnn on synthesised speech commands (8 words x 24 takes).

    python -m bench.audio      # prints a markdown table; needs espeak-ng and sox (make audio-tools)

(a) a bare ``torch.inference_mode()`` forward over every clip, decoded and clipped beforehand, batch 32;
extraction: headstart's feature extraction alone (cold cache: decode, resample, clip, forward, cache);
``linear`` end to end (cold cache) and again (warm cache); ``partial`` and ``lp-ft`` (2 groups, 4 epochs,
augmentation on) on the same split, with test accuracy.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import headstart
from headstart.data.audio import choose_clip_seconds
from headstart.features.cache import Extraction, FeatureCache

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    from audio_synth import synth_speech_commands

    with tempfile.TemporaryDirectory() as tmp:
        data = synth_speech_commands(Path(tmp) / "words", per_class=24, seed=1)
        items = sorted(str(p) for p in data.glob("*/*.wav"))
        backbone = headstart.load_backbone("aisfx-cnn")
        backbone.preprocessing = backbone.preprocessing.with_clip(choose_clip_seconds(items))
        collate = backbone.preprocessing.collate(False)
        waves = torch.cat([collate([(i, 0) for i in items[k:k + 32]])[0] for k in range(0, len(items), 32)])
        with torch.inference_mode():
            backbone.features(waves[:4])
            start = time.perf_counter()
            for k in range(0, len(waves), 32):
                backbone.features(waves[k:k + 32])
            bare = time.perf_counter() - start
        data_set = headstart.load_items(str(data))
        start = time.perf_counter()
        FeatureCache(Path(tmp) / "cache").features(
            backbone, data_set, Extraction(torch.device("cpu"), "fp32", batch_size=32, progress=False))
        extraction = time.perf_counter() - start
        rows = {}
        options = dict(progress=False, test_fraction=0.25, seed=0, cache_dir=str(Path(tmp) / "fit-cache"))
        for label, strategy, extra in (("linear (cold)", "linear", {}), ("linear (warm)", "linear", {}),
                                       ("partial", "partial", dict(epochs=4, unfreeze=2)),
                                       ("lp-ft", "lp-ft", dict(epochs=4, unfreeze=2))):
            torch.manual_seed(0)
            start = time.perf_counter()
            result = headstart.fit(str(data), "aisfx-cnn", strategy, **options, **extra)
            rows[label] = (time.perf_counter() - start, result.metrics["test"]["accuracy"])
    print(f"| aisfx-cnn, 8 words x 24 | {len(items)} | {backbone.preprocessing.clip_seconds} s | "
          f"{bare:.1f} ({len(items) / bare:.1f} items/s) | {extraction:.1f} | {bare / extraction:.2f} | "
          + " | ".join(f"{s:.1f} s, {a:.3f}" for s, a in rows.values()) + " |")
    print("columns: workload | clips | clip | (a) bare forward s | extraction s | extraction speed / (a) | "
          + " | ".join(rows))
    print(f"threads {torch.get_num_threads()}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
