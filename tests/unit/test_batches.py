"""Length-bucketed training batches: every item once per epoch, little padding, reproducible."""

from __future__ import annotations

import numpy as np
import torch

from headstart.training.distributed import LengthBuckets, train_loader


def _padding(batches, lengths) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_each_item_once_per_epoch_and_far_less_padding_than_random_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 400, size=1000).tolist()
    sampler = LengthBuckets(lengths, 16, torch.Generator().manual_seed(0), window=20)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    random = [list(range(1000))[i:i + 16] for i in range(0, 1000, 16)]
    assert _padding(batches, lengths) < 0.1 * _padding(random, lengths)


def test_same_seed_same_batches_and_epochs_differ():
    lengths = list(range(100))
    first = list(LengthBuckets(lengths, 8, torch.Generator().manual_seed(3)))
    again = list(LengthBuckets(lengths, 8, torch.Generator().manual_seed(3)))
    assert first == again
    sampler = LengthBuckets(lengths, 8, torch.Generator().manual_seed(3))
    assert list(sampler) != list(sampler)  # a new order each epoch


def test_train_loader_buckets_texts_by_length():
    texts = ["x" * n for n in (3, 300, 4, 310, 5, 320, 6, 330)]
    pairs = list(zip(texts, range(8)))
    loader = train_loader(pairs, 4, torch.Generator().manual_seed(0), lambda b: [len(t) for t, _ in b],
                          lengths=[len(t) for t in texts])
    assert sorted(max(b) for b in loader) == [6, 330]  # short texts together, long ones together
