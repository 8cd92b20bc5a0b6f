"""Evaluation items that the run already saw: matched by content hash against the run's split.json."""

from __future__ import annotations

import json
from pathlib import Path

from headstart.data import Dataset
from headstart.data.load import HASH_CHARS


def overlap_with_run(run: Path, data: Dataset) -> dict:
    """``{"overlap": {"train": n, "val": m, "examples": [...]}, "warnings": [...]}`` for the items of ``data``
    whose content is a training or validation item of ``run``; ``{}`` when there are none, or when the run
    predates recorded hashes (its split.json has no ``train_hashes``)."""
    try:
        split = json.loads((Path(run) / "split.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(split, dict) or not isinstance(split.get("train_hashes"), list):
        return {}
    seen = {role: set(split.get(f"{role}_hashes") or ()) for role in ("train", "val")}
    hashes = [h[:HASH_CHARS] for h in data.item_hashes()]
    counts = {role: sum(h in known for h in hashes) for role, known in seen.items()}
    if not any(counts.values()):
        return {}
    examples = [origin for origin, h in zip(data.origins, hashes) if h in seen["train"] or h in seen["val"]][:3]
    parts = [f"{n} were {'training' if role == 'train' else 'validation'} items" for role, n in counts.items() if n]
    warning = (f"{' and '.join(parts)} of the run ({len(data)} evaluated; e.g. {', '.join(examples)}): scores on "
               "them are optimistic. Evaluate on data the run has not seen, such as its test split.")
    return {"overlap": {**counts, "examples": examples}, "warnings": [warning]}
