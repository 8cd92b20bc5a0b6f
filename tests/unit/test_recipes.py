"""Fine-tuning recipes that hold on small data: LP-FT's start, the BatchNorm policy, selection on tiny
validation sets, the fine-tuned-below-the-probe warning, and the values a fit chose, recorded."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_image_folder

import headstart
from headstart.data.resolution import choose_image_size, native_size
from headstart.data import load_items
from headstart.training.lr_range import LrRange, suggest


def bn_stats(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()
            if k.endswith(("running_mean", "running_var"))}


def test_lpft_first_evaluation_equals_the_probe(image_backbone, image_folder):
    result = headstart.fit(str(image_folder), image_backbone, "lp-ft", progress=False, epochs=2, batch_size=8,
                           precision="fp32")
    start = result.history[0]
    assert start["epoch"] == 0 and "train_loss" not in start
    assert start["val_accuracy"] == result.info["probe"]["val_accuracy"]
    assert [row["epoch"] for row in result.history] == [0, 1, 2]


@pytest.mark.parametrize("strategy", ["full", "partial", "lp-ft"])
def test_frozen_batchnorm_policy_leaves_every_running_statistic_untouched(image_backbone, image_folder, strategy):
    before = bn_stats(image_backbone.module)
    frozen = headstart.fit(str(image_folder), image_backbone, strategy, progress=False, epochs=2, batch_size=8,
                           bn="frozen")
    assert frozen.info["bn"] == "frozen" and frozen.config.bn == "frozen"
    after = bn_stats(frozen.predictor.model.backbone)
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    trained = headstart.fit(str(image_folder), image_backbone, strategy, progress=False, epochs=2, batch_size=8,
                            bn="train")
    moved = bn_stats(trained.predictor.model.backbone)
    kept_start = trained.info["best_epoch"] == 0  # LP-FT kept the probe's model: nothing trained was kept
    assert any(not torch.equal(before[k], moved[k]) for k in before) != kept_start  # the check above can fail


def test_small_data_freezes_batchnorm_and_selects_on_validation_loss(image_backbone, image_folder):
    result = headstart.fit(str(image_folder), image_backbone, "full", progress=False, epochs=1, batch_size=8)
    assert result.info["bn"] == "frozen"  # 36 images: far below the policy's threshold
    assert result.info["selected_on"] == "val_loss"  # fewer than 100 validation items


def test_a_collapsed_fine_tune_says_it_lost_to_the_probe(tmp_path, image_backbone):
    folder = write_image_folder(tmp_path / "colours", per_class=40)
    result = headstart.fit(str(folder), image_backbone, "full", progress=False, epochs=2, batch_size=8,
                           lr=3.0, head_lr=3.0, out=str(tmp_path / "run"))
    assert result.metrics["probe_val_accuracy"] > result.metrics["val"]["accuracy_ci95"][1]
    [warning] = result.metrics["warnings"]
    assert warning.startswith("fine-tuning lost to the frozen probe:")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["warnings"] == [warning]
    assert "fine-tuning lost to the frozen probe" in (tmp_path / "run" / "report.html").read_text()


def test_config_json_records_the_values_the_fit_chose(tmp_path, image_folder):
    run = tmp_path / "run"
    headstart.fit(str(image_folder), "random:mobilenetv2", "partial", out=str(run), progress=False, epochs=1,
                  batch_size=8)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["image_size"] == 96  # 24 px images: not blown up to the weights' 224 px
    assert config["options"] == {"lr": 5e-4, "head_lr": 1e-3, "unfreeze": 2, "lr_decay": 0.7}
    assert config["bn"] == "frozen"
    assert headstart.FitConfig.from_dict(config).strategy_options()["lr"] == 5e-4
    assert headstart.load_run(run).backbone.preprocessing.size == 96


@pytest.mark.parametrize("native,pretrained,expected", [
    (28, 224, 96), (24, 224, 96), (64, 224, 128), (100, 224, 224), (500, 224, 224), (500, 260, 260),
    (None, 224, 224),
])
def test_image_size_follows_the_native_size(native, pretrained, expected):
    assert choose_image_size(native, pretrained) == expected
    assert choose_image_size(native, pretrained, frozen=True) == pretrained  # linear: features extracted once


def test_linear_feeds_small_images_at_the_weights_own_size(tmp_path, image_folder):
    result = headstart.fit(str(image_folder), "random:mobilenetv2", "linear", progress=False,
                           cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "run"))
    assert result.config.image_size == 224  # 24 px images: the zoo's probes scored better at 224 than at 96
    assert headstart.load_run(tmp_path / "run").backbone.preprocessing.size == 224


def test_native_size_reads_the_median_short_side(image_folder):
    assert native_size(load_items(str(image_folder))) == 24


def test_range_test_suggests_a_tenth_of_the_minimum_and_nothing_on_a_flat_curve():
    lrs = [1e-6 * 10 ** (i / 4) for i in range(20)]
    falling = [2.0 - 0.1 * i for i in range(15)] + [2.0, 5.0, 9.0, 20.0, 40.0]
    found = suggest(LrRange(lrs, falling))
    assert found.suggestion == pytest.approx(lrs[14] / 10)
    flat = suggest(LrRange(lrs, [2.0 + 0.001 * (i % 3) for i in range(20)]))
    assert flat.suggestion is None and flat.reason.startswith("flat curve")


def test_find_lr_scales_the_rates_records_them_and_restores_the_weights(tmp_path, image_backbone, image_folder):
    run = tmp_path / "run"
    before = {k: v.clone() for k, v in image_backbone.module.state_dict().items()}
    result = headstart.fit(str(image_folder), image_backbone, "full", progress=False, epochs=1, batch_size=8,
                           find_lr=True, out=str(run))
    found = result.info["lr_range"]
    assert len(found["lrs"]) == len(found["losses"]) >= 5 and found["reason"]
    assert result.info["lr"] == pytest.approx(5e-4 * found["factor"])
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["options"]["lr"] == pytest.approx(result.info["lr"]) and config["find_lr"] is False
    assert all(torch.equal(v, image_backbone.module.state_dict()[k]) for k, v in before.items())


def test_batches_shrink_on_tiny_data_so_an_epoch_has_several_steps(text_backbone, text_pairs, tmp_path):
    run = tmp_path / "run"
    result = headstart.fit(text_pairs, text_backbone, "partial", progress=False, epochs=1, batch_size=32,
                           out=str(run))
    assert result.info["batch_size"] == 8  # 24 training texts: 3 steps at 8, not 1 at 32
    assert json.loads((run / "config.json").read_text())["config"]["batch_size"] == 8
    smaller = headstart.fit(text_pairs, text_backbone, "partial", progress=False, epochs=1, batch_size=4)
    assert smaller.info["batch_size"] == 4  # a batch below the floor is the user's choice: kept
