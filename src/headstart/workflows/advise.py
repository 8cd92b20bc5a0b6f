"""advise: rank candidate backbones on cached features, then recommend a strategy with its reasons in numbers.

Ranking combines LogME (You et al., ICML 2021), the H-score (Bao et al. 2019; single-label only) and a
cross-validated linear probe by mean rank, all on frozen features that the cache keeps for later fits. Each
task scores in its own terms: LogME of classes, of each label (mean) or of the numeric target; the probe's
accuracy, micro-F1 or R² (the task's main metric). The recommendation weighs examples per class (per label;
training items for regression), the probe's score and how much its learning curve still rises, a
fine-tuning time estimated from a measured training step, and the budget.
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from headstart.backbones import Backbone, batch_to, load_backbone
from headstart.backbones.registry import BACKBONES
from headstart.workflows.budget import Budget
from headstart.core.config import FitConfig
from headstart.data import DataSplits
from headstart.data.split import strata
from headstart.training.devices import autocast, resolve_precision
from headstart.features.cache import Extraction, FeatureCache
from headstart.training.heads import Classifier
from headstart.tasks.kinds import METRIC_NAMES, kind
from headstart.data.dataset import modality as data_modality
from headstart.workflows.pipeline import check_folders, config_for, prepare
from headstart.workflows.runtime import Runtime
from headstart.label.forecast import Forecast, forecast
from headstart.strategies import STRATEGIES
from headstart.tasks import Task, make_task
from headstart.workflows.transferability import h_score, logme, probe_curve_slope, probe_cv_score

CEILING = 0.97  # probe score (the task's main metric) above which fine-tuning has little left to add
FEW_SHOT = 10  # examples per class (per label; items for regression) below which fine-tuning overfits
STEEP = 0.02  # score gained per doubling of data above which frozen features are still short


@dataclass
class Advice:
    """Backbones ranked by transferability, and the recommended model and strategy with reasons."""

    ranking: list[dict]
    recommendation: dict

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record."""
        return {"ranking": self.ranking, "recommendation": self.recommendation}


def advise(data: Any, models: Sequence[str | Backbone] = ("minilm-l6",), *, budget: str | float | None = None,
           val: Any = None, test: Any = None, progress: bool = True, **options: Any) -> Advice:
    """Rank ``models`` on ``data`` by LogME, H-score and a CV probe (mean rank); recommend a model and strategy.

    ``options`` are FitConfig fields: ``task`` and ``label_sep`` say what the labels are, as for ``fit``."""
    cfg = config_for(models[0], "linear", options)
    check_folders(cfg, (data, val, test))
    splits, first = prepare(data, models[0], cfg, val, test)
    runtime = Runtime.from_config(cfg, progress)
    return advise_prepared(splits, [first, *models[1:]], cfg, runtime, budget)


def advise_prepared(splits: DataSplits, models: Sequence[str | Backbone], cfg: FitConfig, runtime: Runtime,
                    budget: str | float | None = None) -> Advice:
    """``advise`` on loaded data; ``models[0]`` is a loaded Backbone, the others are loaded as needed."""
    first = models[0]
    task = make_task(splits, cfg.select_metric, cfg.label_col)
    ranking = []
    for i, model in enumerate(models):
        backbone = first if i == 0 else (model if isinstance(model, Backbone) else load_backbone(
            model, image_size=cfg.image_size, max_length=cfg.max_length))
        ranking.append(score_backbone(backbone, splits, runtime.cache, runtime.extraction(backbone.modality), task))
    rank_by_evidence(ranking)
    best = first if ranking[0]["model"] == first.name else load_backbone(
        ranking[0]["model"], image_size=cfg.image_size, max_length=cfg.max_length)
    step = measure_step_seconds(best, splits, cfg.batch(), runtime.device)
    rec = recommend(ranking[0], splits, step, cfg.batch(), cfg.epochs, Budget.parse(budget).total,
                    best.modality)
    ahead = labelling_forecast(best, splits, runtime.cache, runtime.extraction(best.modality), task, cfg.seed)
    rec["forecast"] = {**asdict(ahead), "flattened": ahead.flattened}
    rec["reasons"].append(f"What labelling more buys: {ahead.sentence()}")
    named = BACKBONES.get(rec["model"])
    if named is not None and named.caveat:  # what the backbone is not for (aisfx-cnn: speech)
        rec["reasons"].append(named.caveat)
    return Advice(ranking, rec)


