"""Integration: compare, advise and fit --strategy auto on the packaged weights and real data."""

from __future__ import annotations

import numpy as np
import pytest
from test_report_browser import assert_painted, chromium, screenshot  # noqa: F401  (chromium is a fixture)

import headstart
from headstart.workflows.advise import advise
from headstart.workflows.compare import compare
from headstart.data import bbc_news_folder, load_labelled, mnist_folder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("feature-cache"))


@pytest.fixture(scope="module")
def bbc_300():
    """60 BBC News articles per topic, as an (items, labels) pair."""
    data = load_labelled(bbc_news_folder())
    rng = np.random.default_rng(0)
    idx = []
    for c in data.classes:
        idx += list(rng.permutation([i for i, y in enumerate(data.labels) if y == c])[:60])
    return [data.items[i] for i in idx], [data.labels[i] for i in idx]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return mnist_folder(tmp_path_factory.mktemp("mnist") / "mnist-60", per_class=60)


def test_advise_ranks_pretrained_minilm_above_a_random_encoder_of_the_same_shape(bbc_300, cache_dir):
    advice = advise(bbc_300, ["random:minilm-l6", "minilm-l6"], budget="10m", cache_dir=cache_dir, progress=False)
    pretrained, random = advice.ranking
    assert pretrained["model"] == "minilm-l6" and random["model"] == "random:minilm-l6"
    assert pretrained["logme"] > random["logme"]
    assert pretrained["probe"]["mean"] > random["probe"]["mean"] + 0.1
    assert advice.recommendation["model"] == "minilm-l6"


def test_auto_keeps_linear_where_the_probe_is_strong_and_flat(bbc_300, cache_dir):
    result = headstart.fit(bbc_300, "minilm-l6", "auto", budget="10m", cache_dir=cache_dir, progress=False)
    assert result.info["auto"]["recommended"] == "linear"
    assert result.strategy == "linear"
    assert result.metrics["val"]["accuracy"] >= 0.9


def test_auto_fine_tunes_on_mnist_when_the_budget_allows(digits, cache_dir):
    result = headstart.fit(digits, "mobilenetv2", "auto", budget="8m", image_size=64, epochs=4, hflip=False,
                           cache_dir=cache_dir, progress=False)
    auto = result.info["auto"]
    assert auto["recommended"] in {"partial", "lp-ft", "full"}, auto["advice"]["recommendation"]["reasons"]
    assert auto["kept"] == result.strategy
    assert set(auto["val_accuracy"]) == {"linear", *auto["advice"]["recommendation"]["candidates"]}
    assert result.metrics["val"]["accuracy"] == max(auto["val_accuracy"].values())


def test_auto_keeps_the_probe_when_its_fine_tune_collapses(digits, cache_dir):
    # a learning rate far too high wrecks the recommended fine-tune: auto must notice and keep the probe
    result = headstart.fit(digits, "mobilenetv2", "auto", budget="8m", image_size=64, epochs=2, hflip=False,
                           lr=3.0, head_lr=3.0, cache_dir=cache_dir, progress=False)
    auto = result.info["auto"]
    assert auto["recommended"] in {"partial", "lp-ft", "full"}, auto["advice"]["recommendation"]["reasons"]
    assert result.strategy == auto["kept"] == "linear"
    assert auto["val_accuracy"][auto["recommended"]] <= auto["val_accuracy"]["linear"]  # lp-ft may keep its probe


def test_compare_on_mnist_writes_a_report_that_paints_in_chromium(digits, cache_dir, chromium, tmp_path):  # noqa: F811
    c = compare(digits, "mobilenetv2", ("linear", "partial"), seeds=2, curve=(0.25, 1.0), image_size=64, epochs=3,
                unfreeze=3, hflip=False, test_fraction=0.2, cache_dir=cache_dir, progress=False)
    rows = {r["strategy"]: r for r in c.rows}
    assert rows["linear"]["status"] == rows["partial"]["status"] == "done"
    for row in rows.values():
        assert row["val_accuracy"]["n"] == 2 and row["test_accuracy"]["mean"] > 0.5
    out = c.save(tmp_path / "cmp")
    pixels = screenshot(chromium, out / "report.html", tmp_path)
    assert_painted(pixels, min_ink=0.06)
