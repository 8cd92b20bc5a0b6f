"""Partial fine-tuning's fast path: the module cut at the freeze boundary, stored activations, same training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import headstart
from headstart.training.boundary import split_at, store_activations
from headstart.data import load_labelled


def _text_batch(backbone, texts):
    inputs, _ = backbone.preprocessing.collate()([(t, 0) for t in texts])
    return inputs


@pytest.mark.parametrize("unfrozen", [1, 2])
def test_text_top_on_the_boundary_activation_is_the_whole_encoder(text_backbone, unfrozen):
    module = text_backbone.module.eval()
    split = split_at(text_backbone, module, unfrozen)
    batch = _text_batch(text_backbone, ["the striker scored twice", "bake the bread", "a much longer one " * 5])
    with torch.no_grad():
        whole = module(batch)
        act = split.frozen_part(batch)
        top = split.top.eval()({"hidden": act, "attention_mask": batch["attention_mask"]})
    assert act.shape[:2] == batch["input_ids"].shape
    torch.testing.assert_close(top, whole, rtol=0, atol=1e-6)


def test_cnn_top_shares_the_parameters_of_the_trained_groups(image_backbone):
    module = image_backbone.module.eval()
    split = split_at(image_backbone, module, 2)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(split.top.eval()(split.frozen_part(x)), module(x), rtol=0, atol=1e-6)
    groups = image_backbone.layer_groups()
    top_ids = {id(p) for p in split.top.parameters()}
    named = dict(module.named_parameters())
    assert top_ids == {id(named[n]) for g in groups[-2:] for n in g}


def test_no_cut_where_the_top_would_not_be_exactly_the_trained_groups(image_backbone, effnet_backbone):
    groups = len(image_backbone.layer_groups())
    assert split_at(image_backbone, image_backbone.module, groups) is None  # nothing frozen: nothing to cache
    assert split_at(effnet_backbone, effnet_backbone.module, 1) is None  # timm head outside the blocks


def test_store_is_a_float16_memory_map_with_each_text_at_its_own_length(text_backbone, text_pairs, tmp_path):
    texts = text_pairs[0][:7]
    split = split_at(text_backbone, text_backbone.module, 1)
    data = load_labelled((texts, ["x"] * len(texts)))
    store = store_activations(split, text_backbone, data, tmp_path, torch.device("cpu"), "fp32", batch_size=3,
                              progress=False)
    lengths = text_backbone.preprocessing.lengths(texts)
    assert isinstance(store.rows, np.memmap) and store.rows.dtype == np.float16
    assert list(store.counts) == lengths and store.rows.shape == (sum(lengths), 32)
    assert store.path.stat().st_size == sum(lengths) * 32 * 2
    batch = store.batch([0, 5])
    assert batch["hidden"].shape[1] == max(lengths[0], lengths[5])  # padded to the batch, not max_length
    with torch.no_grad():
        direct = split.frozen_part(_text_batch(text_backbone, [texts[5]]))[0]
    np.testing.assert_allclose(batch["hidden"][1, :lengths[5]].numpy(), direct.numpy(), atol=2e-3)


def test_partial_on_stored_activations_trains_as_recomputing_does(text_csv, tiny_text_dir, tmp_path):
    """Same data order, same dropout draws: only float16 storage separates them (loss within 1e-3)."""
    runs = {}
    for cached in (True, False):
        runs[cached] = headstart.fit(str(text_csv), str(tiny_text_dir), "partial", unfreeze=1, epochs=3,
                                     batch_size=8, precision="fp32", cache_boundary=cached, progress=False,
                                     cache_dir=str(tmp_path / "cache"))
    assert runs[True].info["boundary_cached"] and not runs[False].info["boundary_cached"]
    for fast, slow in zip(runs[True].history, runs[False].history):
        assert fast["train_loss"] == pytest.approx(slow["train_loss"], abs=1e-3)
        assert fast["val_loss"] == pytest.approx(slow["val_loss"], abs=1e-3)
    assert not any((tmp_path / "cache" / "activations").iterdir())  # scratch files removed after the fit


def test_augmented_images_are_recomputed(image_folder):
    result = headstart.fit(str(image_folder), "random:mobilenetv2", "partial", image_size=32, epochs=1,
                           batch_size=8, progress=False)
    assert result.info["boundary_cached"] is False  # augmentation changes the input every epoch
    result = headstart.fit(str(image_folder), "random:mobilenetv2", "partial", image_size=32, epochs=1,
                           batch_size=8, augment=False, progress=False)
    assert result.info["boundary_cached"] is True


@pytest.mark.parametrize("device,setting,augment,modality,expected", [
    ("cpu", None, False, "image", True),    # default on CPUs
    ("cuda", None, False, "image", False),  # default off on GPUs: the frozen forward cost less than the cache
    ("cuda", True, False, "image", True),   # --cache-boundary forces it
    ("cpu", False, False, "text", False),   # --no-cache-boundary
    ("cpu", None, True, "image", False),    # augmented images differ every epoch
    ("cpu", None, True, "text", True),      # texts are never augmented
])
def test_when_the_boundary_is_cached(text_backbone, image_backbone, device, setting, augment, modality, expected):
    from headstart.strategies.finetune import _can_cache

    backbone = text_backbone if modality == "text" else image_backbone
    assert _can_cache(backbone, setting, augment, torch.device(device)) is expected