def labelling_forecast(backbone: Backbone, splits: DataSplits, cache: FeatureCache, extraction: Extraction,
                       task: Task, seed: int = 0) -> Forecast:
    """The task's main metric on validation after labelling as many items again as there are training items
    (one doubling), from the probe's learning curve on cached features (headstart.label.forecast)."""
    x_train, x_val = cache.features(backbone, splits.train, extraction), cache.features(backbone, splits.val,
                                                                                       extraction)
    labels = list(splits.train.labels)
    return forecast(task, (x_train, task.targets(labels), strata(task.name, labels)),
                    (x_val, task.targets(list(splits.val.labels))), len(labels), seed)


def rank_by_evidence(ranking: list[dict]) -> None:
    """Sort in place by the mean rank under LogME, H-score and the probe's score (probe breaks ties); a score
    that is None (the H-score of label sets and numbers) takes no part.

    The three can disagree; the mean rank follows the majority, and each score stays in the table.
    """
    keys = {"logme": lambda r: r["logme"], "h_score": lambda r: r["h_score"], "probe": lambda r: r["probe"]["mean"]}
    keys = {name: key for name, key in keys.items() if all(key(row) is not None for row in ranking)}
    for name, key in keys.items():
        for position, row in enumerate(sorted(ranking, key=key, reverse=True), 1):
            row.setdefault("ranks", {})[name] = position
    for row in ranking:
        row["mean_rank"] = sum(row["ranks"].values()) / len(keys)
    ranking.sort(key=lambda r: (r["mean_rank"], -r["probe"]["mean"]))


def score_backbone(backbone: Backbone, splits: DataSplits, cache: FeatureCache, extraction: Extraction,
                   task: Task) -> dict:
    """LogME, H-score (single-label; else None), the CV probe's score and learning-curve slope in ``task``'s
    main metric, on train+val features."""
    start = time.perf_counter()
    feats = np.concatenate([cache.features(backbone, splits.train, extraction),
                            cache.features(backbone, splits.val, extraction)])
    labels = list(splits.train.labels) + list(splits.val.labels)
    targets = task.targets(labels)  # class codes, a label matrix, standardised values
    return {
        "model": backbone.name, "source": backbone.source, "feature_dim": backbone.feature_dim,
        "parameters": sum(p.numel() for p in backbone.module.parameters()),
        "logme": logme(feats, targets, task.name),
        "h_score": h_score(feats, targets) if kind(task.name).one_per_item else None,
        "probe": probe_cv_score(feats, labels, task), "curve": probe_curve_slope(feats, labels, task),
        "seconds": time.perf_counter() - start,
    }


