"""``headstart suggest``: which items of an unlabelled pool to label next, and (with a run) what that buys.

Features come from the feature cache (each pool item is forwarded once, as ``linear`` does); the picks are
made on them by headstart.label.select; with a run the forecast is headstart.label.forecast's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.backbones import Backbone, load_backbone
from headstart.backbones.sources import state_identity
from headstart.data import DataSplits, Dataset
from headstart.data.dataset import modality
from headstart.tasks.kinds import kind
from headstart.data.split import strata
from headstart.training.devices import extraction_batch, resolve_device, resolve_precision
from headstart.core.errors import ConfigError, DataError
from headstart.features.cache import Extraction, FeatureCache
from headstart.label.forecast import Forecast, forecast
from headstart.label.pool import fit_preprocessing, known_items, read_pool, run_splits
from headstart.label.select import (REGRESSION_GROUPS, UNCERTAIN_FROM, Pick, margin_doubt, ridge_doubt,
                                    threshold_doubt, typical, uncertain, use_uncertain)
from headstart.runs.folder import Predictor, load_predictor


@dataclass
class Suggestions:
    """The picks (``rows``: rank, path or text, guess and probability with a run, reason), how they were made,
    how many pool items the run already had, and the forecast (None, and why in ``notes``, without one)."""

    rows: list[dict]
    method: str
    labelled: int = 0
    already: int = 0
    forecast: Forecast | None = None
    notes: list[str] | None = None


@dataclass(frozen=True)
class Setup:
    """Where features are computed: the cache and how to extract."""

    cache: FeatureCache
    extraction: Extraction

    @classmethod
    def make(cls, device: str, cache_dir: str | Path | None, progress: bool) -> "Setup":
        dev = resolve_device(device)
        return cls(FeatureCache(cache_dir), Extraction(dev, resolve_precision("auto", dev),
                                                       batch_size=extraction_batch(dev), progress=progress))

    def features(self, backbone: Backbone, data: Dataset) -> np.ndarray:
        return self.cache.features(backbone, data, self.extraction)


def suggest(pool: Any, n: int, *, model: str | None = None, run: str | Path | None = None,
            text_col: str | None = None, image_col: str | None = None, image_size: int | None = None,
            seed: int = 0, device: str = "auto", cache_dir: str | Path | None = None,
            progress: bool = True, skip_bad: bool = False) -> Suggestions:
    """The ``n`` items of ``pool`` (a folder of files, a table of texts or paths) to label next: with ``model``
    (nothing labelled yet) typical-and-diverse picks; with ``run`` (a fitted run) picks that skip its training
    items and, once it has enough labels, are uncertain-and-diverse, with the model's guess and a forecast of
    the metric after labelling them (see headstart.label.select and headstart.label.forecast). ``skip_bad``
    leaves out pool items that cannot be read (each named in the notes) instead of stopping."""
    if (model is None) == (run is None):
        raise ConfigError("Pass either --model NAME (nothing labelled yet: cold start) or --run RUN (a fitted "
                          "run, whose training items are never suggested again), not both and not neither.")
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"--n {n}: the number of items to suggest must be at least 1, e.g. --n 20.")
    setup = Setup.make(device, cache_dir, progress)
    if run is None:
        backbone = load_backbone(model, image_size=image_size)
        data = read_pool(pool, backbone.modality, text_col, image_col, skip_bad=skip_bad)
        feats = setup.features(fit_preprocessing(backbone, data, image_size), data)
        picks = typical(feats, min(n, len(data)), seed=seed)
        return Suggestions(table(data, picks), "typical-and-diverse (nothing labelled yet)",
                           notes=skipped_notes(data) or None)
    return from_run(Path(run), pool, n, setup, text_col, image_col, seed, skip_bad)


def skipped_notes(data: Dataset) -> list[str]:
    """One line per pool item left out by ``skip_bad``, as predict says it."""
    return [f"skipped {item.origin}: {item.reason}" for item in data.skipped]


def from_run(run: Path, pool: Any, n: int, setup: Setup, text_col: str | None, image_col: str | None,
             seed: int, skip_bad: bool = False) -> Suggestions:
    """Picks from the part of ``pool`` that ``run`` has not labelled, with its guesses and forecast."""
    predictor = load_predictor(run)
    backbone = replace(predictor.backbone, weights_id=state_identity(predictor.model.backbone))
    whole = read_pool(pool, backbone.modality, text_col, image_col, predictor.columns, skip_bad)
    known = known_items(run)
    fresh = [i for i in range(len(whole)) if not known.holds(whole, i)]
    if not fresh:
        raise DataError(f"Every item of the pool {pool} is already labelled in {run} (its training or validation "
                        "items). Add items nobody has labelled yet to the pool.")
    data = whole.subset(fresh)
    feats = setup.features(backbone, data)
    with torch.no_grad():
        outputs = predictor.model.head(torch.from_numpy(feats)).double().numpy()
    splits, why = run_splits(run)
    notes = skipped_notes(whole) + ([f"no forecast: {why}"] if splits is None else [])
    train = None if splits is None else labelled_features(setup, backbone, predictor, splits)
    task, classes = predictor.task, kind(predictor.task.name).has_classes
    groups = len(predictor.classes) if classes else REGRESSION_GROUPS
    if use_uncertain(known.count, groups) and (classes or train is not None):
        doubt, reasons = doubts(predictor, outputs, feats, train, seed)
        picks, method = uncertain(feats, min(n, len(data)), doubt, reasons, seed), "uncertain-and-diverse"
    else:
        labelled = None if train is None else np.concatenate([train[0], train[3]])
        picks = typical(feats, min(n, len(data)), labelled, seed)
        method = "typical-and-diverse"
    method += (f" ({known.count} labelled, {'at least' if method[0] == 'u' else 'under'} {UNCERTAIN_FROM} a "
               f"{'class' if classes else 'fifth of the range'})")
    ahead = None if splits is None else forecast(task, train[:3], train[3:], n, seed)
    return Suggestions(table(data, picks, predictor, outputs), method, known.count, len(whole) - len(data), ahead,
                       notes or None)


def labelled_features(setup: Setup, backbone: Backbone, predictor: Predictor, splits: DataSplits) -> tuple:
    """``(x_train, y_train, strata, x_val, y_val)`` of the run's labelled items, features from the cache."""
    task = predictor.task
    x_train, x_val = setup.features(backbone, splits.train), setup.features(backbone, splits.val)
    return (x_train, task.targets(splits.train.labels), strata(task.name, splits.train.labels), x_val,
            task.targets(splits.val.labels))


