"""Contrastive few-shot text classification in the SetFit manner, then a linear probe on the new embeddings.

Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts" (SetFit): sentence pairs drawn from the
labelled examples (same class: target cosine 1, different classes: target cosine 0) fine-tune the sentence
encoder with sentence-transformers' CosineSimilarityLoss; a logistic-regression head is then fitted on the
fine-tuned embeddings (here headstart's probe, with ``C`` chosen on validation).

SetFit draws 20 positive and 20 negative pairs per example and embeds both texts of every pair: at 8 examples
per class of 5 classes that is 100 steps and about 2,700 encoder passes (forward and backward), a few minutes on
a CPU. Here each step embeds ``batch_size`` distinct training texts once and scores all pairs among them (120 for
16 texts), positive and negative pairs weighted equally as SetFit balances them: on few-shot BBC News it matched
or beat SetFit's sampling with a third of the passes (bench/NOTES.md), and its cost does not grow with the data.
Learning rate 2e-5 with 10% linear warm-up then linear decay, batch 16, as SetFit.

The encoder trained is a copy of the backbone's own module (headstart's mean-pooled transformers encoder,
the same computation as sentence-transformers' ``Transformer`` + mean ``Pooling``), so the result is the
usual ``Classifier(backbone, linear head)``: it predicts, saves and exports like any other run.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from headstart.training import distributed
from headstart.backbones import Backbone
from headstart.data import DataSplits
from headstart.data.dataset import modality, modality_article
from headstart.training.engine import Feed, TrainOutcome, predict_logits, train
from headstart.core.errors import ConfigError
from headstart.features.cache import Extraction, extract
from headstart.training.heads import Classifier
from headstart.strategies.base import FitContext, StrategyResult
from headstart.strategies.declared import CONTRASTIVE_LR as DEFAULT_LR
from headstart.strategies.declared import ContrastiveOptions
from headstart.tasks.kinds import kind

EPOCHS = 10  # the steps are trained in this many epochs, each validated (early stopping, the best one kept)
VAL_TEXTS = 256  # validation texts whose pairs score an epoch (all pairs: 32,640 at most)


@dataclass(frozen=True)
class Contrastive(ContrastiveOptions):
    """SetFit: contrastive fine-tuning of a text encoder on sentence pairs, then a probe with ``C`` on validation."""

    name: ClassVar[str] = "contrastive"

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"Invalid contrastive options: steps={self.steps!r}: must be a whole number of at "
                              "least 1.")

    def fit(self, backbone: Backbone, splits: DataSplits, ctx: FitContext) -> StrategyResult:
        """Fine-tune a copy of the encoder on pairs of training texts, then fit the head on its embeddings."""
        if not modality(backbone.modality).texts:
            raise ConfigError(f"The contrastive strategy is for text models; {backbone.name!r} is "
                              f"{modality_article(backbone.modality)} model. Use linear, partial, full, lp-ft or lora "
                              "for it.")
        if not kind(ctx.task.name).one_per_item:
            raise ConfigError(f"The contrastive strategy learns from pairs of the same and of different classes: "
                              f"single-label data only, and this task is {ctx.task.name}. Use linear, partial, "
                              "full, lp-ft or lora.")
        if ctx.settings.batch_size < 2:
            raise ConfigError(f"--batch-size {ctx.settings.batch_size} (batch_size={ctx.settings.batch_size}): the "
                              "contrastive strategy needs two texts per step to make a pair; use 16 (SetFit's, its "
                              "default) or more.")
        targets = ctx.targets["train"]
        if len(np.unique(targets)) < 2:
            raise ConfigError("The contrastive strategy needs training examples of at least two classes "
                              "(it learns from pairs of different classes); use linear instead.")
        devices = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # dropout and head drawn from the fit's seed, not global state
            torch.manual_seed(ctx.settings.seed)
            return self._fit_seeded(backbone, splits, ctx)

    def _fit_seeded(self, backbone: Backbone, splits: DataSplits, ctx: FitContext) -> StrategyResult:
        """The fit itself, under the seeded generator that ``fit`` set up."""
        start = time.perf_counter()
        targets = ctx.targets["train"]
        module = copy.deepcopy(backbone.module).requires_grad_(True)
        outcome, counted = self._train(module, backbone, splits, ctx)
        module.eval()
        tuned = dataclasses.replace(backbone, module=module)
        run = Extraction(ctx.device, ctx.train_precision, ctx.extraction.batch_size, ctx.extraction.num_workers,
                         ctx.progress)
        x_train, x_val = extract(tuned, splits.train, run), extract(tuned, splits.val, run)
        s = ctx.settings  # the head takes class weights as the linear strategy's does
        weights = np.asarray(s.class_weights) if s.balance != "none" and s.class_weights else None
        probe = ctx.task.probe(x_train, targets, x_val, ctx.targets["val"], self.cs, s.seed, weights)
        module.cpu()
        model = Classifier(module, probe.head)
        losses = [row["train_loss"] for row in outcome.history if "train_loss" in row]
        tail = max(1, len(losses) // 10)
        info = {"C": probe.C, "steps": counted.steps, "pairs": counted.pairs, "epochs": len(losses),
                "best_epoch": outcome.best_epoch, "stopped_early": outcome.stopped_early,
                "resumed_from": outcome.resumed_from, "lr": self.lr or DEFAULT_LR, "batch_size": s.batch_size,
                "loss": "CosineSimilarityLoss", "stopped": "budget" if outcome.out_of_time else None,
                "train_precision": training_precision(ctx),
                "first_loss": float(np.mean(losses[:tail])) if losses else None,
                "last_loss": float(np.mean(losses[-tail:])) if losses else None,
                "contrastive_seconds": time.perf_counter() - start}
        count = sum(p.numel() for p in model.parameters())
        return StrategyResult(model, count, probe.candidates, {**info, "train_history": outcome.history})

    def _train(self, module: nn.Module, backbone: Backbone, splits: DataSplits, ctx: FitContext
               ) -> tuple[TrainOutcome, "PairCount"]:
        """About ``steps`` steps through the training loop (headstart.training.engine: checkpoints and resume,
        the deadline, early stopping and the best epoch on the validation pairs' loss, tracking, the user's
        callbacks). An epoch is a tenth of the steps: the training texts, repeated as needed, in shuffled
        batches of distinct texts; every pair in a batch is scored."""
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

        s = ctx.settings
        texts, targets = splits.train.items, ctx.targets["train"]
        per_epoch = max(1, math.ceil(self.steps / EPOCHS))  # steps
        repeats = max(1, math.ceil(per_epoch * s.batch_size / len(texts)))
        batches = math.ceil(len(texts) * repeats / s.batch_size)
        loop = dataclasses.replace(s, epochs=max(1, math.ceil(self.steps / batches)), decay="linear",
                                   select_on_loss=True, evaluate_start=False, balance="none", augment=False,
                                   find_lr=False, lr=self.lr or DEFAULT_LR, weight_decay=0.01)
        counted = PairCount(CosineSimilarityLoss(module))  # used on embeddings: the module is headstart's encoder
        precision = training_precision(ctx)
        val = splits.val.subset(np.random.default_rng(s.seed).permutation(len(splits.val))[:VAL_TEXTS].tolist())
        feed = Feed(pairs=list(zip(texts, targets)) * repeats, collate=backbone.preprocessing.collate(),
                    val_logits=lambda model: predict_logits(model, backbone, val, ctx.device, precision,
                                                            2 * s.batch_size),
                    loss=counted, scores=counted.scores)
        groups = [{"params": list(module.parameters()), "lr": loop.lr, "weight_decay": 0.01, "name": "encoder"}]
        val_targets = ctx.targets["val"][np.random.default_rng(s.seed).permutation(len(splits.val))[:VAL_TEXTS]]
        outcome = train(module, backbone, splits.train, val, {"train": targets, "val": val_targets}, groups, loop,
                        ctx.device, precision, ctx.progress, feed)
        items = len(texts) * repeats  # the epochs a checkpoint held were not counted here
        counted.steps += outcome.resumed_from * batches
        counted.pairs += outcome.resumed_from * sum(pair_count(min(s.batch_size, items - first))
                                                    for first in range(0, items, s.batch_size))
        return outcome, counted


def training_precision(ctx: FitContext) -> str:
    """The fit's training precision, except fp32 on CPUs without AMX: there bf16 autocast trained MiniLM-L6
    1.55x slower than fp32 at the same accuracy (AVX-512 bf16 CPU, bench/contrastive_check.py)."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "fp32" if ctx.device.type == "cpu" and not amx else ctx.train_precision


