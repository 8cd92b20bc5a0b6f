"""The contrastive (SetFit) strategy on the tiny BERT: pairs, training, determinism, what it must not touch."""

from __future__ import annotations

import time

import pytest
import torch

import headstart
from headstart.workflows.pipeline import config_for, fit_prepared, prepare
from headstart.workflows.runtime import Runtime
from headstart.training.engine import TrainSettings
from headstart.core.errors import ConfigError
from headstart.features.cache import Extraction, FeatureCache
from headstart.training.heads import Classifier
from headstart.tasks import SingleLabel
from headstart.strategies import Contrastive, FitContext, make_strategy
from headstart.strategies.contrastive import pair_loss

FAST = {"steps": 3}


def fit_contrastive(backbone, data, tmp_path, seed: int = 0, **options):
    """``Contrastive(**options).fit`` on ``data`` split as ``fit`` splits it, on the CPU in fp32."""
    cfg = config_for(backbone, "contrastive", {"seed": seed})
    splits, backbone = prepare(data, backbone, cfg)
    task = SingleLabel(splits.classes)
    targets = {name: task.targets(ds.labels) for name, ds in (("train", splits.train), ("val", splits.val))}
    cpu = torch.device("cpu")
    ctx = FitContext(targets, FeatureCache(tmp_path), Extraction(cpu, progress=False), cpu, "fp32",
                     TrainSettings(seed=seed, task=task, batch_size=16), progress=False, task=task)
    return Contrastive(**{**FAST, **options}).fit(backbone, splits, ctx)


def test_pair_loss_weighs_positive_and_negative_pairs_equally():
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    loss_fn = CosineSimilarityLoss(torch.nn.Identity())
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    cos = torch.nn.functional.cosine_similarity(embeddings[:, None], embeddings[None], dim=-1)
    positive = ((cos[0, 1] - 1) ** 2 + (cos[2, 3] - 1) ** 2) / 2  # 2 positive pairs
    negative = (cos[0, 2] ** 2 + cos[0, 3] ** 2 + cos[1, 2] ** 2 + cos[1, 3] ** 2) / 4  # 4 negative pairs
    assert float(pair_loss(loss_fn, embeddings, labels)) == pytest.approx(float(positive + negative) / 2)
    only_negative = float(pair_loss(loss_fn, embeddings[1:3], labels[1:3]))  # one pair, of two classes
    assert only_negative == pytest.approx(float(cos[1, 2] ** 2))


def test_contrastive_fits_saves_and_predicts_like_any_run(tiny_text_dir, text_csv, tmp_path):
    out = tmp_path / "run"
    result = headstart.fit(str(text_csv), str(tiny_text_dir), "contrastive", out=str(out), progress=False)
    model = result.predictor.model
    assert isinstance(model, Classifier) and result.strategy == "contrastive"
    assert result.metrics["trainable_params"] == sum(p.numel() for p in model.parameters())
    info = result.info
    assert info["steps"] == 60 and info["pairs"] == 60 * 120 and info["stopped"] is None  # 16 of 24 texts a step
    assert info["C"] in headstart.training.heads.DEFAULT_CS
    texts = ["The keeper saved a penalty", "Fold the cream into the batter"]
    saved = headstart.load_run(out).predict(texts)
    assert [p["label"] for p in saved] == [p["label"] for p in result.predict(texts)]
    for loaded, fitted in zip(saved, result.predict(texts)):
        assert loaded["probabilities"] == pytest.approx(fitted["probabilities"], abs=1e-5)


def test_contrastive_is_deterministic_and_leaves_backbone_and_global_rng_alone(text_backbone, text_pairs, tmp_path):
    before = {k: v.clone() for k, v in text_backbone.module.state_dict().items()}
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    first = fit_contrastive(text_backbone, text_pairs, tmp_path, seed=3)
    assert torch.equal(torch.get_rng_state(), rng_before)
    second = fit_contrastive(text_backbone, text_pairs, tmp_path, seed=3)
    other = fit_contrastive(text_backbone, text_pairs, tmp_path, seed=4)
    a, b, c = (r.model.state_dict() for r in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    after = text_backbone.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    tuned = first.model.backbone.state_dict()
    assert any(not torch.equal(before[k], tuned[k]) for k in before if k.endswith("weight"))  # the encoder trained


def test_a_passed_deadline_stops_after_one_step(text_backbone, text_pairs):
    cfg = config_for(text_backbone, "contrastive", {})
    splits, backbone = prepare(text_pairs, text_backbone, cfg)
    runtime = Runtime.from_config(cfg, progress=False).until(time.perf_counter())
    result = fit_prepared(splits, backbone, cfg, Contrastive(**FAST), runtime)
    assert result.info["steps"] == 1 and result.info["stopped"] == "budget"
    assert result.metrics["val"]["accuracy"] >= 0.0  # still a complete, scored model


def test_contrastive_refuses_image_models_and_names_the_alternatives(image_backbone, image_folder):
    with pytest.raises(ConfigError, match="contrastive strategy is for text models.*linear, partial"):
        headstart.fit(str(image_folder), image_backbone, "contrastive", progress=False)


@pytest.mark.parametrize("options,option", [({"steps": 0}, "steps"), ({"steps": 1.5}, "steps"),
                                            ({"lr": -1e-5}, "--lr")])
def test_invalid_contrastive_options_name_the_option(options, option):
    with pytest.raises(ConfigError, match=option):
        Contrastive(**options)


def test_batch_size_and_warmup_are_the_shared_options(text_pairs, text_backbone):
    """``batch_size`` and ``warmup`` are every fit's (FitConfig's), not contrastive's own: a batch of one text
    makes no pair, and a warm-up of every step is refused like any fit's."""
    with pytest.raises(ConfigError, match="--batch-size 1"):
        headstart.fit(text_pairs, text_backbone, "contrastive", batch_size=1, progress=False, steps=1)
    with pytest.raises(ConfigError, match="--warmup"):
        headstart.fit(text_pairs, text_backbone, "contrastive", warmup=1.0, progress=False)


def test_fit_passes_the_learning_rate_and_refuses_options_it_does_not_take():
    assert make_strategy("contrastive", lr=3e-5).lr == 3e-5
    with pytest.raises(ConfigError, match="does not take unfreeze"):
        make_strategy("contrastive", unfreeze=2)
