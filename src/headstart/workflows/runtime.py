"""Runtime: where and how fits run, decided once per call from the config (in the manner of Lightning Fabric).

``fit``, ``compare``, ``advise`` and ``audit`` each build one Runtime: the device is resolved and the
multi-process setup done there, once; the feature cache, the extraction settings, the training precision,
the deadline and the checkpoint folder come from it. What changes between the fits of one call (compare's
deadline per fit, a run's checkpoint folder) is a new Runtime made with ``replace``, never a patch of the
context a strategy already holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from headstart.training import distributed
from headstart.backbones import Backbone
from headstart.backbones.registry import family_of
from headstart.training.balance import resolve_balance
from headstart.core.config import FitConfig
from headstart.data import DataSplits, Dataset
from headstart.training.devices import extraction_batch, resolve_device, resolve_precision, resolve_workers
from headstart.training.engine import Callback, TrainSettings
from headstart.features.cache import Extraction, FeatureCache
from headstart.core.errors import DataError
from headstart.label.pool import read_pool
from headstart.strategies import FitContext
from headstart.tasks import make_task
from headstart.tasks.kinds import kind


@dataclass(frozen=True)
class Runtime:
    """Device, precision, loader workers, feature cache, progress, deadline and checkpoint folder of a call."""

    device: torch.device
    cache: FeatureCache
    precision: str = "auto"  # as asked: resolved per backbone (training) or once (extraction)
    num_workers: int | None = None  # as asked; None: chosen per modality (devices.resolve_workers)
    progress: bool = True  # this process shows progress (the main one under a launch)
    cache_boundary: bool | None = None  # partial without augmentation: cache the frozen groups' output
    deadline: float | None = None  # time.perf_counter() value: fine-tuning stops after the batch that passes it
    checkpoint: str | None = None  # folder: fine-tuning's state after every epoch, resumed from when present
    on_epoch: Callable[[dict], None] | None = None  # given each fine-tuning epoch's history row (tracking)
    callbacks: tuple[Callback, ...] = ()  # the user's, run by the training loop after its own

    @classmethod
    def from_config(cls, cfg: FitConfig, progress: bool = True) -> "Runtime":
        """Resolve ``cfg``'s device and set up the multi-process launch (a no-op without one)."""
        device = resolve_device(cfg.device)
        distributed.setup(device)
        return cls(device, FeatureCache(cfg.cache_dir), cfg.precision, cfg.num_workers,
                   progress and distributed.is_main(), cfg.cache_boundary)

    def until(self, deadline: float | None) -> "Runtime":
        """The same runtime with fine-tuning stopping at ``deadline``."""
        return replace(self, deadline=deadline)

    def checkpointed(self, folder: str | Path | None) -> "Runtime":
        """The same runtime keeping fine-tuning's state in ``folder``."""
        return replace(self, checkpoint=str(folder) if folder else None)

    def listening(self, on_epoch: Callable[[dict], None] | None) -> "Runtime":
        """The same runtime handing each fine-tuning epoch's history row to ``on_epoch``."""
        return replace(self, on_epoch=on_epoch)

    def calling(self, callbacks: Sequence[Callback]) -> "Runtime":
        """The same runtime with the user's training-loop ``callbacks`` (headstart.training.engine.Callback)."""
        return replace(self, callbacks=tuple(callbacks))

    def workers(self, modality: str) -> int:
        """DataLoader workers for items of ``modality``."""
        return resolve_workers(self.num_workers, self.device, modality)

    def extraction(self, modality: str) -> Extraction:
        """How frozen features are computed for items of ``modality``."""
        return Extraction(self.device, resolve_precision(self.precision, self.device),
                          batch_size=extraction_batch(self.device), num_workers=self.workers(modality),
                          progress=self.progress)

    def train_precision(self, backbone: Backbone) -> str:
        """The precision fine-tuning ``backbone`` runs at."""
        return resolve_precision(self.precision, self.device, training=True, depthwise=backbone.depthwise)

    def context(self, cfg: FitConfig, splits: DataSplits, backbone: Backbone) -> FitContext:
        """What a strategy fitting ``backbone`` to ``splits`` under ``cfg`` is given."""
        task = make_task(splits, cfg.select_metric, cfg.label_col, cfg.regression_loss)
        targets = {name: task.targets(ds.labels)
                   for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test))
                   if ds is not None}
        balance = resolve_balance(cfg.balance, targets["train"], splits.classes,
                                  None if kind(task.name).one_per_item else task.name)
        weights = balance["class_weights"]
        settings = replace(TrainSettings.from_config(cfg, num_workers=self.workers(backbone.modality),
                                                     deadline=self.deadline, checkpoint=self.checkpoint,
                                                     on_epoch=self.on_epoch, callbacks=self.callbacks),
                           balance=balance["used"], class_weights=tuple(weights.values()) if weights else None,
                           select_metric=task.select_metric, task=task)
        family = family_of(backbone.arch)  # what the fit left open, the model's family decides
        if settings.augment is None:
            settings = replace(settings, augment=family.augment)
        if settings.frozen_bn is None and family.bn_auto is not None:
            settings = replace(settings, frozen_bn=family.bn_auto == "frozen")
        pool = None if cfg.unlabelled is None else unlabelled_rest(cfg, splits, backbone.modality)
        return FitContext(targets, self.cache, self.extraction(backbone.modality), self.device,
                          self.train_precision(backbone), settings, self.progress, self.cache_boundary, balance,
                          task, pool)


def unlabelled_rest(cfg: FitConfig, splits: DataSplits, modality: str) -> Dataset:
    """The ``--unlabelled`` pool without the items the fit has labels for (training, validation and test, by
    content): a validation item among the pool's would help the pool's probe win on validation."""
    pool = read_pool(cfg.unlabelled, modality, cfg.text_col, cfg.image_col, skip_bad=cfg.skip_bad)
    labelled = {h for ds in (splits.train, splits.val, splits.test) if ds is not None for h in ds.item_hashes()}
    rest = [i for i, h in enumerate(pool.item_hashes()) if h not in labelled]
    if not rest:
        raise DataError(f"Every item of --unlabelled {cfg.unlabelled} is one of the labelled items; give a pool of "
                        "items nobody has labelled yet, or drop --unlabelled.")
    return pool if len(rest) == len(pool) else pool.subset(rest)
