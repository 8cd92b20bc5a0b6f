"""The one training loop for fine-tuning, and batched inference.

AdamW with layer-wise learning rates as optimizer parameter groups, linear warm-up then cosine decay,
bf16 autocast where it pays, early stopping on validation accuracy and the best epoch restored at the end.
A loss or validation output that is not finite (a learning rate far too high) stops the fit with an error
(``diverged``): a diverged model is never kept, so it is never saved as a working run.
Frozen layer groups are frozen completely: no gradients, and their modules (BatchNorm, dropout) stay in
eval mode so weights and running statistics do not move.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from headstart.training import distributed
from headstart.backbones import Backbone, batch_to
from headstart.training.checkpoints import (load_checkpoint, load_optimizer, load_scheduler, optimizer_tensors,
                                   rng_state, save_checkpoint, scheduler_state, set_rng_state)
from headstart.data import Dataset
from headstart.data.dataset import modality
from headstart.training.devices import autocast
from headstart.core.errors import Diverged, RunError
from headstart.training.lr_range import lr_range_test

if TYPE_CHECKING:
    from headstart.core.config import FitConfig
    from headstart.tasks import Task
from headstart.core.metrics import selection_score
from headstart.core.progress import epoch_line, progress_task, say, spinner

BN_TRAIN_ITEMS = 5000  # below this many training items (or BN_BATCH per batch) BatchNorm statistics stay frozen
BN_BATCH = 16


@dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters of one fine-tuning run."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4  # learning rate of the top unfrozen layer group
    head_lr: float = 1e-3
    lr_decay: float = 0.7  # each group further from the head gets lr * lr_decay ** depth
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of all steps spent warming up
    patience: int = 3  # epochs without validation improvement before stopping
    augment: bool = True
    hflip: bool = True
    grad_clip: float = 1.0
    num_workers: int = 0
    seed: int = 0
    l2sp: float = 0.0  # L2-SP weight: pulls trained backbone parameters to their start (replaces their weight decay)
    deadline: float | None = None  # time.perf_counter() value: stop after the batch that passes it
    checkpoint: str | None = None  # folder: state saved after every epoch, and resumed from when it holds one
    frozen_bn: bool | None = None  # BatchNorm statistics stay at their pretrained values; None: bn_policy
    label_smoothing: float = 0.0
    select_on_loss: bool = False  # tiny validation sets: select and stop on validation loss, not accuracy
    evaluate_start: bool = False  # score the model before the first step (epoch 0); it can be the one kept
    find_lr: bool = False  # a learning-rate range test scales every group's rate before training (lr_range)
    on_epoch: Callable[[dict], None] | None = None  # given each epoch's history row (e.g. experiment trackers)
    balance: str = "none"  # none | weights (class-weighted loss) | sampler (class-balanced batches): headstart.training.balance
    class_weights: tuple[float, ...] | None = None  # per class, inverse frequency: the loss's or the sampler's
    select_metric: str = "accuracy"  # what selects the epoch kept and stops early (metrics.TASK_METRICS)
    task: Task | None = None  # the loss and the validation scores (headstart.tasks); None: single-label
    decay: str = "cosine"  # the learning rate after warm-up: cosine | linear (to zero)
    callbacks: tuple[Callback, ...] = ()  # the user's (``headstart.fit(..., callbacks=[...])``), after the built-ins

    @classmethod
    def from_config(cls, cfg: FitConfig, num_workers: int | None = None, deadline: float | None = None,
                    checkpoint: str | None = None, on_epoch: Callable[[dict], None] | None = None,
                    callbacks: Sequence[Callback] = ()) -> "TrainSettings":
        """The fine-tuning loop's settings from a fit's options; ``num_workers`` (default: as configured, else 0),
        ``deadline``, ``checkpoint``, ``on_epoch`` and the user's ``callbacks`` come from the runtime."""
        return cls(
            epochs=cfg.epochs, batch_size=cfg.batch(), patience=cfg.patience, augment=cfg.augment,
            hflip=cfg.hflip, weight_decay=cfg.weight_decay, warmup=cfg.warmup, l2sp=cfg.l2sp,
            label_smoothing=cfg.label_smoothing, find_lr=cfg.find_lr, select_metric=cfg.select_metric,
            frozen_bn={"auto": None, "frozen": True, "train": False}[cfg.bn],
            num_workers=cfg.num_workers or 0 if num_workers is None else num_workers, seed=cfg.seed,
            deadline=deadline, checkpoint=checkpoint, on_epoch=on_epoch, callbacks=tuple(callbacks),
        )


@dataclass
class TrainOutcome:
    """Per-epoch history, the best epoch (1-based), and whether early stopping ended the run."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    out_of_time: bool = False  # the deadline ended training before the last epoch
    resumed_from: int = 0  # the epoch a checkpoint held when training resumed from it (0: a fresh start)
    lr_range: dict | None = None  # the range test's curve, suggestion and the factor applied to every group


def diverged(what: str) -> Diverged:
    """The error of a fit whose training stopped being finite (``what`` happened): nothing of it is saved."""
    return Diverged(f"Training diverged: {what}. The fit stopped, and nothing was saved as a run. Lower the "
                    "learning rates (--lr, --head-lr; lr=, head_lr=), or let --find-lr pick them, or use "
                    "--strategy linear; for a regression, check the targets for extreme values.")


def check_finite_loss(loss: float, where: str, optimizer: torch.optim.Optimizer) -> None:
    """``diverged``, on every rank, when the training ``loss`` of any rank at ``where`` is not finite."""
    if distributed.any_rank(not math.isfinite(loss)):
        rates = sorted({g.get("initial_lr", g["lr"]) for g in optimizer.param_groups}, reverse=True)
        raise diverged(f"the training loss was no longer finite (nan or inf) at {where}, with learning rates of "
                       f"{', '.join(f'{r:g}' for r in rates)}")


def freeze(model: nn.Module, trainable: set[str]) -> int:
    """Make exactly the parameters named in ``trainable`` require gradients; returns their count."""
    count = 0
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
        count += param.numel() if name in trainable else 0
    return count


def set_train_mode(model: nn.Module, frozen_bn: bool = False) -> None:
    """Train mode for modules that learn; eval mode for frozen ones (BatchNorm stats and dropout off).

    With ``frozen_bn`` every BatchNorm layer normalises with its running statistics, which then stay as they
    are; its scale and shift still train when their group does.
    """
    model.train()
    if frozen_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    has_params = {name: any(True for _ in module.parameters()) for name, module in model.named_modules()}
    trainable_below = {}
    for name, module in reversed(list(model.named_modules())):
        own = any(p.requires_grad for p in module.parameters(recurse=False))
        trainable_below[name] = own or any(
            trainable_below[f"{name}.{child}" if name else child] for child, _ in module.named_children()
        )
    for name, module in model.named_modules():
        if trainable_below[name]:
            continue
        parent = name.rpartition(".")[0]
        while parent and not has_params[parent]:  # parameter-free containers (LoRA's dropouts) defer upwards
            parent = parent.rpartition(".")[0]
        has_own_params = any(True for _ in module.parameters(recurse=False))
        if has_own_params or not trainable_below.get(parent, True):
            module.eval()


def bn_policy(train_items: int, batch_size: int) -> bool:
    """Whether fine-tuning keeps BatchNorm statistics frozen: yes on small data or small batches.

    Running statistics move with momentum 0.1 per step: over the few hundred steps of a small data set they
    end as a mix of the pretrained and the new statistics, while batch statistics of small batches are noisy.
    """
    return train_items < BN_TRAIN_ITEMS or batch_size < BN_BATCH


def param_groups(model: nn.Module, groups: Sequence[Sequence[str]], prefix: str, s: TrainSettings) -> list[dict]:
    """Optimizer groups: the head at ``head_lr``; backbone groups at ``lr * lr_decay ** depth``.

    Biases and normalisation weights (1-D tensors) get no weight decay; with L2-SP (``s.l2sp > 0``) no
    backbone parameter does, since the L2-SP penalty in ``train`` takes its place.
    """
    named = dict(model.named_parameters())
    out = []

    def add(names: list[str], lr: float, label: str, weight_decay: float) -> None:
        params = [named[n] for n in names if named[n].requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        for ps, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if ps:
                out.append({"params": ps, "lr": lr, "weight_decay": wd, "name": label})

    add([n for n in named if n.startswith("head.")], s.head_lr, "head", s.weight_decay)
    backbone_decay = 0.0 if s.l2sp > 0 else s.weight_decay
    for depth, names in enumerate(reversed(groups)):
        add([prefix + n for n in names], s.lr * s.lr_decay ** depth, f"group-{len(groups) - depth - 1}",
            backbone_decay)
    return out


def warmup_cosine(total_steps: int, warmup: float, decay: str = "cosine") -> Callable[[int], float]:
    """Learning-rate multiplier: linear warm-up over ``warmup`` of the steps, then ``decay`` to zero: cosine, or
    linear (SetFit's, for contrastive)."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress

    return factor


def l2sp_penalty(anchored: Sequence[tuple[torch.Tensor, torch.Tensor]], weight: float) -> torch.Tensor:
    """L2-SP (Li et al., ICML 2018): ``weight / 2 * sum ||theta - theta0||^2`` over ``(theta, theta0)`` pairs."""
    total = sum(((p.float() - p0) ** 2).sum() for p, p0 in anchored)
    return weight / 2 * torch.as_tensor(total)


@dataclass
class Feed:
    """What the loop trains on: the ``(input, target)`` pairs batches are drawn from, the collate_fn that
    makes a batch of them, and the validation logits of the model being trained."""

    pairs: Sequence
    collate: Callable
    val_logits: Callable[[nn.Module], np.ndarray]
    channels_last: bool = False
    num_workers: int = 0
    lengths: Sequence[int] | None = None  # texts: batches then group items of similar length
    loss: Callable | None = None  # (outputs, targets, label_smoothing, weight) -> BatchLoss: in place of the task's
    scores: Callable[[np.ndarray, np.ndarray], dict] | None = None  # the validation row, in place of the task's


def item_feed(backbone: Backbone, train_set: Dataset, val_set: Dataset, train_targets: Sequence[int],
              s: TrainSettings, device: torch.device, precision: str) -> Feed:
    """The usual feed: items are preprocessed (and augmented) every epoch and go through the whole model."""
    return Feed(
        pairs=list(zip(train_set.items, train_targets)),
        collate=backbone.preprocessing.collate(s.augment, s.hflip),
        val_logits=lambda model: distributed.sharded_rows(  # each rank predicts its share (one: all)
            lambda data: predict_logits(model, backbone, data, device, precision, s.batch_size * 2, s.num_workers),
            val_set),
        channels_last=backbone.channels_last, num_workers=s.num_workers, lengths=text_lengths(train_set))


def text_lengths(data: Dataset) -> list[int] | None:
    """Characters per text (they order texts as token counts do, with no tokenizer pass); None for images."""
    return [len(text) for text in data.items] if modality(data.modality).texts else None


def train(model: nn.Module, backbone: Backbone, train_set: Dataset, val_set: Dataset, targets: dict,
          groups: list[dict], s: TrainSettings, device: torch.device, precision: str,
          progress: bool = True, feed: Feed | None = None) -> TrainOutcome:
    """Fine-tune ``model`` (a Classifier) in place; the best validation epoch's weights are restored.

    With ``s.l2sp > 0`` the loss adds ``l2sp_penalty`` over every trained parameter outside the ``head``
    groups, anchored at its value when training starts (the pretrained weights; LoRA's adapters start at
    their initialisation, B = 0, so the merged update is pulled towards zero).

    The best state, early stopping (``s.patience``), the deadline (``s.deadline``) and checkpoints
    (``s.checkpoint``) are callbacks (see ``callbacks``). With ``s.checkpoint`` (a folder) the whole training
    state (model, optimizer, scheduler, history, best epoch, every RNG stream) is saved there after every
    epoch (see headstart.training.checkpoints); when the folder already holds a state, training continues after its
    epoch and ends as an uninterrupted run would.

    Random draws (dropout, augmentation) come from ``s.seed``; the caller's random generators are left as
    they were. ``feed`` replaces where batches come from (default: ``item_feed``, the items through the
    whole model).
    """
    with seeded(s.seed, device):
        return _train(model, backbone, train_set, val_set, targets, groups, s, device, precision, progress, feed)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's generators seeded with ``seed`` inside the block; the caller's torch, CUDA, numpy and Python
    random states are given back after it."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@dataclass
class LoopState:
    """What the training loop's callbacks see and change."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    anchored: list  # (parameter, its start) pairs of L2-SP
    generator: torch.Generator  # the loader's
    settings: TrainSettings
    total: int  # optimizer steps of the whole run
    outcome: TrainOutcome = field(default_factory=TrainOutcome)
    best_key: tuple | None = None
    best_state: dict | None = None

    @property
    def stopped(self) -> bool:
        return self.outcome.stopped_early or self.outcome.out_of_time


class Callback:
    """A hook of ``train``: after every batch (True ends the epoch) and after every epoch. Subclass it and pass
    instances to ``headstart.fit(..., callbacks=[...])``: they run after the built-in ones (best state, early
    stopping, checkpoint, tracking), on every process; ``state.outcome.history[-1]`` is the epoch's row, and
    setting ``state.outcome.stopped_early`` ends training after this epoch."""

    def after_batch(self, state: LoopState) -> bool:
        """After each optimizer step; True ends the epoch early."""
        return False

    def after_epoch(self, state: LoopState, epoch: int) -> None:
        """After each epoch's validation."""


class Deadline(Callback):
    """Stop after the batch that passes ``deadline`` (a ``time.perf_counter()`` value), on every rank."""

    def __init__(self, deadline: float):
        self.deadline = deadline

    def after_batch(self, state: LoopState) -> bool:
        if distributed.any_rank(time.perf_counter() > self.deadline):
            state.outcome.out_of_time = True
        return state.outcome.out_of_time


class BestState(Callback):
    """Keep the weights of the epoch with the best selection key (``_selection_key``); ``train`` restores them."""

    def after_epoch(self, state: LoopState, epoch: int) -> None:
        key = _selection_key(state.outcome.history[-1], state.settings)
        if state.best_key is None or key > state.best_key:
            state.best_key, state.outcome.best_epoch = key, epoch
            state.best_state = copy.deepcopy(state.model.state_dict())


class EarlyStopping(Callback):
    """Stop when ``patience`` trained epochs passed without a better selection key. A scored start (epoch 0)
    may still be kept, but the warm-up's dip does not stop training."""

    def __init__(self, patience: int):
        self.patience = patience

    def after_epoch(self, state: LoopState, epoch: int) -> None:
        if epoch - _best_trained_epoch(state.outcome.history, state.settings) >= self.patience:
            state.outcome.stopped_early = True


class Checkpoint(Callback):
    """Save the whole training state in ``folder`` after every epoch (the main process writes)."""

    def __init__(self, folder: str):
        self.folder = folder

    def after_epoch(self, state: LoopState, epoch: int) -> None:
        if distributed.is_main():
            _checkpoint(self.folder, epoch, state)


class EpochListener(Callback):
    """Hand each epoch's history row to ``listener`` (the experiment trackers), on the main process."""

    def __init__(self, listener: Callable[[dict], None]):
        self.listener = listener

    def after_epoch(self, state: LoopState, epoch: int) -> None:
        if distributed.is_main():
            self.listener(dict(state.outcome.history[-1]))


def callbacks(s: TrainSettings) -> list[Callback]:
    """The callbacks ``s`` asks for, in the order they run after an epoch: the best state, early stopping,
    then the checkpoint (which records both) and the listener; the deadline after every batch."""
    return [BestState(), EarlyStopping(s.patience), *([Checkpoint(s.checkpoint)] if s.checkpoint else []),
            *([EpochListener(s.on_epoch)] if s.on_epoch else []),
            *([Deadline(s.deadline)] if s.deadline is not None else []), *s.callbacks]


def _train(model: nn.Module, backbone: Backbone, train_set: Dataset, val_set: Dataset, targets: dict,
           groups: list[dict], s: TrainSettings, device: torch.device, precision: str, progress: bool,
           feed: Feed | None) -> TrainOutcome:
    """``train`` under its seeded generators."""
    generator = torch.Generator().manual_seed(s.seed)
    feed = feed or item_feed(backbone, train_set, val_set, targets["train"], s, device, precision)
    sample_weights = None
    if s.balance == "sampler" and s.class_weights:  # each item drawn with its class's inverse frequency
        sample_weights = np.asarray(s.class_weights)[np.asarray(targets["train"])]
    loader = distributed.train_loader(feed.pairs, s.batch_size, generator, feed.collate, feed.num_workers,
                                      feed.lengths, sample_weights)
    model.to(device, memory_format=torch.channels_last if feed.channels_last else torch.preserve_format)
    saved = load_checkpoint(s.checkpoint, s.epochs) if s.checkpoint else None
    lr_range = None
    if s.find_lr:  # a resumed run reuses the rate its first start found
        lr_range = saved[1].get("lr_range") if saved else _find_lr(model, feed, groups, s, device, precision)
        for g in groups:
            g["lr"] *= lr_range["factor"]
    net = distributed.wrap(model, device)  # DDP under a launch: gradients averaged over the ranks
    optimizer = torch.optim.AdamW(groups)
    total = s.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, s.warmup, s.decay))
    anchored = [(p, p.detach().clone().float()) for g in groups if g.get("name") != "head" for p in g["params"]
                if s.l2sp > 0]
    state = LoopState(model, optimizer, scheduler, anchored, generator, s, total)
    state.outcome.lr_range = lr_range
    shown = progress and distributed.is_main()  # one process prints the lines that stay
    if saved is not None:
        _restore(saved, state)
        say(f"resuming from epoch {state.outcome.resumed_from} of {s.epochs} (saved in {s.checkpoint})", shown)
    elif s.evaluate_start:  # e.g. LP-FT: the probe's model is the one to beat, and may be kept
        state.outcome.history.append({"epoch": 0, **_scores(distributed.from_main(feed.val_logits(model)),
                                                              targets["val"], s, feed)})
        state.best_key, state.best_state = _selection_key(state.outcome.history[-1], s), copy.deepcopy(
            model.state_dict())
    hooks = callbacks(s)
    for epoch in range(state.outcome.resumed_from + 1, s.epochs + 1):
        if state.stopped:  # the checkpoint was taken as training stopped
            break
        start = time.perf_counter()
        row, penalty = _epoch(net, state, loader, feed, hooks, device, precision, f"epoch {epoch}/{s.epochs}",
                              progress)
        distributed.sync_buffers(model)  # BatchNorm statistics: the main process's, on every rank
        with spinner(f"epoch {epoch}/{s.epochs}: validating", progress):
            logits = distributed.from_main(feed.val_logits(model))  # every rank decides on the same logits
        if not np.isfinite(logits).all():
            raise diverged(f"the model's outputs on the validation set were no longer finite after epoch {epoch}")
        state.outcome.history.append({"epoch": epoch, **row, **_scores(logits, targets["val"], s, feed),
                                      "seconds": time.perf_counter() - start})
        say(epoch_line(state.outcome.history[-1], s.epochs), shown)
        if anchored:
            state.outcome.history[-1]["l2sp_penalty"] = penalty
        for hook in hooks:
            hook.after_epoch(state, epoch)
    model.load_state_dict(state.best_state)
    return state.outcome


def _epoch(net: nn.Module, state: LoopState, loader: DataLoader, feed: Feed, hooks: list[Callback],
           device: torch.device, precision: str, title: str, progress: bool) -> tuple[dict, float]:
    """One pass over the training batches: ``{train_loss, train_accuracy}`` and the mean L2-SP penalty, over
    every rank's items."""
    s, model = state.settings, state.model
    set_train_mode(model, s.frozen_bn)
    trainable = [p for g in state.optimizer.param_groups for p in g["params"]]
    weight = torch.tensor(s.class_weights, dtype=torch.float32, device=device) \
        if s.balance == "weights" and s.class_weights else None
    seen, loss_sum, correct, penalty_sum, scored = 0, 0.0, 0, 0.0, False
    batch_loss, hits = _task_loss(s, feed)
    with progress_task(title, len(feed.pairs), progress) as advance:
        for step, (inputs, y) in enumerate(loader, 1):
            inputs, y = batch_to(inputs, device, feed.channels_last), y.to(device)
            with autocast(device, precision):
                logits = net(inputs)
            batch = batch_loss(logits.float(), y, s.label_smoothing, weight)  # one process: the mean
            mean = batch.mean.item()
            check_finite_loss(mean, f"{title}, step {step}", state.optimizer)
            state.optimizer.zero_grad(set_to_none=True)
            if state.anchored:
                penalty = l2sp_penalty(state.anchored, s.l2sp)
                penalty_sum += penalty.item() * batch.count
                (batch.loss + penalty).backward()
            else:
                batch.loss.backward()
            if s.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, s.grad_clip)
            state.optimizer.step()
            state.scheduler.step()
            seen += batch.count
            loss_sum += mean * batch.count
            hit = hits(logits, y)  # None: the task has no accuracy to show as it trains (its loss says enough)
            correct, scored = correct + (hit or 0), hit is not None
            advance(batch.global_count, info=f"loss {loss_sum / max(seen, 1):.3f}")
            if any([hook.after_batch(state) for hook in hooks]):
                break
    seen, loss_sum, correct, penalty_sum = distributed.all_sum(seen, loss_sum, correct, penalty_sum)
    row = {"train_loss": loss_sum / seen}
    if scored:
        row["train_accuracy"] = correct / seen
    return row, penalty_sum / seen


