"""The feature cache: hits skip the backbone, any subset hits, corruption is caught, settings are keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import headstart
from headstart.features.cache import Extraction, FeatureCache, default_cache_dir


def linear(data, backbone, cache: Path, **options):
    return headstart.fit(data, backbone, "linear", progress=False, cache_dir=str(cache), **options)


def shards(cache: Path) -> list[Path]:
    return sorted((cache / "features").rglob("*.safetensors"))


def probabilities(result, items) -> np.ndarray:
    return np.array([[r["probabilities"][c] for c in result.classes] for r in result.predict(items)])


def test_second_linear_fit_does_no_forward_pass_and_gives_identical_metrics(text_backbone, text_csv, tmp_path):
    first = linear(str(text_csv), text_backbone, tmp_path / "cache")
    second = linear(str(text_csv), text_backbone, tmp_path / "cache")
    assert first.metrics["backbone_forward_items"] == 30  # every distinct text, once
    assert second.metrics["backbone_forward_items"] == 0
    assert second.metrics["val"] == first.metrics["val"]
    assert second.info == first.info


def test_a_different_split_of_seen_data_is_a_full_hit(text_backbone, text_csv, tmp_path):
    linear(str(text_csv), text_backbone, tmp_path / "cache")
    other = linear(str(text_csv), text_backbone, tmp_path / "cache", seed=3, val_fraction=0.4)
    assert other.split["train_origins"] != linear(str(text_csv), text_backbone, tmp_path / "c2").split["train_origins"]
    assert other.metrics["backbone_forward_items"] == 0


def test_a_subset_hits_and_only_new_items_are_forwarded(text_backbone, text_pairs, tmp_path):
    items, labels = text_pairs
    half = [i for i in range(len(items)) if i % 2 == 0]
    first = linear(([items[i] for i in half], [labels[i] for i in half]), text_backbone, tmp_path / "cache")
    assert first.metrics["backbone_forward_items"] == len(half)
    everything = linear(text_pairs, text_backbone, tmp_path / "cache")
    assert everything.metrics["backbone_forward_items"] == len(items) - len(half)
    again = linear(([items[i] for i in half[:10]], [labels[i] for i in half[:10]]), text_backbone, tmp_path / "cache")
    assert again.metrics["backbone_forward_items"] == 0


def test_cached_features_equal_freshly_computed_ones(text_backbone, text_pairs, tmp_path):
    data = headstart.load_data(text_pairs).train
    run = Extraction(torch.device("cpu"), "fp32", batch_size=8, progress=False)
    cache = FeatureCache(tmp_path / "cache")
    fresh = cache.features(text_backbone, data, run)
    reread = FeatureCache(tmp_path / "cache").features(text_backbone, data, run)
    assert fresh.shape == (len(data), text_backbone.feature_dim)
    np.testing.assert_array_equal(fresh, reread)
    # Rows follow the data order even though texts are batched by length.
    single = FeatureCache(tmp_path / "other").features(text_backbone, data.subset([3]), run)
    np.testing.assert_allclose(single[0], fresh[3], atol=1e-5)


def test_one_corrupt_shard_forwards_only_its_items_again(text_backbone, text_csv, tmp_path):
    cache = tmp_path / "cache"
    clean = linear(str(text_csv), text_backbone, cache)
    first, *_ = shards(cache)
    first.write_bytes(first.read_bytes()[:-7])
    rebuilt = linear(str(text_csv), text_backbone, cache)
    assert 0 < rebuilt.metrics["backbone_forward_items"] < clean.metrics["backbone_forward_items"]
    assert rebuilt.metrics["val"] == clean.metrics["val"]


@pytest.mark.parametrize("damage", ["truncate", "flip-last-byte", "flip-header"])
def test_corrupt_shards_are_detected_rebuilt_and_give_the_clean_result(text_backbone, text_csv, tmp_path, damage):
    cache = tmp_path / "cache"
    clean = linear(str(text_csv), text_backbone, cache)
    damaged = shards(cache)  # one shard per extraction (train, then val)
    assert damaged
    for shard in damaged:
        payload = bytearray(shard.read_bytes())
        if damage == "truncate":
            payload = payload[: len(payload) // 2]
        elif damage == "flip-last-byte":
            payload[-1] ^= 0xFF
        else:
            payload[10] ^= 0xFF
        shard.write_bytes(bytes(payload))
    rebuilt = linear(str(text_csv), text_backbone, cache)
    assert rebuilt.metrics["backbone_forward_items"] == clean.metrics["backbone_forward_items"] > 0
    assert rebuilt.metrics["val"] == clean.metrics["val"]
    texts = ["a goal in the last minute", "knead the dough"]
    np.testing.assert_array_equal(probabilities(rebuilt, texts), probabilities(clean, texts))
    # The damaged shard was replaced by a good one: the next fit is a full hit again.
    assert linear(str(text_csv), text_backbone, cache).metrics["backbone_forward_items"] == 0


def test_changing_image_size_is_a_miss(image_backbone, image_folder, tmp_path):
    cache = tmp_path / "cache"
    first = linear(str(image_folder), image_backbone, cache)
    same = linear(str(image_folder), image_backbone, cache)
    bigger = dataclasses.replace(image_backbone, preprocessing=image_backbone.preprocessing.with_size(40))
    resized = linear(str(image_folder), bigger, cache)
    assert first.metrics["backbone_forward_items"] == 36
    assert same.metrics["backbone_forward_items"] == 0
    assert resized.metrics["backbone_forward_items"] == 36


def test_different_weights_are_a_miss(image_folder, tmp_path):
    torch.manual_seed(1)
    a = headstart.load_backbone("random:test_efficientnet", image_size=32)
    torch.manual_seed(2)
    b = headstart.load_backbone("random:test_efficientnet", image_size=32)
    cache = tmp_path / "cache"
    assert linear(str(image_folder), a, cache).metrics["backbone_forward_items"] == 36
    assert linear(str(image_folder), b, cache).metrics["backbone_forward_items"] == 36
    assert linear(str(image_folder), a, cache).metrics["backbone_forward_items"] == 0


def test_identical_image_files_are_forwarded_once(image_backbone, tmp_path):
    from PIL import Image

    paths = []
    for i in range(6):
        p = tmp_path / f"copy{i}.png"
        Image.new("RGB", (24, 24), (10, 200, 10)).save(p)
        paths.append(str(p))
    data = headstart.load_items(paths)
    cache = FeatureCache(tmp_path / "cache")
    feats = cache.features(image_backbone, data, Extraction(torch.device("cpu"), "fp32", progress=False))
    assert cache.forwarded == 1
    assert np.all(feats == feats[0])


def test_cache_dir_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "from-env"))
    assert default_cache_dir() == tmp_path / "from-env"
    assert FeatureCache().root == tmp_path / "from-env"


def test_fit_without_cache_dir_writes_to_headstart_cache(text_backbone, text_pairs, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "env-cache"))
    headstart.fit(text_pairs, text_backbone, "linear", progress=False)
    assert shards(tmp_path / "env-cache")


def test_clear_removes_every_cached_file(text_backbone, text_pairs, tmp_path):
    linear(text_pairs, text_backbone, tmp_path / "cache")
    assert shards(tmp_path / "cache")
    done = FeatureCache(tmp_path / "cache").clear()
    assert done.removed >= 2 and done.kept == []  # a shard and its checksum record
    assert shards(tmp_path / "cache") == []


def test_a_split_reads_only_the_shards_that_hold_its_items(text_backbone, text_pairs, tmp_path):
    """Rows are verified and copied from the shards that hold them; other data's shards are not read."""
    items, labels = text_pairs
    run = Extraction(torch.device("cpu"), "fp32", batch_size=8, progress=False)
    cache = FeatureCache(tmp_path / "cache")
    first = headstart.load_items(list(items[:10]))
    other = headstart.load_items(list(items[10:20]))
    expected = cache.features(text_backbone, first, run)
    cache.features(text_backbone, other, run)
    both = shards(tmp_path / "cache")
    assert len(both) == 2
    for shard in both:  # damage the data of both; only the shard of ``first`` is read, found bad, rebuilt
        payload = bytearray(shard.read_bytes())
        payload[-1] ^= 0xFF
        shard.write_bytes(bytes(payload))
    again = FeatureCache(tmp_path / "cache")
    np.testing.assert_allclose(again.features(text_backbone, first, run), expected, atol=1e-5)
    assert again.forwarded == 10
    assert len(shards(tmp_path / "cache")) == 2  # the other data's damaged shard was not read, so still there
