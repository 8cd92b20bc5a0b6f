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
import time
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from headstart.training import distributed
from headstart.backbones import Backbone
from headstart.backbones.base import batch_to
from headstart.data import DataSplits
from headstart.data.dataset import modality, modality_article
from headstart.training.devices import autocast
from headstart.training.engine import check_finite_loss
from headstart.core.errors import ConfigError
from headstart.features.cache import Extraction, extract
from headstart.training.heads import Classifier
from headstart.strategies.base import FitContext, StrategyResult
from headstart.strategies.declared import CONTRASTIVE_LR as DEFAULT_LR
from headstart.strategies.declared import ContrastiveOptions
from headstart.tasks.kinds import kind


@dataclass(frozen=True)
class Contrastive(ContrastiveOptions):
    """SetFit: contrastive fine-tuning of a text encoder on sentence pairs, then a probe with ``C`` on validation."""

    name: ClassVar[str] = "contrastive"

    def __post_init__(self):
        super().__post_init__()
        problems = []
        for option in ("steps", "batch_size"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{option}={value!r}: must be a whole number of at least 1")
        if isinstance(self.batch_size, int) and self.batch_size == 1:
            problems.append("batch_size=1: a pair needs two texts per step; use 16 (SetFit's) or more")
        if not 0 <= self.warmup < 1:
            problems.append(f"warmup={self.warmup!r}: a fraction of the steps, in [0, 1)")
        if problems:
            raise ConfigError("Invalid contrastive options: " + "; ".join(problems) + ".")

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
        losses, stopped = self._train(module, backbone, splits.train.items, targets, ctx)
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
        tail = max(1, len(losses) // 10)
        per_step = pair_count(min(self.batch_size, len(targets)))
        info = {"C": probe.C, "steps": len(losses), "pairs": len(losses) * per_step,
                "lr": self.lr or DEFAULT_LR, "batch_size": self.batch_size,
                "loss": "CosineSimilarityLoss", "stopped": stopped, "train_precision": training_precision(ctx),
                "first_loss": float(np.mean(losses[:tail])) if losses else None,
                "last_loss": float(np.mean(losses[-tail:])) if losses else None,
                "contrastive_seconds": time.perf_counter() - start}
        count = sum(p.numel() for p in model.parameters())
        return StrategyResult(model, count, probe.candidates, info)

    def _train(self, module: nn.Module, backbone: Backbone, texts: tuple, targets: np.ndarray, ctx: FitContext
               ) -> tuple[list[float], str | None]:
        """``steps`` steps on batches of distinct texts, every pair among them scored; per-step losses, and
        "budget" when the deadline stopped it."""
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

        loss_fn = CosineSimilarityLoss(module)  # used on embeddings: the module is headstart's own encoder
        module.to(ctx.device).train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=self.lr or DEFAULT_LR, weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(self.steps, self.warmup))
        collate, precision = backbone.preprocessing.collate(), training_precision(ctx)
        rng = np.random.default_rng(ctx.settings.seed)
        losses: list[float] = []
        for step in range(1, self.steps + 1):
            rows = rng.choice(len(texts), size=min(self.batch_size, len(texts)), replace=False)
            batch, _ = collate([(texts[i], 0) for i in rows])
            with autocast(ctx.device, precision):
                embeddings = module(batch_to(batch, ctx.device)).float()
            loss = pair_loss(loss_fn, embeddings, torch.from_numpy(targets[rows]).to(ctx.device))
            losses.append(loss.item())
            check_finite_loss(losses[-1], f"contrastive step {step}/{self.steps}", optimizer)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            deadline = ctx.settings.deadline
            if deadline is not None and distributed.any_rank(time.perf_counter() > deadline):
                return losses, "budget"
        return losses, None


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


def pair_count(texts: int) -> int:
    """Pairs among ``texts`` distinct texts."""
    return texts * (texts - 1) // 2


def warmup_linear(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate multiplier: linear warm-up over ``warmup`` of the steps, then linear decay to zero."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor
