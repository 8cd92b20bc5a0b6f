"""Partial fine-tuning's fast path: the frozen groups run once, their output is cached at the freeze boundary.

With only the last layer groups trainable and no augmentation, the frozen groups below them compute the
same activation for an item in every epoch. ``split_at`` cuts a backbone module at the boundary into a
trainable top (sharing the module's own parameters); ``ActivationStore`` runs the frozen part once over a
data set and keeps the boundary activations in a memory-mapped float16 file; ``boundary_feed`` gives the
training loop batches from it. Texts keep their own token count (padded per batch, never to max_length).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from headstart.backbones import Backbone, batch_to
from headstart.backbones.preprocessing import target_tensor
from headstart.data import Dataset
from headstart.training.devices import autocast
from headstart.training.engine import Feed, TrainSettings
from headstart.features.cache import length_order
from headstart.core.errors import RunError
from headstart.core.progress import progress_task

FP16_MAX = 65504.0


class _Reached(Exception):
    """Raised by the boundary hook to stop a forward pass once the boundary activation is captured."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value


@dataclass
class Split:
    """A module cut at its freeze boundary: ``top`` shares parameters with the module's trainable groups."""

    module: nn.Module
    boundary: nn.Module  # the first trainable block: its input is the activation that gets cached
    top: nn.Module
    text: bool

    def frozen_part(self, inputs) -> torch.Tensor:
        """The boundary activation of a preprocessed batch: the module runs only up to ``boundary``."""
        handle = self.boundary.register_forward_pre_hook(_stop_with_input)
        try:
            self.module(inputs)
        except _Reached as reached:
            return reached.value
        finally:
            handle.remove()
        raise RuntimeError("The forward pass never reached the freeze boundary.")


def _stop_with_input(module: nn.Module, args: tuple) -> None:
    raise _Reached(args[0])


def split_at(backbone: Backbone, module: nn.Module, unfrozen: int) -> Split | None:
    """Cut ``module`` (a copy of ``backbone.module``) before its last ``unfrozen`` layer groups.

    Returns None when the architecture has no cut whose top holds exactly those groups (the caller then
    recomputes the frozen groups every step): where a module can be cut is its family's to say
    (``Family.boundary``): torchvision-style CNNs with a ``features`` Sequential and BERT-family encoders.
    """
    groups = backbone.layer_groups()
    if not 0 < unfrozen < len(groups):
        return None
    trainable = {name for group in groups[-unfrozen:] for name in group}
    cut = backbone.family.boundary(module)
    if cut is None:
        return None
    first = min(trainable, key=list(dict(module.named_parameters())).index)
    if not first.startswith(cut.prefix):
        return None
    index = int(first[len(cut.prefix):].split(".")[0])
    top_params = {f"{cut.prefix}{index + k}.{name}" for k, block in enumerate(cut.blocks[index:])
                  for name, _ in block.named_parameters()}
    if top_params != trainable:
        return None
    return Split(module, cut.blocks[index], cut.top(list(cut.blocks[index:])), cut.tokens)


class ActivationStore:
    """Boundary activations of a data set, float16, memory-mapped from one file.

    Images: one row ``[C, H, W]`` per item. Texts: one row ``[hidden]`` per token, items back to back, so a
    batch is padded only to its own longest item.
    """

    def __init__(self, path: Path, rows: np.memmap, starts: np.ndarray, counts: np.ndarray, text: bool):
        self.path, self.rows, self.starts, self.counts, self.text = path, rows, starts, counts, text

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes

    def collate(self, pairs: list) -> tuple:
        """A DataLoader collate_fn over ``(item index, target)`` pairs."""
        index = [i for i, _ in pairs]
        y = target_tensor([t for _, t in pairs])
        return self.batch(index), y

    def batch(self, index: Sequence[int]):
        """The stored activations of items ``index`` as float32 model inputs."""
        index = np.asarray(index, dtype=np.int64)
        if not self.text:
            return torch.from_numpy(self.rows[np.asarray(index)].astype(np.float32))
        longest = int(self.counts[index].max())
        hidden = np.zeros((len(index), longest, self.rows.shape[1]), dtype=np.float32)
        mask = np.zeros((len(index), longest), dtype=np.int64)
        for k, i in enumerate(index):
            n = self.counts[i]
            hidden[k, :n] = self.rows[self.starts[i]:self.starts[i] + n]
            mask[k, :n] = 1
        return {"hidden": torch.from_numpy(hidden), "attention_mask": torch.from_numpy(mask)}


