"""What tests/unit/test_distributed.py runs in each process, under a launcher or alone.

    python distributed_worker.py MODEL_DIR OUT

Sharded feature extraction of every text into a fresh cache, then a 2-epoch ``full`` fine-tuning fit
(L2-SP and gradient clipping on) saved to OUT/run. Each process writes OUT/rank-<rank>.json (its rank and
world size as torch.distributed sees them, its history and how often it wrote files) and OUT/rank-<rank>.npz
(features, final weights, validation probabilities).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Two topics the tiny model can learn; 25 training texts with batch size 3 give global batches split 2/1
# across two processes, and a last batch of one item, which leaves the second process a padding item.
TRAIN = 13 * ["sports"] + 12 * ["cooking"]
FIT_OPTIONS = dict(epochs=2, batch_size=3, l2sp=0.01, lr=1e-3, device="cpu", precision="fp32", seed=0)


def texts() -> tuple[list[str], list[str], list[str], list[str]]:
    """``(train_items, train_labels, val_items, val_labels)`` from the conftest sentences."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import COOKING, SPORTS

    train = SPORTS[:13] + COOKING[:12]
    val = SPORTS[13:] + COOKING[12:]
    return train, TRAIN, val, 2 * ["sports"] + 3 * ["cooking"]


def run(model_dir: str, out: Path) -> dict:
    """Extract features and fine-tune; returns what this process saw and produced."""
    import headstart
    from headstart.training import distributed
    from headstart.features.cache import Extraction, FeatureCache

    distributed.setup(torch.device("cpu"))
    train_items, train_labels, val_items, val_labels = texts()
    backbone = headstart.load_backbone(model_dir)
    cache = FeatureCache(out / "cache")
    feats = cache.features(backbone, headstart.load_items(train_items + val_items), Extraction(
        torch.device("cpu"), batch_size=4, progress=False))
    result = headstart.fit((train_items, train_labels), backbone, "full", val=(val_items, val_labels),
                           out=out / "run", progress=False, cache_dir=str(out / "fit-cache"), **FIT_OPTIONS)
    weights = {f"w.{k}": v.detach().numpy() for k, v in result.predictor.model.state_dict().items()}
    logits = result.predictor.probabilities(headstart.load_items(val_items), device="cpu")
    return {"rank": distributed.rank(), "world": distributed.world_size(), "forwarded": cache.forwarded,
            "history": result.history, "run_dir": str(result.run_dir), "arrays": {
                "features": feats, "val_probabilities": logits, **weights}}


def count_writes() -> Counter:
    """Count, in this process, every call that writes a run directory, a checkpoint or a cache shard."""
    import headstart.workflows.pipeline
    import headstart.training.checkpoints
    import headstart.training.engine
    from headstart.features.cache import FeatureCache

    calls: Counter = Counter()

    def counted(owner: object, name: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    for owner, name in ((headstart.workflows.pipeline, "save_run"), (headstart.training.checkpoints, "start_run"),
                        (headstart.training.engine, "save_checkpoint"), (FeatureCache, "_write_shard")):
        counted(owner, name)
    return calls


def main() -> None:
    model_dir, out = sys.argv[1], Path(sys.argv[2])
    calls = count_writes()
    done = run(model_dir, out)
    done["writes"] = dict(calls)
    np.savez(out / f"rank-{done['rank']}.npz", **done.pop("arrays"))
    (out / f"rank-{done['rank']}.json").write_text(json.dumps(done, default=str))


if __name__ == "__main__":
    main()
