"""advise: rank candidate backbones on cached features, then recommend a strategy with its reasons in numbers.

Ranking combines LogME (You et al., ICML 2021), the H-score (Bao et al. 2019) and a cross-validated
linear probe by mean rank, all on frozen features that the cache keeps for later fits. The recommendation weighs examples per
class, the probe's accuracy and how much its learning curve still rises, a fine-tuning time estimated
from a measured training step, and the budget.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from headstart.backbones import Backbone, batch_to, load_backbone
from headstart.budget import Budget
from headstart.config import FitConfig
from headstart.data import DataSplits
from headstart.devices import autocast, resolve_precision
from headstart.features import Extraction, FeatureCache
from headstart.heads import Classifier
from headstart.pipeline import config_for, prepare
from headstart.runtime import Runtime
from headstart.strategies import STRATEGIES
from headstart.transferability import h_score, learning_curve_slope, logme, probe_cv_accuracy

CEILING = 0.97  # probe accuracy above which fine-tuning has little left to add
FEW_SHOT = 10  # examples per class below which fine-tuning overfits more than it adapts
STEEP = 0.02  # accuracy gained per doubling of data above which frozen features are still short


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
    """Rank ``models`` on ``data`` by LogME, H-score and a CV probe (mean rank); recommend a model and strategy."""
    cfg = config_for(models[0], "linear", options)
    splits, first = prepare(data, models[0], cfg, val, test)
    runtime = Runtime.from_config(cfg, progress)
    return advise_prepared(splits, [first, *models[1:]], cfg, runtime, budget)


def advise_prepared(splits: DataSplits, models: Sequence[str | Backbone], cfg: FitConfig, runtime: Runtime,
                    budget: str | float | None = None) -> Advice:
    """``advise`` on loaded data; ``models[0]`` is a loaded Backbone, the others are loaded as needed."""
    first = models[0]
    ranking = []
    for i, model in enumerate(models):
        backbone = first if i == 0 else (model if isinstance(model, Backbone) else load_backbone(
            model, image_size=cfg.image_size, max_length=cfg.max_length))
        ranking.append(score_backbone(backbone, splits, runtime.cache, runtime.extraction(backbone.modality)))
    rank_by_evidence(ranking)
    best = first if ranking[0]["model"] == first.name else load_backbone(
        ranking[0]["model"], image_size=cfg.image_size, max_length=cfg.max_length)
    step = measure_step_seconds(best, splits, cfg.batch_size, runtime.device)
    rec = recommend(ranking[0], splits, step, cfg.batch_size, cfg.epochs, Budget.parse(budget).total,
                    best.modality)
    return Advice(ranking, rec)


def rank_by_evidence(ranking: list[dict]) -> None:
    """Sort in place by the mean rank under LogME, H-score and probe accuracy (probe breaks ties).

    The three can disagree; the mean rank follows the majority, and each score stays in the table.
    """
    keys = {"logme": lambda r: r["logme"], "h_score": lambda r: r["h_score"], "probe": lambda r: r["probe"]["mean"]}
    for name, key in keys.items():
        for position, row in enumerate(sorted(ranking, key=key, reverse=True), 1):
            row.setdefault("ranks", {})[name] = position
    for row in ranking:
        row["mean_rank"] = sum(row["ranks"].values()) / len(keys)
    ranking.sort(key=lambda r: (r["mean_rank"], -r["probe"]["mean"]))


def score_backbone(backbone: Backbone, splits: DataSplits, cache: FeatureCache, extraction: Extraction) -> dict:
    """LogME, H-score, CV probe accuracy and learning-curve slope on train+val features."""
    start = time.perf_counter()
    feats = np.concatenate([cache.features(backbone, splits.train, extraction),
                            cache.features(backbone, splits.val, extraction)])
    labels = np.array(list(splits.train.labels) + list(splits.val.labels))
    return {
        "model": backbone.name, "source": backbone.source, "feature_dim": backbone.feature_dim,
        "parameters": sum(p.numel() for p in backbone.module.parameters()),
        "logme": logme(feats, labels), "h_score": h_score(feats, labels),
        "probe": probe_cv_accuracy(feats, labels), "curve": learning_curve_slope(feats, labels),
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
        model = Classifier(copy.deepcopy(backbone.module), nn.Linear(backbone.feature_dim, len(splits.classes)))
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
    """
    counts = [splits.train.labels.count(c) for c in splits.classes]
    per_class, probe, slope = min(counts), top["probe"]["mean"], top["curve"]["slope"]
    steps = math.ceil(len(splits.train) / batch_size) * epochs
    est = {name: seconds * steps * 1.3 for name, seconds in step.items()}  # + validation passes
    pairs = STRATEGIES["contrastive"]()
    est["contrastive"] = step["full"] * pairs.steps * pairs.batch_size / batch_size  # one pass per text and step
    fits = {name: budget_s is None or t <= budget_s for name, t in est.items()}
    numbers = {"examples_per_class_min": per_class, "probe_accuracy": probe, "probe_ci95": top["probe"]["ci95"],
               "slope_per_doubling": slope, "estimated_partial_s": est["partial"], "estimated_full_s": est["full"],
               "estimated_contrastive_s": est["contrastive"], "budget_s": budget_s, "logme": top["logme"]}
    reasons = [f"{top['model']} ranks first (mean rank {top['mean_rank']:.1f} over LogME {top['logme']:.3f}, "
               f"H-score {top['h_score']:.2f} and the probe); its cross-validated linear probe reaches "
               f"{probe:.3f} (95% CI {top['probe']['ci95'][0]:.3f}-{top['probe']['ci95'][1]:.3f})."]
    candidates: list[str] = []
    if probe >= CEILING:
        reasons.append(f"The probe is at the ceiling (>= {CEILING}): fine-tuning could add at most "
                       f"{1 - probe:.3f} accuracy for {est['full']:.0f} s of training.")
    elif per_class < FEW_SHOT and modality == "text" and fits["contrastive"]:
        candidates = ["contrastive"]
        reasons.append(f"Only {per_class} examples in the smallest class (< {FEW_SHOT}): too few to fine-tune "
                       "on labels, enough for contrastive pairs (SetFit), estimated at "
                       f"{est['contrastive']:.0f} s.")
    elif per_class < FEW_SHOT:
        reasons.append(f"Only {per_class} examples in the smallest class (< {FEW_SHOT}): fine-tuning would "
                       "overfit; a regularised head on frozen features is the safer choice.")
    elif not fits["partial"]:
        reasons.append(f"Fine-tuning is estimated at {est['partial']:.0f} s (partial) over the "
                       f"{budget_s:.0f} s budget.")
    elif slope >= STEEP or probe < 0.9:
        first = "lp-ft" if fits["full"] and per_class >= 50 else "partial"
        second = "partial" if first == "lp-ft" else "full"
        candidates = [first] + ([second] if budget_s is None or est[first] + est["full"] <= budget_s else [])
        reasons.append(f"The probe's learning curve still rises {slope:+.3f} per doubling of data and it stops "
                       f"at {probe:.3f}: the frozen features fall short, so adapting the backbone should pay.")
        reasons.append(f"{first} is estimated at {est['full' if first == 'lp-ft' else 'partial']:.0f} s "
                       f"({per_class}+ examples per class, budget {'none' if budget_s is None else f'{budget_s:.0f} s'})"
                       + (f"; {second} is checked against it on validation." if len(candidates) > 1 else "."))
    else:
        reasons.append(f"The probe is strong ({probe:.3f}) and its learning curve is flat ({slope:+.3f} per "
                       "doubling): more adaptation is unlikely to repay its cost.")
    return {"model": top["model"], "strategy": candidates[0] if candidates else "linear", "candidates": candidates,
            "reasons": reasons, "numbers": numbers}