def store_activations(split: Split, backbone: Backbone, data: Dataset, folder: Path, device: torch.device,
                      precision: str, batch_size: int = 64, progress: bool = True) -> ActivationStore | None:
    """Run the frozen part once over ``data`` and memory-map its boundary activations from ``folder``.

    Returns None when an activation does not fit float16 (the caller then recomputes instead).
    """
    order = length_order(backbone, data)
    loader = DataLoader([(data.items[i], 0) for i in order], batch_size=batch_size,
                        collate_fn=backbone.preprocessing.collate(augment=False))
    path = folder / "activations.f16"
    starts, counts = np.zeros(len(data), dtype=np.int64), np.zeros(len(data), dtype=np.int64)
    written, position, shape = 0, 0, None
    split.module.to(device).eval()
    with open(path, "wb") as out, torch.inference_mode(), \
            progress_task(f"boundary activations ({backbone.name})", len(data), progress) as advance:
        for inputs, _ in loader:
            inputs = batch_to(inputs, device, channels_last=not split.text)
            with autocast(device, precision):
                acts = split.frozen_part(inputs).float()
            if not torch.isfinite(acts).all() or acts.abs().max() > FP16_MAX:
                return None
            acts = acts.cpu().numpy().astype(np.float16)
            lengths = inputs["attention_mask"].sum(1).cpu().numpy() if split.text else np.ones(len(acts), int)
            for k, act in enumerate(acts):
                rows = act[:lengths[k]] if split.text else act[None]
                item = order[position + k]
                starts[item], counts[item] = written, len(rows)
                out.write(np.ascontiguousarray(rows).tobytes())
                written += len(rows)
                shape = rows.shape[1:]
            position += len(acts)
            advance(len(acts))
    rows = np.memmap(path, dtype=np.float16, mode="r", shape=(written, *shape))
    return ActivationStore(path, rows, starts, counts, split.text)


class ActivationCache:
    """A scratch folder for boundary activations under the feature cache's root, removed on exit."""

    def __init__(self, root: Path):
        self.root, self.folder = root / "activations", None

    def sub(self, name: str) -> Path:
        """A new empty folder ``name`` inside the scratch folder (made on first use)."""
        try:
            if self.folder is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self.folder = Path(tempfile.mkdtemp(prefix="fit-", dir=self.root))
            path = self.folder / name
            path.mkdir()
        except OSError as exc:
            raise RunError(f"Cannot write activations under the feature cache {self.root.parent}: "
                           f"{exc.strerror or exc}. Choose a writable folder with --cache-dir (or HEADSTART_CACHE), "
                           "or pass --no-cache-boundary.") from None
        return path

    def __enter__(self) -> "ActivationCache":
        return self

    def __exit__(self, *exc) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def boundary_feed(train: ActivationStore, val: ActivationStore, train_targets: Sequence[int], s: TrainSettings,
                  device: torch.device, precision: str, lengths: Sequence[int] | None = None) -> Feed:
    """A Feed that trains the top on stored activations and scores validation from them too.

    ``lengths`` groups batches by item length, as the item feed does (the same lengths give the same batches).
    """

    def val_logits(model: nn.Module) -> np.ndarray:
        model.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, len(val), s.batch_size * 2):
                inputs = val.batch(range(start, min(len(val), start + s.batch_size * 2)))
                with autocast(device, precision):
                    outs.append(model(batch_to(inputs, device, not val.text)).float().cpu())
        return torch.cat(outs).numpy()

    return Feed(pairs=list(zip(range(len(train)), train_targets)), collate=train.collate, val_logits=val_logits,
                channels_last=not train.text, num_workers=0, lengths=lengths)
