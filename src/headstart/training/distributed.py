"""Several processes, one fit: data-parallel fine-tuning and sharded feature extraction.

A launcher (``accelerate launch`` or ``torchrun``) starts one process per GPU, or several CPU processes,
and gives each ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``. ``setup`` joins them into one
torch.distributed process group through accelerate's ``PartialState``: NCCL with ``cuda:LOCAL_RANK`` on
GPUs, gloo on CPUs. Without a launcher every helper here is a no-op for one process (rank 0 of 1), so a
single-process fit runs exactly as it did without this module.

What is sharded across the ranks:

* feature extraction (``features.FeatureCache.features``): the items missing from the cache are split
  ``missing[rank::world]``; each rank forwards its part and writes its own cache shard, then every rank
  reads the cache back (the cache must be on a file system every rank sees);
* fine-tuning (``engine.train``): every rank draws the same shuffled global batch from the same seeded
  generator and preprocesses and forwards only its slice ``batch[rank::world]`` (``train_loader``); the
  model is wrapped in DDP and each rank's loss is scaled (``batch_loss``) so that DDP's gradient average
  equals the one-process mean over the global batch. ``--batch-size`` stays the global batch size;
* validation and final scoring (``sharded_rows``): each rank predicts ``data[rank::world]``, the rows are
  gathered back into data order, so every rank sees the same logits and early stopping agrees.

Only the main process (rank 0) writes run directories, checkpoints and reports, and prints progress.
The state lives where torch.distributed and accelerate keep it; this module holds none of its own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, WeightedRandomSampler

from headstart.core.errors import ConfigError, RunError

if TYPE_CHECKING:
    from headstart.data import Dataset

IGNORE_INDEX = -100  # the target of a padding item: cross-entropy skips it


# ---- the process group ------------------------------------------------------------------------------

def launched() -> bool:
    """Whether a launcher started this process as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_rank() -> int:
    """This process's rank as its launcher set it (``RANK``; 0 without a launcher): known before ``setup``."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``; 0 without a launcher)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup(device: torch.device) -> None:
    """Join the launcher's process group (once; later calls check it): gloo on a CPU, NCCL on GPUs.

    Raises ConfigError when more processes than GPUs share a machine (NCCL needs one GPU each), and
    RunError when the environment names several processes but no process group of that size forms, e.g.
    after a plain ``Accelerator()`` on a machine without GPUs made every process a separate run.
    """
    if not launched():
        return
    per_machine, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", "1")), torch.cuda.device_count()
    if device.type == "cuda" and per_machine > gpus:
        raise ConfigError(f"{per_machine} processes were launched on this machine but it has {gpus} GPU(s); NCCL "
                          f"needs one GPU per process. Launch {gpus} process(es) per machine, or pass --device cpu.")
    if not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=device.type != "cuda")
    expected = int(os.environ["WORLD_SIZE"])
    if not dist.is_initialized() or dist.get_world_size() != expected:
        raise RunError(
            f"This process was started as one of WORLD_SIZE={expected} processes, but no process group of "
            "that size could be formed, so each would train alone. If your script creates an accelerate "
            "Accelerator or PartialState before calling headstart on a machine without GPUs, create it with "
            "cpu=True (or let headstart create it); and launch CPU processes with `accelerate launch "
            "--multi_gpu --num_processes N` or `torchrun --nproc_per_node N` (`--cpu` starts only one).")
    if device.type == "cpu" and dist.get_backend() == "nccl":
        raise ConfigError("The process group uses NCCL (GPUs) but --device is cpu; use --device auto or cuda, "
                          "or set up the group with Accelerator(cpu=True) / PartialState(cpu=True).")


def teardown() -> None:
    """Leave the process group (end of a CLI command): every rank must have finished its collectives."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank in the group (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """How many processes share the work (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on the one process that writes files and prints (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (no-op for one process)."""
    if world_size() > 1:
        dist.barrier()


def _comm_device() -> torch.device:
    """Where collective tensors must live: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---- sharding and gathering -------------------------------------------------------------------------

def shard(indices: Sequence[int]) -> list[int]:
    """This rank's share of ``indices``: every ``world``-th one starting at ``rank`` (all of them alone)."""
    return list(indices)[rank()::world_size()]


def gather_rows(local: np.ndarray, total: int) -> np.ndarray:
    """Put every rank's ``shard`` rows back together: ``[total, ...]`` in the original order, on every rank."""
    world = world_size()
    if world == 1:
        return local
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, local)
    filled = [p for p in parts if len(p)]
    if not filled:
        return local
    out = np.empty((total, *filled[0].shape[1:]), dtype=filled[0].dtype)
    for r, part in enumerate(parts):
        if len(part):
            out[r::world] = part
    return out


def sharded_rows(compute: Callable[[Dataset], np.ndarray], data: Dataset) -> np.ndarray:
    """``compute(data)`` with each rank computing ``data[rank::world]``; the same full rows on every rank."""
    if world_size() == 1:
        return compute(data)
    return gather_rows(compute(data.subset(shard(range(len(data))))), len(data))


def from_main(array: np.ndarray) -> np.ndarray:
    """The main process's ``array`` on every rank (so decisions taken from it agree everywhere)."""
    if world_size() == 1:
        return array
    box = [array if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(*values: float) -> tuple:
    """Each value summed over the ranks (float64); for one process the values come back untouched."""
    if world_size() == 1:
        return values
    total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(total)
    return tuple(total.cpu().tolist())


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on any (e.g. one rank's clock passed the deadline)."""
    if world_size() == 1:
        return flag
    value = torch.tensor([int(flag)], device=_comm_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# ---- data-parallel training -------------------------------------------------------------------------

class RankSlices(Sampler[list[int]]):
    """This rank's slice ``batch[rank::world]`` of every global batch; ``pad`` for a rank left empty.

    A global batch smaller than the world size (the last one) leaves some ranks without items. Such a
    rank forwards one padding item whose target is ``IGNORE_INDEX``: its loss is zero, yet it takes part
    in DDP's gradient all-reduce, so no rank waits forever and the update equals the one-process one.
    """

    def __init__(self, batches: BatchSampler, rank: int, world: int, pad: int):
        self.batches, self.rank, self.world, self.pad = batches, rank, world, pad

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[self.rank::self.world] or [self.pad]

    def __len__(self) -> int:
        return len(self.batches)


class _Padded(torch.utils.data.Dataset):
    """``pairs`` plus one padding pair at index ``len(pairs)``: the first input with an ignored target."""

    def __init__(self, pairs: Sequence):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs) + 1

    def __getitem__(self, index: int):
        if index < len(self.pairs):
            return self.pairs[index]
        target = self.pairs[0][1]
        if isinstance(target, (int, np.integer)):
            return self.pairs[0][0], IGNORE_INDEX
        return self.pairs[0][0], np.full(np.shape(target), np.nan, dtype=np.float32)  # a task's float targets


class LengthBuckets(Sampler[list[int]]):
    """Shuffled batches of items of similar length (texts: less padding per batch).

    Each epoch: a random permutation, cut into windows of ``window`` batches; each window sorted by length
    and cut into batches; then the batches in random order, so no length comes first every epoch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator, window: int = 50):
        self.lengths, self.batch_size, self.generator = np.asarray(lengths), batch_size, generator
        self.window = window * batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).numpy()
        batches = []
        for start in range(0, len(order), self.window):
            chunk = order[start:start + self.window]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for k in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[k]

    def __len__(self) -> int:
        windows = [min(self.window, len(self.lengths) - s) for s in range(0, len(self.lengths), self.window)]
        return sum(-(-w // self.batch_size) for w in windows)


def train_loader(pairs: Sequence, batch_size: int, generator: torch.Generator, collate: Callable,
                 num_workers: int = 0, lengths: Sequence[int] | None = None,
                 sample_weights: Sequence[float] | None = None) -> DataLoader:
    """Shuffled batches of ``(input, target)`` pairs drawn from ``generator``; under a launch, this rank's slice.

    With ``lengths`` (texts), batches group items of similar length (``LengthBuckets``). Every rank draws
    the same permutation (same seeded generator, same draws), so the global batches are those of one
    process; each rank collates only its own items. ``len`` is the number of global batches. With
    ``sample_weights`` (one per pair) an epoch draws ``len(pairs)`` items with replacement in proportion to
    them (class-balanced batches), in place of the shuffle and the length buckets.
    """
    world = world_size()
    if sample_weights is not None:
        drawn = WeightedRandomSampler(torch.as_tensor(sample_weights, dtype=torch.float64), len(pairs),
                                      replacement=True, generator=generator)
        lengths, batches = None, BatchSampler(drawn, batch_size, drop_last=False)
    if world == 1 and lengths is None and sample_weights is None:
        return DataLoader(pairs, batch_size=batch_size, shuffle=True, generator=generator, collate_fn=collate,
                          num_workers=num_workers)
    if lengths is not None:
        batches = LengthBuckets(lengths, batch_size, generator)
    elif sample_weights is None:
        batches = BatchSampler(RandomSampler(pairs, generator=generator), batch_size, drop_last=False)
    if world == 1:
        return DataLoader(pairs, batch_sampler=batches, generator=generator, collate_fn=collate,
                          num_workers=num_workers)  # the generator: its draws as on every rank
    if batch_size < world:
        raise ConfigError(f"--batch-size {batch_size} is smaller than the {world} processes: the batch size is "
                          f"the global batch, split across processes. Use --batch-size {world} or more.")
    return DataLoader(_Padded(pairs), batch_sampler=RankSlices(batches, rank(), world, len(pairs)),
                      generator=generator, collate_fn=collate, num_workers=num_workers)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel under a launch (gradients averaged over ranks), else itself."""
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sync_buffers(model: nn.Module) -> None:
    """Copy the main process's buffers (BatchNorm running statistics) to every rank."""
    if world_size() == 1:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


class BatchLoss(NamedTuple):
    """One step's loss: ``loss`` to backpropagate, ``mean`` cross-entropy of this rank's items (to log),
    ``count`` of this rank's real items and ``global_count`` of the whole global batch."""

    loss: torch.Tensor
    mean: torch.Tensor
    count: int
    global_count: int


def batch_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0,
               weight: torch.Tensor | None = None,
               per_item: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> BatchLoss:
    """Cross-entropy of a batch (with class ``weight``: the weighted mean, as ``F.cross_entropy``); under a
    launch, scaled for DDP's gradient average.

    Rank ``r`` backpropagates ``sum(w * CE over its items) / (global sum of w) * world``; DDP averages gradients
    over ``world`` ranks, which gives the gradient of the (weighted) mean CE over the global batch, as one process.
    """
    if per_item is not None:  # a task's own loss per item (multi-label, regression); padding targets are NaN
        return _per_item_loss(per_item(logits, torch.nan_to_num(y)), ~_padding(y))
    if world_size() == 1:
        loss = F.cross_entropy(logits, y, weight=weight, label_smoothing=label_smoothing)
        return BatchLoss(loss, loss, len(y), len(y))
    total = F.cross_entropy(logits, y, weight=weight, reduction="sum", ignore_index=IGNORE_INDEX,
                            label_smoothing=label_smoothing)
    valid = y != IGNORE_INDEX
    count = int(valid.sum())
    mass = float(weight[y[valid]].sum()) if weight is not None else float(count)
    global_count, global_mass = all_sum(count, mass)
    return BatchLoss(total * (world_size() / global_mass), total.detach() / max(mass, 1e-12), count,
                     int(global_count))


def _padding(y: torch.Tensor) -> torch.Tensor:
    """Which rows of a batch's float targets are padding (NaN)."""
    return torch.isnan(y.reshape(len(y), -1)).any(1)


def _per_item_loss(losses: torch.Tensor, valid: torch.Tensor) -> BatchLoss:
    """The mean of ``losses`` over the ``valid`` rows, scaled for DDP's gradient average as cross-entropy's is."""
    total = (losses * valid).sum()
    count = int(valid.sum())
    if world_size() == 1:
        mean = total / max(count, 1)
        return BatchLoss(mean, mean.detach(), count, count)
    (global_count,) = all_sum(count)
    global_count = int(global_count)
    return BatchLoss(total * (world_size() / max(global_count, 1)), total.detach() / max(count, 1), count,
                     global_count)