def doubts(predictor: Predictor, outputs: np.ndarray, feats: np.ndarray, train: tuple | None,
           seed: int) -> tuple[np.ndarray, list[str]]:
    """How unsure the run is of each pool item, and why in words (see headstart.label.select): a value's by the
    disagreement of bootstrapped ridge heads, a label's by its distance to its threshold, a class's by the margin."""
    task = predictor.task
    if not kind(task.name).has_classes:
        return ridge_doubt(feats, train[0], train[1], seed)
    proba = task.probabilities(outputs)
    if not kind(task.name).one_per_item:
        return threshold_doubt(proba, np.asarray(task.thresholds), predictor.classes)
    return margin_doubt(proba, predictor.classes)


def table(data: Dataset, picks: list[Pick], predictor: Predictor | None = None,
          outputs: np.ndarray | None = None) -> list[dict]:
    """One row per pick, in rank order: rank, path (files) or text, guess and probability (a run), reason."""
    answers = None if predictor is None else predictor.task.rows(outputs)
    rows = []
    for rank, pick in enumerate(picks, 1):
        row = {"rank": rank, ("text" if modality(data.modality).texts else "path"): str(data.items[pick.index])}
        if answers is not None:
            row.update(guess(answers[pick.index]))
        rows.append({**row, "reason": pick.reason})
    return rows


def guess(answer: dict) -> dict:
    """The model's answer as ``guess`` and ``probability`` (multi-label: labels joined by |, the lowest of
    their probabilities; regression: the value, no probability)."""
    if "value" in answer:
        return {"guess": f"{answer['value']:.6g}", "probability": ""}
    if "labels" in answer:
        chosen = answer["labels"]
        p = min((answer["probabilities"][c] for c in chosen), default=max(answer["probabilities"].values()))
        return {"guess": "|".join(chosen), "probability": f"{p:.3f}"}
    return {"guess": answer["label"], "probability": f"{answer['probabilities'][answer['label']]:.3f}"}