def pair_loss(loss_fn: nn.Module, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` (CosineSimilarityLoss) over every pair of rows, target 1 for the same label and 0 otherwise,
    the mean over positive pairs and the mean over negative ones weighted equally (SetFit samples them 1:1)."""
    first, second = torch.triu_indices(len(labels), len(labels), 1, device=labels.device)
    similar = labels[first] == labels[second]
    parts = [loss_fn.compute_loss_from_embeddings([embeddings[first[kind]], embeddings[second[kind]]],
                                                  similar[kind].float())
             for kind in (similar, ~similar) if kind.any()]
    return torch.stack(parts).mean()


class PairCount:
    """The contrastive loss of a batch for the training loop (``Feed.loss``), counting steps and pairs, and the
    validation row (``Feed.scores``): the same loss over every pair of the validation texts."""

    def __init__(self, loss_fn: nn.Module):
        self.loss_fn, self.steps, self.pairs = loss_fn, 0, 0

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0,
                 weight: torch.Tensor | None = None) -> distributed.BatchLoss:
        self.steps += 1
        self.pairs += pair_count(len(labels))
        loss = pair_loss(self.loss_fn, embeddings, labels) if len(labels) > 1 else embeddings.sum() * 0.0
        return distributed.BatchLoss(loss, loss.detach(), len(labels), len(labels))

    def scores(self, embeddings: np.ndarray, labels: np.ndarray) -> dict:
        with torch.no_grad():
            loss = pair_loss(self.loss_fn, torch.from_numpy(embeddings).float(), torch.as_tensor(labels)) \
                if len(labels) > 1 else torch.tensor(0.0)
        return {"val_loss": float(loss)}


def pair_count(texts: int) -> int:
    """Pairs among ``texts`` distinct texts."""
    return texts * (texts - 1) // 2


