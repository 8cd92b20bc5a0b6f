"""Strategies: what each one trains, what it must leave exactly as it was, and its options."""

from __future__ import annotations

import pytest
import torch

import headstart
from headstart.core.errors import ConfigError


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def owners(names) -> set[str]:
    """The modules (dotted prefixes) that own the named parameters."""
    return {n.rpartition(".")[0] for n in names}


def split_state(backbone: headstart.Backbone, unfrozen: int) -> tuple[list[str], list[str]]:
    """State-dict keys (parameters and buffers) of the frozen and of the trained modules."""
    groups = backbone.layer_groups()
    trained = owners(n for g in groups[len(groups) - unfrozen:] for n in g)
    keys = list(backbone.module.state_dict())
    return ([k for k in keys if k.rpartition(".")[0] not in trained],
            [k for k in keys if k.rpartition(".")[0] in trained])


def fit_image(backbone, folder, strategy, **options):
    return headstart.fit(str(folder), backbone, strategy, progress=False, epochs=2, batch_size=8,
                         **options)


@pytest.mark.parametrize("strategy,unfreeze", [("partial", 2), ("lp-ft", 1)])
def test_frozen_groups_keep_every_parameter_and_buffer_bit_identical(image_backbone, image_folder,
                                                                     strategy, unfreeze):
    before = snapshot(image_backbone.module)
    result = fit_image(image_backbone, image_folder, strategy, unfreeze=unfreeze, bn="train")
    after = result.predictor.model.backbone.state_dict()
    frozen, trained = split_state(image_backbone, unfreeze)
    # The frozen part holds BatchNorm layers, so this checks running statistics too.
    assert any(k.endswith("running_mean") for k in frozen) and any(k.endswith("num_batches_tracked") for k in frozen)
    changed = [k for k in frozen if not torch.equal(before[k], after[k].cpu())]
    assert changed == []
    # ...while the trained groups did move, weights and BatchNorm statistics alike (unless LP-FT kept its
    # starting model, the probe's, because no epoch beat it: then nothing moved at all).
    moved = [k for k in trained if not torch.equal(before[k], after[k].cpu())]
    kept_start = result.info["best_epoch"] == 0
    assert any(k.endswith("weight") for k in moved) != kept_start
    assert any(k.endswith("running_mean") for k in moved) != kept_start


def test_partial_trains_exactly_the_last_groups_and_the_head(image_backbone, image_folder):
    result = fit_image(image_backbone, image_folder, "partial", unfreeze=2)
    groups = image_backbone.layer_groups()
    params = dict(image_backbone.module.named_parameters())
    expected = sum(params[n].numel() for g in groups[-2:] for n in g)
    head = result.predictor.model.head
    expected += sum(p.numel() for p in head.parameters())
    assert result.metrics["trainable_params"] == expected
    assert result.info["unfrozen_groups"] == 2 and result.info["layer_groups"] == 8
    assert len(result.history) >= 1


def test_lpft_starts_from_the_probe_head_and_moves_it(image_backbone, image_folder, tmp_path):
    cache = str(tmp_path / "cache")  # fp32: LP-FT's probe uses features in the training precision
    probe = fit_image(image_backbone, image_folder, "linear", cache_dir=cache, precision="fp32")
    lpft = fit_image(image_backbone, image_folder, "lp-ft", unfreeze=1, cache_dir=cache, precision="fp32")
    # The probe inside LP-FT is the same probe (same cached features, same C) ...
    assert lpft.info["probe"]["C"] == probe.info["C"]
    assert lpft.metrics["backbone_forward_items"] == 0
    # ... fine-tuning starts from it (epoch 0 scores the probe's model) and keeps it unless an epoch beats it.
    assert lpft.history[0]["epoch"] == 0
    moved = not torch.equal(lpft.predictor.model.head.weight, probe.predictor.model.head.weight)
    assert moved == (lpft.info["best_epoch"] > 0)


def test_full_changes_the_first_group(image_backbone, image_folder):
    before = snapshot(image_backbone.module)
    result = fit_image(image_backbone, image_folder, "full")
    after = result.predictor.model.backbone.state_dict()
    first = image_backbone.layer_groups()[0]
    assert any(not torch.equal(before[n], after[n].cpu()) for n in first)
    assert result.metrics["trainable_share"] == pytest.approx(1.0)


@pytest.mark.parametrize("strategy,options", [
    ("linear", {}), ("partial", {"unfreeze": 3}), ("full", {}), ("lp-ft", {"unfreeze": 2}),
])
def test_strategies_leave_the_original_backbone_untouched(image_backbone, image_folder, strategy, options):
    before = snapshot(image_backbone.module)
    fit_image(image_backbone, image_folder, strategy, **options)
    after = image_backbone.module.state_dict()
    assert before.keys() == after.keys()
    assert [k for k in before if not torch.equal(before[k], after[k].cpu())] == []
    assert all(p.requires_grad for p in image_backbone.module.parameters())


def test_fine_tuned_model_is_a_copy_and_linear_shares_the_frozen_backbone(image_backbone, image_folder):
    partial = fit_image(image_backbone, image_folder, "partial", unfreeze=1)
    linear = fit_image(image_backbone, image_folder, "linear")
    assert partial.predictor.model.backbone is not image_backbone.module
    assert linear.predictor.model.backbone is image_backbone.module


def test_text_partial_freezes_embeddings_and_first_block(text_backbone, text_pairs):
    before = snapshot(text_backbone.module)
    result = headstart.fit(text_pairs, text_backbone, "partial", unfreeze=1, epochs=2, batch_size=8,
                           lr=1e-3, progress=False)
    after = result.predictor.model.backbone.state_dict()
    frozen, trained = split_state(text_backbone, 1)
    assert any(".embeddings." in k for k in frozen) and any(".layer.0." in k for k in frozen)
    assert [k for k in frozen if not torch.equal(before[k], after[k])] == []
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    assert all(torch.equal(before[k], v) for k, v in text_backbone.module.state_dict().items())


def test_unfreeze_beyond_the_layer_groups_names_the_group_count(text_backbone, text_pairs):
    with pytest.raises(ConfigError, match="3 layer groups"):
        headstart.fit(text_pairs, text_backbone, "partial", unfreeze=4, epochs=1, progress=False)


@pytest.mark.parametrize("strategy,options,option", [
    ("partial", {"unfreeze": 0}, "--unfreeze"),
    ("lp-ft", {"unfreeze": 0}, "--unfreeze"),
    ("partial", {"lr_decay": 1.5}, "--lr-decay"),
    ("full", {"lr_decay": 0.0}, "--lr-decay"),
])
def test_invalid_strategy_options_name_the_option(text_pairs, strategy, options, option):
    with pytest.raises(ConfigError, match=option):
        headstart.fit(text_pairs, "random:no-model-needed", strategy, progress=False, **options)


def test_training_history_has_one_row_per_epoch_with_losses(text_backbone, text_pairs):
    result = headstart.fit(text_pairs, text_backbone, "full", epochs=2, patience=5, batch_size=8, progress=False)
    assert [row["epoch"] for row in result.history] == [1, 2]
    for row in result.history:
        assert row["train_loss"] > 0 and 0 <= row["val_accuracy"] <= 1
    assert result.info["best_epoch"] in (1, 2)
