"""What every fine-tuning strategy shares: copy the backbone, freeze all but the last groups, train."""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from headstart.backbones import Backbone
from headstart.training.boundary import ActivationCache, Split, boundary_feed, split_at, store_activations
from headstart.data import DataSplits
from headstart.data.dataset import modality
from headstart.training.engine import Feed, TrainSettings, bn_policy, freeze, param_groups, text_lengths, train
from headstart.core.errors import ConfigError
from headstart.training.heads import Classifier
from headstart.strategies.base import FitContext, StrategyResult
from headstart.strategies.declared import FINETUNE_LR as DEFAULT_LR
from headstart.strategies.declared import FRESH_HEAD_LR

TINY_VAL = 100  # fewer validation items than this: select epochs on validation loss
# Batches shrink (to MIN_BATCH at least) so that an epoch has STEPS_PER_EPOCH steps: 40 texts at batch 32 were
# 2 steps an epoch, and partial/full MiniLM on 8-shot BBC News reached 0.69/0.79 test accuracy against 0.90/0.91
# at batch 8 (bench/RESULTS.md, recipe quality).
MIN_BATCH = 8
STEPS_PER_EPOCH = 8


def finetune(backbone: Backbone, splits: DataSplits, ctx: FitContext, *, unfreeze: int | None,
             lr: float | None, head_lr: float | None, lr_decay: float, head: nn.Linear | None = None) -> StrategyResult:
    """Train the last ``unfreeze`` layer groups (all when None) and a head, on a copy of the backbone.

    ``head`` starts from a fitted head (LP-FT): the model is scored before the first step and kept if no
    epoch beats it. BatchNorm statistics stay frozen on small data (``engine.bn_policy``); below
    ``TINY_VAL`` validation items epochs are selected on validation loss, which is less noisy there.
    """
    groups = backbone.layer_groups()
    n = len(groups) if unfreeze is None else unfreeze
    if not 0 < n <= len(groups):
        raise ConfigError(f"unfreeze={unfreeze}: {backbone.name} has {len(groups)} layer groups; "
                          f"choose 1 to {len(groups)}, or the 'full' strategy for all of them.")
    fitted_head = head is not None
    top = lr if lr is not None else DEFAULT_LR[backbone.modality]
    if head_lr is None:  # a fresh head learns fast; a fitted one moves at the backbone's pace
        head_lr = FRESH_HEAD_LR if head is None else top
    if head is None:
        with torch.random.fork_rng(devices=[]):  # drawn from the fit's seed, not the global generator's state
            torch.manual_seed(ctx.settings.seed)
            head = ctx.task.fresh_head(backbone.feature_dim, ctx.targets["train"])
    model = Classifier(copy.deepcopy(backbone.module), copy.deepcopy(head))
    chosen = groups[-n:]
    trainable = {f"backbone.{name}" for group in chosen for name in group}
    trainable |= {name for name, _ in model.named_parameters() if name.startswith("head.")}
    count = freeze(model, trainable)
    s = ctx.settings
    batch = min(s.batch_size, max(MIN_BATCH, len(splits.train) // STEPS_PER_EPOCH))  # enough steps on tiny data
    frozen_bn = bn_policy(len(splits.train), batch) if s.frozen_bn is None else s.frozen_bn
    settings = dataclasses.replace(s, batch_size=batch, lr=top, head_lr=head_lr, lr_decay=lr_decay,
                                   frozen_bn=frozen_bn, select_on_loss=len(splits.val) < TINY_VAL,
                                   evaluate_start=fitted_head)
    optimizer_groups = param_groups(model, chosen, "backbone.", settings)
    cached = _can_cache(backbone, ctx.cache_boundary, settings.augment, ctx.device)
    split = split_at(backbone, model.backbone, n) if cached else None
    with ActivationCache(ctx.cache.root) as scratch:
        feed = _boundary_feed(split, backbone, splits, ctx, settings, scratch) if split else None
        trained = Classifier(split.top, model.head) if feed else model  # the top shares the model's parameters
        outcome = train(trained, backbone, splits.train, splits.val, ctx.targets, optimizer_groups, settings,
                        ctx.device, ctx.train_precision, ctx.progress, feed=feed)
    model.cpu()
    factor = outcome.lr_range["factor"] if outcome.lr_range else 1.0
    info = {"unfrozen_groups": n, "layer_groups": len(groups), "best_epoch": outcome.best_epoch,
            "boundary_cached": feed is not None,
            "stopped_early": outcome.stopped_early, "stopped": "budget" if outcome.out_of_time else None,
            "lr": top * factor, "head_lr": settings.head_lr * factor, "lr_decay": lr_decay, "batch_size": batch,
            "augment": settings.augment,
            "bn": ("frozen" if frozen_bn else "train") if _has_batchnorm(backbone.module) else None,
            "selected_on": "val_loss" if settings.select_on_loss else f"val_{settings.select_metric}",
            "balance": settings.balance}
    if outcome.lr_range:
        info["lr_range"] = outcome.lr_range
    return StrategyResult(model, count, outcome.history, info)


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _can_cache(backbone: Backbone, cache_boundary: bool | None, augment: bool, device: torch.device) -> bool:
    """Frozen groups give the same output every epoch only when inputs are not augmented. By default
    (``cache_boundary`` None) only on CPUs: on a GPU, the frozen forward of the backbones we measured cost
    less than reading the cache back (bench/device_check.py)."""
    wanted = device.type == "cpu" if cache_boundary is None else cache_boundary
    return wanted and (modality(backbone.modality).texts or not augment)  # texts are never augmented


def _boundary_feed(split: Split, backbone: Backbone, splits: DataSplits, ctx: FitContext, s: TrainSettings,
                   scratch: ActivationCache) -> Feed | None:
    """A feed of boundary activations of the training and validation items, computed once."""
    stores = []
    for name, data in (("train", splits.train), ("val", splits.val)):
        store = store_activations(split, backbone, data, scratch.sub(name), ctx.device, ctx.train_precision,
                                  ctx.extraction.batch_size, ctx.progress)
        if store is None:
            return None
        stores.append(store)
    return boundary_feed(*stores, ctx.targets["train"], s, ctx.device, ctx.train_precision,
                         text_lengths(splits.train))