def measure_step_seconds(backbone: Backbone, splits: DataSplits, batch_size: int, device: torch.device,
                         depths: dict[str, int | None] | None = None) -> dict:
    """Seconds per training step, measured on one batch, for each ``name: layer groups trained`` in
    ``depths`` (None: all); by default partial (last 2 groups) and full fine-tuning."""
    pairs = [(x, 0) for x in splits.train.items[:batch_size]]
    inputs, y = backbone.preprocessing.collate(augment=True)(pairs)
    inputs, y = batch_to(inputs, device), y.to(device)
    precision = resolve_precision("auto", device, training=True, depthwise=backbone.depthwise)
    groups = backbone.layer_groups()
    out = {}
    for name, depth in (depths or {"partial": 2, "full": None}).items():
        n = len(groups) if depth is None else min(depth, len(groups))
        width = max(2, len(splits.classes))  # a step costs the same whatever the head learns (none: regression)
        model = Classifier(copy.deepcopy(backbone.module), nn.Linear(backbone.feature_dim, width))
        trainable = {f"backbone.{p}" for g in groups[-n:] for p in g} | {"head.weight", "head.bias"}
        for pname, param in model.named_parameters():
            param.requires_grad_(pname in trainable)
        model.to(device).train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        times = []
        for _ in range(3):  # the first step warms up kernels and allocators
            t0 = time.perf_counter()
            with autocast(device, precision):
                loss = F.cross_entropy(model(inputs).float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out[name] = min(times[1:]) * batch_size / len(pairs)
    return out


def recommend(top: dict, splits: DataSplits, step: dict, batch_size: int, epochs: int,
              budget_s: float | None, modality: str = "image") -> dict:
    """A strategy for the top-ranked backbone, with the reasons stated in numbers.

    ``candidates`` lists what ``auto`` fits beside the probe, best guess first; it keeps the one that
    validates best, so a second candidate guards against a wrong first guess when the budget allows it.
    The probe's score is the task's main metric (``top["probe"]["metric"]``), named so in the reasons;
    contrastive pairs are advised for single-label text only.
    """
    metric = top["probe"].get("metric", "accuracy")
    said = METRIC_NAMES.get(metric, metric)
    count_key, unit, short, per_class = smallest_group(splits)
    probe, slope = top["probe"]["mean"], top["curve"]["slope"]
    steps = math.ceil(len(splits.train) / batch_size) * epochs
    est = {name: seconds * steps * 1.3 for name, seconds in step.items()}  # + validation passes
    est["lp-ft"] = est["full"]  # every group trains (the probe before it costs seconds)
    pairs = STRATEGIES["contrastive"]()  # one pass per text and step, of its default batch
    est["contrastive"] = step["full"] * pairs.steps * pairs.default_batch_size / batch_size
    fits = {name: budget_s is None or t <= budget_s for name, t in est.items()}
    numbers = {count_key: per_class, f"probe_{metric}": probe, "probe_ci95": top["probe"]["ci95"],
               "slope_per_doubling": slope, "estimated_partial_s": est["partial"], "estimated_full_s": est["full"],
               "estimated_contrastive_s": est["contrastive"], "budget_s": budget_s, "logme": top["logme"]}
    h = f"H-score {top['h_score']:.2f} and " if top.get("h_score") is not None else ""
    reasons = [f"{top['model']} ranks first (mean rank {top['mean_rank']:.1f} over LogME {top['logme']:.3f}, "
               f"{h}the probe); its cross-validated linear probe reaches {said} {probe:.3f} "
               f"(95% CI {top['probe']['ci95'][0]:.3f}-{top['probe']['ci95'][1]:.3f})."]
    candidates: list[str] = []
    if probe >= CEILING:
        reasons.append(f"The probe is at the ceiling (>= {CEILING}): fine-tuning could add at most "
                       f"{1 - probe:.3f} {said} for {est['full']:.0f} s of training.")
    elif (per_class < FEW_SHOT and data_modality(modality).texts and kind(splits.task).one_per_item
          and fits["contrastive"]):
        candidates = ["contrastive"]
        reasons.append(f"Only {per_class} {unit} (< {FEW_SHOT}): too few to fine-tune "
                       "on labels, enough for contrastive pairs (SetFit), estimated at "
                       f"{est['contrastive']:.0f} s.")
    elif per_class < FEW_SHOT:
        reasons.append(f"Only {per_class} {unit} (< {FEW_SHOT}): fine-tuning would "
                       "overfit; a regularised head on frozen features is the safer choice.")
    elif not fits["partial"]:
        reasons.append(f"Fine-tuning is estimated at {est['partial']:.0f} s (partial) over the "
                       f"{budget_s:.0f} s budget.")
    elif slope >= STEEP or probe < 0.9:
        first = "lp-ft" if fits["full"] and per_class >= 50 else "partial"
        second = "partial" if first == "lp-ft" else "full"
        candidates = [first] + ([second] if budget_s is None or est[first] + est[second] <= budget_s else [])
        why = (f"The probe's learning curve still rises {slope:+.3f} {said} per doubling of data and it stops at "
               f"{probe:.3f}" if slope >= STEEP else f"The probe stops at {said} {probe:.3f} (below 0.9)")
        reasons.append(f"{why}: the frozen features fall short, so adapting the backbone should pay.")
        reasons.append(f"{first} is estimated at {est[first]:.0f} s "
                       f"({per_class}+ {short}, budget {'none' if budget_s is None else f'{budget_s:.0f} s'})"
                       + (f"; {second} is checked against it on validation." if len(candidates) > 1 else "."))
    else:
        reasons.append(f"The probe is strong ({said} {probe:.3f}) and its learning curve is flat ({slope:+.3f} per "
                       "doubling): more adaptation is unlikely to repay its cost.")
    return {"model": top["model"], "strategy": candidates[0] if candidates else "linear", "candidates": candidates,
            "metric": metric, "reasons": reasons, "numbers": numbers}


def smallest_group(splits: DataSplits) -> tuple[str, str, str, int]:
    """``(numbers key, words, short words, count)``: the training examples of the smallest class, the positives
    of the rarest label (of those present), or the training items of a regression."""
    task = kind(splits.task)
    if not task.has_classes:
        return "training_items", "training items", "training items", len(splits.train)
    if not task.one_per_item:
        counts = Counter(name for names in splits.train.labels for name in names)
        return ("examples_per_label_min", "positive examples of the rarest label", "positives per label",
                min((counts[c] for c in splits.classes if counts[c]), default=0))
    counts = Counter(splits.train.labels)
    return ("examples_per_class_min", "examples in the smallest class", "examples per class",
            min(counts[c] for c in splits.classes))
