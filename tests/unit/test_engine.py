"""The training loop's pieces: train/eval modes of frozen parts, optimizer groups, the LR schedule."""

from __future__ import annotations

import copy

import pytest
from torch import nn

from headstart.training.engine import TrainSettings, freeze, param_groups, set_train_mode, warmup_cosine
from headstart.training.heads import Classifier


def classifier_with_last_groups(backbone, unfrozen: int) -> tuple[Classifier, list[list[str]]]:
    """A Classifier around a copy of ``backbone`` with only the last ``unfrozen`` groups and the head trainable."""
    model = Classifier(copy.deepcopy(backbone.module), nn.Linear(backbone.feature_dim, 3))
    chosen = backbone.layer_groups()[-unfrozen:]
    trainable = {f"backbone.{n}" for g in chosen for n in g} | {"head.weight", "head.bias"}
    freeze(model, trainable)
    return model, chosen


def group_of_module(backbone, module_name: str) -> int | None:
    """Index of the layer group whose parameters this module (``backbone.``-less name) owns."""
    for i, group in enumerate(backbone.layer_groups()):
        if any(n.rpartition(".")[0] == module_name for n in group):
            return i
    return None


def test_freeze_marks_exactly_the_named_parameters_and_counts_them(image_backbone):
    model, chosen = classifier_with_last_groups(image_backbone, 2)
    names = {f"backbone.{n}" for g in chosen for n in g} | {"head.weight", "head.bias"}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == names
    count = freeze(model, names)
    assert count == sum(p.numel() for n, p in model.named_parameters() if n in names)


def test_set_train_mode_keeps_frozen_batchnorm_in_eval_and_trained_in_train(image_backbone):
    model, _ = classifier_with_last_groups(image_backbone, 2)
    model.eval()
    set_train_mode(model)
    n_groups = len(image_backbone.layer_groups())
    seen = {"frozen": 0, "trained": 0}
    for name, module in model.backbone.named_modules():
        if not isinstance(module, nn.BatchNorm2d):
            continue
        group = group_of_module(image_backbone, name)
        if group >= n_groups - 2:
            assert module.training, name
            seen["trained"] += 1
        else:
            assert not module.training, name
            seen["frozen"] += 1
    assert seen["frozen"] > 0 and seen["trained"] > 0
    assert model.head.training


def test_set_train_mode_turns_off_dropout_only_in_frozen_blocks(text_backbone):
    model, _ = classifier_with_last_groups(text_backbone, 1)  # only encoder.layer.1 trains
    set_train_mode(model)
    dropouts = {n: m for n, m in model.backbone.named_modules() if isinstance(m, nn.Dropout)}
    frozen = [n for n in dropouts if ".embeddings." in f"{n}." or ".layer.0." in n]
    trained = [n for n in dropouts if ".layer.1." in n]
    assert frozen and trained
    assert not any(dropouts[n].training for n in frozen)
    assert all(dropouts[n].training for n in trained)


def test_set_train_mode_trains_everything_when_nothing_is_frozen(image_backbone):
    model = Classifier(copy.deepcopy(image_backbone.module), nn.Linear(image_backbone.feature_dim, 2))
    model.eval()
    set_train_mode(model)
    assert all(m.training for m in model.modules())


def test_param_groups_give_layerwise_learning_rates(image_backbone):
    model, chosen = classifier_with_last_groups(image_backbone, 3)
    s = TrainSettings(lr=1e-3, head_lr=1e-2, lr_decay=0.5, weight_decay=0.05)
    groups = param_groups(model, chosen, "backbone.", s)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert {lr_of[id(p)] for p in model.head.parameters()} == {1e-2}
    params = dict(model.backbone.named_parameters())
    for depth, group in enumerate(reversed(chosen)):  # depth 0: the group next to the head
        assert [lr_of[id(params[n])] for n in group] == pytest.approx([1e-3 * 0.5 ** depth] * len(group))


def test_param_groups_hold_each_trainable_parameter_once_and_no_frozen_one(image_backbone):
    model, chosen = classifier_with_last_groups(image_backbone, 3)
    groups = param_groups(model, chosen, "backbone.", TrainSettings())
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids))
    assert set(ids) == trainable


def test_param_groups_exempt_one_dimensional_tensors_from_weight_decay(image_backbone):
    model, chosen = classifier_with_last_groups(image_backbone, 2)
    groups = param_groups(model, chosen, "backbone.", TrainSettings(weight_decay=0.05))
    for g in groups:
        for p in g["params"]:
            assert g["weight_decay"] == (0.05 if p.ndim > 1 else 0.0)
    assert any(g["weight_decay"] == 0.0 for g in groups) and any(g["weight_decay"] == 0.05 for g in groups)


