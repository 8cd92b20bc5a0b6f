"""The benchmark's measurements, one function each, run in a fresh process so its peak memory is its own.

    python -m bench.tasks NAME SPEC.json OUT.json

``SPEC`` names the workload (data folder, model, image size, split) and the task's settings; ``OUT``
gets the task's figures plus ``peak_rss_mb`` (the process's peak resident memory, from getrusage).
Every task loads the same split: ``headstart.workflows.pipeline.prepare`` with the workload's seed and fractions.
"""

from __future__ import annotations

import copy
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import headstart
from headstart.workflows.pipeline import config_for, prepare
from headstart.backbones import batch_to
from headstart.data import Dataset
from headstart.training.devices import autocast, extraction_batch, resolve_device, resolve_precision, resolve_workers
from headstart.features.cache import Extraction, FeatureCache, length_order

TASKS: dict[str, Callable[[dict], dict]] = {}


def task(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    TASKS[fn.__name__] = fn
    return fn


def _options(spec: dict) -> dict:
    keys = ("image_size", "max_length", "val_fraction", "test_fraction", "seed")
    return {k: spec[k] for k in keys if spec.get(k) is not None}


def _load(spec: dict, strategy: str = "linear", **extra):
    """``(splits, backbone, cfg)`` of the workload: the same split in every task."""
    cfg = config_for(spec["model"], strategy, {**_options(spec), **extra})
    splits, backbone = prepare(spec["data"], spec["model"], cfg)
    return splits, backbone, cfg


def _extraction_precision() -> str:
    return resolve_precision("auto", resolve_device("auto"))


def _training_precision(backbone) -> str:
    return resolve_precision("auto", resolve_device("auto"), training=True, depthwise=backbone.depthwise)


def _everything(splits) -> Dataset:
    """Train, validation and test items as one unlabelled Dataset (what ``linear`` extracts)."""
    parts = [splits.train, splits.val, splits.test]
    return Dataset(items=sum((d.items for d in parts), ()), labels=None, modality=splits.train.modality,
                   origins=sum((d.origins for d in parts), ()))


def _batches(backbone, items: tuple, batch_size: int) -> list:
    """Preprocessed batches (texts sorted by length, padded per batch), made before any clock starts."""
    order = length_order(backbone, Dataset(items=items, labels=None, modality=backbone.modality,
                                           origins=("bench",) * len(items)))
    collate = backbone.preprocessing.collate(augment=False)
    ordered = [items[i] for i in order]
    return [collate([(x, 0) for x in ordered[i:i + batch_size]])[0] for i in range(0, len(ordered), batch_size)]


def _forward_all(module: nn.Module, batches: list, precision: str, channels_last: bool) -> float:
    device = torch.device("cpu")
    start = time.perf_counter()
    with torch.inference_mode():
        for inputs in batches:
            with autocast(device, precision):
                module(batch_to(inputs, device, channels_last))
    return time.perf_counter() - start


@task
def bare_forward(spec: dict) -> dict:
    """(a) The limit: inference-mode forward passes over every item, preprocessed beforehand, best batch size."""
    splits, backbone, _ = _load(spec)
    items = _everything(splits).items
    precision, image = _extraction_precision(), backbone.modality == "image"
    module = backbone.module.eval()
    if image:
        module = module.to(memory_format=torch.channels_last)
    probe = items[:256]
    rates = {}
    for size in (16, 32, 64, 128):
        batches = _batches(backbone, probe, size)
        _forward_all(module, batches[:1], precision, image)  # warm-up: oneDNN picks its kernels
        rates[size] = len(probe) / _forward_all(module, batches, precision, image)
    best = max(rates, key=rates.get)
    batches = _batches(backbone, items, best)
    seconds = _forward_all(module, batches, precision, image)
    return {"items": len(items), "seconds": seconds, "items_per_s": len(items) / seconds, "batch_size": best,
            "precision": precision, "probe_items_per_s": rates}


@task
def interleaved(spec: dict) -> dict:
    """(a) against extraction and (b), in one process and alternating (the host's speed drifts by up to 2x
    over minutes): a bare forward pass, headstart's cold-cache extraction of the same items, ``linear`` end
    to end, ``repeats`` times; each ratio is taken within one round and the median round is reported."""
    import timm  # noqa: F401  (imports done before the clock)
    import transformers  # noqa: F401

    splits, backbone, _ = _load(spec)
    data, image = _everything(splits), backbone.modality == "image"
    precision, device = _extraction_precision(), resolve_device("auto")
    module = backbone.module.eval().to(memory_format=torch.channels_last) if image else backbone.module.eval()
    batches = _batches(backbone, data.items, spec["batch_size"])
    _forward_all(module, batches[:1], precision, image)
    run = Extraction(device, precision, batch_size=extraction_batch(device),
                     num_workers=resolve_workers(None, device, backbone.modality), progress=False)
    times = {"bare": [], "extract": [], "linear": []}
    for _ in range(spec.get("repeats", 3)):
        times["bare"].append(_forward_all(module, batches, precision, image))
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            FeatureCache(Path(cache)).features(backbone, data, run)
            times["extract"].append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            headstart.fit(spec["data"], spec["model"], "linear", progress=False, cache_dir=cache, **_options(spec))
            times["linear"].append(time.perf_counter() - start)
    bare = np.array(times["bare"])
    return {"items": len(data), "seconds": {k: float(np.median(v)) for k, v in times.items()}, "all_seconds": times,
            "extract_over_bare": float(np.median(bare / np.array(times["extract"]))),
            "linear_over_bare": float(np.median(np.array(times["linear"]) / bare))}


@task
def headstart_fit(spec: dict) -> dict:
    """headstart.fit end to end (load, extract or train, evaluate) with a cold feature cache."""
    options = {**_options(spec), **spec.get("options", {})}
    import timm  # noqa: F401  (imports done before the clock, as in every other task)
    import transformers  # noqa: F401

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        result = headstart.fit(spec["data"], spec["model"], spec["strategy"], progress=False, cache_dir=cache,
                               **options)
        seconds = time.perf_counter() - start
    m = result.metrics
    return {"seconds": seconds, "accuracy": m["test"]["accuracy"], "val_accuracy": m["val"]["accuracy"],
            "info": {k: v for k, v in result.info.items() if k != "grid"},
            "epoch_seconds": [h["seconds"] for h in result.history if "seconds" in h]}


@task
def usual_frozen_loop(spec: dict) -> dict:
    """(c) What Keras / Trainer users write: a frozen backbone run on every batch of every epoch, a linear
    head trained by AdamW (lr 1e-3, batch 32); test accuracy after the last epoch."""
    start = time.perf_counter()
    splits, backbone, _ = _load(spec)
    device, precision = torch.device("cpu"), _extraction_precision()
    image = backbone.modality == "image"
    index = {c: i for i, c in enumerate(splits.classes)}
    body = backbone.module.eval().requires_grad_(False)
    if image:
        body = body.to(memory_format=torch.channels_last)
    torch.manual_seed(spec.get("seed", 0))
    head = nn.Linear(backbone.feature_dim, len(index))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    collate = backbone.preprocessing.collate(augment=False)
    pairs = [(x, index[y]) for x, y in zip(splits.train.items, splits.train.labels)]
    loader = DataLoader(pairs, batch_size=32, shuffle=True, collate_fn=collate,
                        num_workers=resolve_workers(None, device, backbone.modality))
    for _ in range(spec.get("epochs", 10)):
        for inputs, y in loader:
            with torch.no_grad(), autocast(device, precision):
                feats = body(batch_to(inputs, device, image)).float()
            loss = F.cross_entropy(head(feats), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    correct = 0
    test = DataLoader([(x, index[y]) for x, y in zip(splits.test.items, splits.test.labels)], batch_size=64,
                      collate_fn=collate)
    with torch.inference_mode():
        for inputs, y in test:
            with autocast(device, precision):
                correct += int((head(body(batch_to(inputs, device, image)).float()).argmax(1) == y).sum())
    return {"seconds": time.perf_counter() - start, "accuracy": correct / len(splits.test)}


@task
def hand_finetune(spec: dict) -> dict:
    """(d) A minimal hand-written fine-tuning loop: whole model trainable, AdamW, same batch, dtype and
    layout as headstart's; each epoch trains, then predicts the validation set (as headstart's loop does)."""
    splits, backbone, _ = _load(spec)
    device, precision = torch.device("cpu"), _training_precision(backbone)
    image = backbone.modality == "image"
    index = {c: i for i, c in enumerate(splits.classes)}
    torch.manual_seed(spec.get("seed", 0))
    model = nn.Sequential(copy.deepcopy(backbone.module), nn.Linear(backbone.feature_dim, len(index)))
    if image:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    collate = backbone.preprocessing.collate(augment=False)
    batch = spec.get("batch_size", 32)
    loader = DataLoader([(x, index[y]) for x, y in zip(splits.train.items, splits.train.labels)], batch_size=batch,
                        shuffle=True, collate_fn=collate)
    val = DataLoader([(x, 0) for x in splits.val.items], batch_size=batch * 2, collate_fn=collate)
    epoch_seconds = []
    for _ in range(spec.get("epochs", 2)):
        start = time.perf_counter()
        model.train()
        for inputs, y in loader:
            with autocast(device, precision):
                loss = F.cross_entropy(model(batch_to(inputs, device, image)).float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            for inputs, _ in val:
                with autocast(device, precision):
                    model(batch_to(inputs, device, image))
        epoch_seconds.append(time.perf_counter() - start)
    return {"epoch_seconds": epoch_seconds, "train_items": len(splits.train), "precision": precision}


@task
def recipe_fit(spec: dict) -> dict:
    """The recipe-quality rows (bench/recipes.py): ``headstart.fit`` with defaults plus ``spec["options"]``, on
    a folder with train/val/test splits, cold feature cache; test accuracy and what the fit chose."""
    import timm  # noqa: F401  (imports done before the clock, as in every other task)
    import transformers  # noqa: F401

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        result = headstart.fit(spec["data"], spec["model"], spec["strategy"], progress=False, cache_dir=cache,
                               **spec.get("options", {}))
        seconds = time.perf_counter() - start
    m, info = result.metrics, result.info
    auto = info.get("auto", {})
    return {"seconds": seconds, "accuracy": m["test"]["accuracy"], "val_accuracy": m["val"]["accuracy"],
            "strategy": result.strategy, "image_size": result.config.image_size,
            "max_length": result.config.max_length, "best_epoch": info.get("best_epoch"),
            "epochs_run": sum("train_loss" in h for h in result.history) or None,
            "val_curve": [[h["epoch"], h.get("val_accuracy"), h.get("val_loss")]  # epoch, accuracy, loss
                          for h in result.history if "epoch" in h],
            "warnings": list(m.get("warnings", [])), "probe_val_accuracy": m.get("probe_val_accuracy"),
            "auto": {k: auto[k] for k in ("recommended", "kept", "val_accuracy") if k in auto} or None}


@task
def hand_recipe(spec: dict) -> dict:
    """A plain hand-written full fine-tune (the recipe-quality yardstick): the backbone headstart loads, at the
    input size headstart chooses from the data, a fresh linear head; everything trains, BatchNorm in train
    mode, no augmentation, no clipping; AdamW (``backbone_lr`` for the backbone, ``head_lr`` for the head,
    weight decay ``weight_decay``), cosine decay to 0 over every step, no warm-up; a fixed number of epochs,
    no early stopping, no validation; test accuracy after the last epoch. Same training precision as
    headstart's on this machine. ``seconds``: loading, training and testing, imports excluded."""
    import timm  # noqa: F401
    import transformers  # noqa: F401

    start = time.perf_counter()
    splits, backbone, _ = _load(spec)
    device, precision = torch.device("cpu"), _training_precision(backbone)
    image = backbone.modality == "image"
    index = {c: i for i, c in enumerate(splits.classes)}
    seed = spec.get("seed", 0)
    torch.manual_seed(seed)
    body = backbone.module.requires_grad_(True)
    head = nn.Linear(backbone.feature_dim, len(index))
    model = nn.Sequential(body, head)
    if image:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW([{"params": body.parameters(), "lr": spec["backbone_lr"]},
                                   {"params": head.parameters(), "lr": spec["head_lr"]}],
                                  weight_decay=spec.get("weight_decay", 0.01))
    collate = backbone.preprocessing.collate(augment=False)
    loader = DataLoader([(x, index[y]) for x, y in zip(splits.train.items, splits.train.labels)],
                        batch_size=spec.get("batch_size", 32), shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed))
    epochs = spec.get("epochs", 10)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    losses = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for inputs, y in loader:
            with autocast(device, precision):
                loss = F.cross_entropy(model(batch_to(inputs, device, image)).float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss) * len(y)
        losses.append(total / len(splits.train))
    model.eval()
    correct = 0
    test = DataLoader([(x, index[y]) for x, y in zip(splits.test.items, splits.test.labels)], batch_size=64,
                      collate_fn=collate)
    with torch.inference_mode():
        for inputs, y in test:
            with autocast(device, precision):
                correct += int((model(batch_to(inputs, device, image)).float().argmax(1) == y).sum())
    prep = backbone.preprocessing
    return {"seconds": time.perf_counter() - start, "accuracy": correct / len(splits.test), "precision": precision,
            "image_size": getattr(prep, "size", None), "max_length": getattr(prep, "max_length", None),
            "epochs": epochs, "train_items": len(splits.train), "train_loss": losses}


@task
def split_items(spec: dict) -> dict:
    """The workload's split as item/label lists, for the peers (bench.peers) to train on the same data."""
    splits, _, _ = _load(spec)
    return {name: {"items": [str(x) for x in ds.items], "labels": list(ds.labels)}
            for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test))}


def main(argv: list[str]) -> int:
    name, spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec.get("threads", torch.get_num_threads()))
    result = TASKS[name](spec)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out_path).write_text(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