def _task_loss(s: TrainSettings, feed: Feed) -> tuple[Callable, Callable]:
    """The task's ``batch_loss`` and ``hits`` (see ``Task``); with no task, cross-entropy and correct classes; a
    feed's own loss (contrastive pairs) has no hits."""
    if feed.loss is not None:
        return feed.loss, lambda logits, y: None
    if s.task is not None:
        return s.task.batch_loss, s.task.hits
    return distributed.batch_loss, lambda logits, y: int((logits.argmax(1) == y).sum())


def _find_lr(model: nn.Module, feed: Feed, groups: list[dict], s: TrainSettings, device: torch.device,
             precision: str) -> dict:
    """The range test on a loader of its own (the training order stays the seed's); one process only."""
    if distributed.world_size() > 1:
        return {"factor": 1.0, "suggestion": None, "reason": "not run under a multi-process launch"}
    loader = distributed.train_loader(feed.pairs, s.batch_size, torch.Generator().manual_seed(s.seed + 1),
                                      feed.collate, 0, feed.lengths)
    batch_loss, _ = _task_loss(s, feed)

    def step_loss(net: nn.Module, inputs, y: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            outputs = net(batch_to(inputs, device, feed.channels_last)).float()
            return batch_loss(outputs, y.to(device), s.label_smoothing, None).loss

    set_train_mode(model, bool(s.frozen_bn))
    found = lr_range_test(model, loader, groups, s.lr, step_loss)
    factor = found.suggestion / s.lr if found.suggestion else 1.0
    return {"factor": factor, "suggestion": found.suggestion, "reason": found.reason,
            "lrs": found.lrs, "losses": found.losses}


def _scores(logits: np.ndarray, y: np.ndarray, s: TrainSettings, feed: Feed) -> dict:
    """The task's validation row of ``logits`` (see ``Task.scores``), or the feed's own; with no task,
    single-label's."""
    if feed.scores is not None:
        return feed.scores(logits, y)
    if s.task is not None:
        return s.task.scores(logits, y)
    metric = s.select_metric
    loss = float(F.cross_entropy(torch.from_numpy(logits).float(), torch.as_tensor(y)))
    row = {"val_loss": loss, "val_accuracy": float((logits.argmax(1) == y).mean())}
    if metric != "accuracy":
        row[f"val_{metric}"] = selection_score(np.asarray(y), logits.argmax(1), logits.shape[1], metric)
    return row


def _best_trained_epoch(history: list[dict], s: TrainSettings) -> int:
    """The first epoch with the best selection key among the trained ones (epoch 0 aside)."""
    trained = [row for row in history if "train_loss" in row]
    return max(trained, key=lambda row: _selection_key(row, s))["epoch"]


def _selection_key(row: dict, s: TrainSettings) -> tuple:
    """Larger is better: the validation ``select_metric`` (accuracy by default), ties broken by loss; loss alone
    on tiny validation sets."""
    return (-row["val_loss"],) if s.select_on_loss else (row[f"val_{s.select_metric}"], -row["val_loss"])


def _checkpoint(folder: str, epoch: int, state: LoopState) -> None:
    """Save the state at the end of ``epoch`` (tensors in safetensors, the rest in JSON)."""
    outcome = state.outcome
    tensors = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    best_is_current = outcome.best_epoch == epoch
    if not best_is_current:
        tensors.update({f"best.{k}": v for k, v in state.best_state.items()})
    opt_tensors, opt_index = optimizer_tensors(state.optimizer)
    tensors.update(opt_tensors)
    tensors.update({f"anchor.{i}": p0 for i, (_, p0) in enumerate(state.anchored)})
    record = {"epoch": epoch, "total_steps": state.total, "history": outcome.history,
              "best_epoch": outcome.best_epoch, "best_key": list(state.best_key), "best_is_current": best_is_current,
              "stopped_early": outcome.stopped_early, "out_of_time": outcome.out_of_time,
              "scheduler": scheduler_state(state.scheduler), "optimizer": opt_index,
              "rng": rng_state(state.generator), "lr_range": outcome.lr_range}
    save_checkpoint(folder, tensors, record)


def _restore(saved: tuple[dict, dict], state: LoopState) -> None:
    """Load a checkpoint into the freshly built model, optimizer and scheduler of ``state``, with its history,
    best epoch and state, and every RNG stream."""
    tensors, record = saved
    if record["total_steps"] != state.total:
        raise RunError(f"The checkpoint was taken with {record['total_steps']} training steps in all, but this "
                       f"run would take {state.total}: the settings or data differ from the run that saved it.")

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        state.model.load_state_dict(part("model."))
        load_optimizer(state.optimizer, tensors, record["optimizer"])
    except (RuntimeError, KeyError, ValueError, IndexError) as exc:
        raise RunError(f"The checkpoint does not fit this model ({exc}); it was saved by another run.") from exc
    load_scheduler(state.scheduler, record["scheduler"])
    for i, (_, p0) in enumerate(state.anchored):
        p0.copy_(tensors[f"anchor.{i}"])
    current = state.model.state_dict()
    if record["best_is_current"]:
        state.best_state = copy.deepcopy(current)
    else:
        state.best_state = {k: torch.empty_like(current[k]).copy_(v) for k, v in part("best.").items()}
    outcome = state.outcome
    outcome.history = record["history"]
    outcome.best_epoch, outcome.resumed_from = record["best_epoch"], record["epoch"]
    outcome.stopped_early, outcome.out_of_time = record["stopped_early"], record["out_of_time"]
    state.best_key = tuple(record["best_key"])
    set_rng_state(record["rng"], state.generator)


def predict_logits(model: nn.Module, backbone: Backbone, data: Dataset, device: torch.device, precision: str,
                   batch_size: int = 64, num_workers: int = 0) -> np.ndarray:
    """Logits ``[len(data), n_classes]`` in ``data`` order, in eval and inference mode."""
    loader = DataLoader([(x, 0) for x in data.items], batch_size=batch_size,
                        collate_fn=backbone.preprocessing.collate(False), num_workers=num_workers)
    channels_last = backbone.channels_last
    model.eval()
    outs = []
    with torch.inference_mode():
        for inputs, _ in loader:
            with autocast(device, precision):
                outs.append(model(batch_to(inputs, device, channels_last)).float().cpu())
    return torch.cat(outs).numpy() if outs else np.zeros((0, 0), dtype=np.float32)