def test_warmup_cosine_rises_linearly_then_decays_to_zero():
    total, warm = 100, 10
    f = warmup_cosine(total, warm / total)
    rising = [f(i) for i in range(warm)]
    assert rising == pytest.approx([(i + 1) / warm for i in range(warm)])
    assert f(warm) == pytest.approx(1.0)
    falling = [f(i) for i in range(warm, total)]
    assert all(a >= b for a, b in zip(falling, falling[1:]))
    assert falling[len(falling) // 2] == pytest.approx(0.5, abs=0.03)
    assert f(total - 1) < 0.01
    assert f(total) == pytest.approx(0.0, abs=1e-12)


def test_warmup_cosine_without_warmup_starts_at_full_rate():
    f = warmup_cosine(50, 0.0)
    assert f(0) == pytest.approx(1.0)
    assert f(49) < 0.01


def test_l2sp_penalty_equals_an_independent_computation_on_a_known_perturbation(image_backbone):
    import numpy as np
    import torch

    from headstart.training.engine import l2sp_penalty

    model, chosen = classifier_with_last_groups(image_backbone, 2)
    s = TrainSettings(l2sp=0.3, weight_decay=0.05)
    groups = param_groups(model, chosen, "backbone.", s)
    anchored = [(p, p.detach().clone()) for g in groups if g["name"] != "head" for p in g["params"]]
    generator = torch.Generator().manual_seed(0)
    deltas = [torch.randn(p.shape, generator=generator) * 0.01 for p, _ in anchored]
    with torch.no_grad():
        for (p, _), d in zip(anchored, deltas):
            p.add_(d)
        model.head.weight.add_(1.0)  # the head is never anchored
    expected = 0.3 / 2 * sum(float(np.sum(d.double().numpy() ** 2)) for d in deltas)
    assert l2sp_penalty(anchored, 0.3).item() == pytest.approx(expected, rel=1e-5)
    # L2-SP replaces plain weight decay on the backbone; the head keeps its decay.
    assert {g["weight_decay"] for g in groups if g["name"] != "head"} == {0.0}
    assert max(g["weight_decay"] for g in groups if g["name"] == "head") == 0.05
    assert sum(p.numel() for p, _ in anchored) == sum(model.get_parameter(f"backbone.{n}").numel()
                                                     for g in chosen for n in g)


@pytest.mark.parametrize("strategy", ["partial", "full"])
def test_l2sp_keeps_fine_tuned_weights_closer_to_the_pretrained_ones(text_backbone, text_pairs, strategy):
    import headstart

    pretrained = {k: v.clone() for k, v in text_backbone.module.state_dict().items()}

    def distance(l2sp: float) -> float:
        result = headstart.fit(text_pairs, text_backbone, strategy, unfreeze=1 if strategy == "partial" else None,
                               epochs=2, patience=5, batch_size=8, lr=1e-3, l2sp=l2sp, progress=False)
        after = result.predictor.model.backbone.state_dict()
        if l2sp:
            assert all(row["l2sp_penalty"] > 0 for row in result.history)
        return sum(float(((after[k] - pretrained[k]) ** 2).sum()) for k in pretrained
                   if after[k].is_floating_point()) ** 0.5

    plain, anchored = distance(0.0), distance(100.0)
    assert plain > 0 and anchored / plain < 0.4


def test_train_leaves_the_callers_random_generators_as_they_were(text_backbone, text_pairs):
    """The loop draws from generators seeded with the fit's seed; the caller's torch, numpy and Python states
    are given back (it used to reseed the global torch generator), and the seed alone decides the result."""
    import random

    import numpy as np
    import torch

    from headstart.data import load_data
    from headstart.training.engine import train

    splits = load_data(text_pairs)
    index = {c: i for i, c in enumerate(splits.classes)}
    targets = {name: np.array([index[y] for y in ds.labels]) for name, ds in (("train", splits.train),
                                                                              ("val", splits.val))}

    def run() -> list[float]:
        torch.manual_seed(99)  # a fresh head, the same each time
        model = Classifier(copy.deepcopy(text_backbone.module), nn.Linear(text_backbone.feature_dim, len(index)))
        groups = param_groups(model, text_backbone.layer_groups()[-1:], "backbone.", TrainSettings())
        freeze(model, {p for g in text_backbone.layer_groups()[-1:] for p in ["backbone." + n for n in g]}
               | {"head.weight", "head.bias"})
        torch.manual_seed(123)
        np.random.seed(7)
        random.seed(5)
        before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
        outcome = train(model, text_backbone, splits.train, splits.val, targets, groups,
                        TrainSettings(epochs=2, batch_size=8, seed=3), torch.device("cpu"), "fp32", progress=False)
        assert torch.equal(torch.get_rng_state(), before[0])
        assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]
        return [row["train_loss"] for row in outcome.history]

    assert run() == run()
