"""LoRA: what it trains, what it leaves alone, what it merges, and what a run directory keeps of it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import headstart
from headstart.training.adapters import Adapter
from headstart.training.engine import set_train_mode
from headstart.core.errors import ConfigError
from headstart.training.heads import Classifier
from headstart.strategies import LoRA

BERT_LAYERS = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
               "intermediate.dense", "output.dense"}


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def lora_params(module: nn.Module, rank: int) -> int:
    """Elements of A (rank x in[xk]) and B (out x rank[x1]) for one adapted layer, computed independently."""
    if isinstance(module, nn.Linear):
        return rank * (module.in_features + module.out_features)
    kh, kw = module.kernel_size
    return rank * module.in_channels * kh * kw + module.out_channels * rank


@pytest.fixture
def capture_before_merge(monkeypatch):
    """Record the injected model just before peft merges it: trainable names and every base weight."""
    import peft

    seen = {}
    original = peft.LoraModel.merge_and_unload

    def spy(self, *args, **kwargs):
        seen["trainable"] = {n for n, p in self.model.named_parameters() if p.requires_grad}
        seen["state"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return original(self, *args, **kwargs)

    monkeypatch.setattr(peft.LoraModel, "merge_and_unload", spy)
    return seen


def test_default_text_targets_are_the_bert_attention_and_dense_layers(text_backbone):
    targets, rule = text_backbone.family.lora_targets(text_backbone, text_backbone.module)
    assert rule == "hf-encoder-linear"
    assert {t.split(".", 4)[-1] for t in targets} == BERT_LAYERS  # model.encoder.layer.N.<layer>
    assert len(targets) == 6 * 2  # two blocks
    assert all(t.startswith("model.encoder.layer.") for t in targets)


def test_default_targets_exist_on_the_packaged_minilm():
    minilm = headstart.load_backbone("minilm-l6")
    targets, _ = minilm.family.lora_targets(minilm, minilm.module)
    assert len(targets) == 6 * 6
    assert {t.split(".", 4)[-1] for t in targets} == BERT_LAYERS


def test_default_image_targets_are_later_undivided_convs(image_backbone, effnet_backbone):
    targets, rule = image_backbone.family.lora_targets(image_backbone, image_backbone.module)
    modules = dict(image_backbone.module.named_modules())
    assert rule == "cnn-later-conv" and targets
    assert all(isinstance(modules[t], nn.Conv2d) and modules[t].groups == 1 for t in targets)
    later = {n.rpartition(".")[0] for g in image_backbone.layer_groups()[4:] for n in g}
    assert set(targets) == {n for n in later if isinstance(modules[n], nn.Conv2d) and modules[n].groups == 1}
    # EfficientNet: 3x3 expansion and 1x1 convs of the later blocks and the head conv; no SE, no depthwise.
    eff, _ = effnet_backbone.family.lora_targets(effnet_backbone, effnet_backbone.module)
    assert "conv_head" in eff and "blocks.2.0.conv_exp" in eff and "blocks.4.0.conv_pwl" in eff
    assert not any(".se." in t or t.endswith("conv_dw") for t in eff)
    assert not any(t.startswith(("conv_stem", "blocks.0.", "blocks.1.")) for t in eff)


def test_default_vit_targets_are_qkv_proj_and_mlp():
    torch.manual_seed(0)
    vit = headstart.load_backbone("random:vit_tiny_patch16_224")
    targets, rule = vit.family.lora_targets(vit, vit.module)
    assert rule == "vit-qkv-proj-mlp"
    assert {t.rpartition(".")[2] for t in targets} == {"qkv", "proj", "fc1", "fc2"}
    assert len(targets) == 4 * 12 and "patch_embed.proj" not in targets


def test_lora_trains_only_adapters_and_head_and_leaves_base_weights_alone(image_backbone, image_folder,
                                                                            capture_before_merge):
    before = snapshot(image_backbone.module)
    result = headstart.fit(str(image_folder), image_backbone, LoRA(rank=4), epochs=2, batch_size=8, progress=False)
    targets, _ = image_backbone.family.lora_targets(image_backbone, image_backbone.module)
    modules = dict(image_backbone.module.named_modules())
    head = result.predictor.model.head
    expected = sum(lora_params(modules[t], 4) for t in targets) + sum(p.numel() for p in head.parameters())
    assert result.metrics["trainable_params"] == expected
    trainable = capture_before_merge["trainable"]
    assert trainable == {f"backbone.{t}.lora_{ab}.default.weight" for t in targets for ab in "AB"} | {
        "head.weight", "head.bias"}
    # Before the merge every base weight and BatchNorm statistic is exactly the pretrained one.
    state = capture_before_merge["state"]
    base = {k.removeprefix("backbone.").replace(".base_layer.", "."): v for k, v in state.items()
            if k.startswith("backbone.") and ".lora_" not in k}
    assert base.keys() == before.keys()
    assert [k for k in before if not torch.equal(before[k], base[k])] == []
    # After it, only the adapted layers' weights moved; the shared backbone is untouched.
    after = result.predictor.model.backbone.state_dict()
    assert after.keys() == before.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"{t}.weight" for t in targets}
    assert all(torch.equal(v, image_backbone.module.state_dict()[k]) for k, v in before.items())
    assert type(result.predictor.model) is Classifier
    assert not any("lora" in n for n in after)


def test_text_lora_merges_exactly_scale_times_b_a(text_backbone, text_pairs):
    before = snapshot(text_backbone.module)
    result = headstart.fit(text_pairs, text_backbone, LoRA(rank=4, alpha=8), epochs=2, batch_size=8,
                           progress=False)
    model = result.predictor.model
    adapter = model.adapter
    after = model.backbone.state_dict()
    targets, _ = text_backbone.family.lora_targets(text_backbone, text_backbone.module)
    for t in targets:
        a = adapter.tensors[f"backbone.{t}.lora_A.weight"]
        b = adapter.tensors[f"backbone.{t}.lora_B.weight"]
        torch.testing.assert_close(after[f"{t}.weight"], before[f"{t}.weight"] + (8 / 4) * b @ a)
    assert {k for k in before if not torch.equal(before[k], after[k])} == {f"{t}.weight" for t in targets}
    info = result.info["adapter"]
    assert info["rank"] == 4 and info["target_modules"] == len(targets)
    assert result.metrics["trainable_params"] == info["adapter_params"] + info["head_params"]
    assert result.metrics["trainable_share"] < 0.05


def test_lora_run_reloads_in_a_new_process_with_identical_predictions(text_backbone, text_pairs, tmp_path):
    out = tmp_path / "run"
    result = headstart.fit(text_pairs, text_backbone, "lora", epochs=2, batch_size=8, progress=False, out=str(out))
    assert (out / "model" / "adapter.safetensors").is_file()
    config = json.loads((out / "model" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["lora_alpha"] == 16
    assert all(t.startswith("backbone.model.encoder.layer.") for t in config["target_modules"])
    texts = text_pairs[0][:6] + ["a brand new sentence about football", "a recipe for soup"]
    expected = result.predictor.predict(texts)
    script = ("import json, sys, headstart; "
              "rows = headstart.load_run(sys.argv[1]).predict(json.loads(sys.argv[2])); "
              "print(json.dumps(rows))")
    done = subprocess.run([sys.executable, "-c", script, str(out), json.dumps(texts)], capture_output=True,
                          text=True, check=True)
    reloaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["label"] for r in reloaded] == [r["label"] for r in expected]
    for got, want in zip(reloaded, expected):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)


def test_saved_adapter_applied_to_the_pretrained_backbone_reproduces_the_model(image_backbone, image_folder,
                                                                               tmp_path):
    out = tmp_path / "run"
    result = headstart.fit(str(image_folder), image_backbone, "lora", epochs=1, batch_size=8, progress=False,
                           out=str(out))
    adapter = Adapter.load(out / "model")
    assert adapter is not None and adapter.adapter_params == result.info["adapter"]["adapter_params"]
    n_classes = len(result.classes)
    rebuilt = adapter.apply(Classifier(copy.deepcopy(image_backbone.module),
                                       nn.Linear(image_backbone.feature_dim, n_classes)))
    x = torch.randn(4, 3, 32, 32)
    loaded = headstart.load_run(out).model
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), loaded.eval()(x), atol=1e-5, rtol=1e-5)
    assert isinstance(loaded.adapter, Adapter)  # a reloaded predictor keeps its adapter to save it again


def test_unknown_target_modules_name_them_and_list_the_available_layers(text_backbone, text_pairs):
    with pytest.raises(ConfigError, match=r"Target modules \['q_proj'\] not found") as err:
        headstart.fit(text_pairs, text_backbone, LoRA(target_modules=("query", "q_proj")), epochs=1,
                      progress=False)
    assert "query" in str(err.value) and "model.encoder.layer.0.attention.self.value" in str(err.value)


def test_user_targets_by_name_ending_and_grouped_convs_skipped(text_backbone, text_pairs, image_backbone):
    lora = LoRA(target_modules=("query", "value"))
    targets, rule, skipped = lora.resolve_targets(text_backbone, text_backbone.module)
    assert rule == "user" and len(targets) == 4 and skipped == []
    depthwise = LoRA(target_modules=("features.17.conv.1.0", "features.17.conv.2"))
    targets, _, skipped = depthwise.resolve_targets(image_backbone, image_backbone.module)
    assert targets == ["features.17.conv.2"] and skipped == ["features.17.conv.1.0"]
    with pytest.raises(ConfigError, match="LayerNorm"):
        LoRA(target_modules=("LayerNorm",)).resolve_targets(text_backbone, text_backbone.module)


@pytest.mark.parametrize("options,fragment", [
    ({"rank": 0}, "rank=0"), ({"alpha": 0}, "alpha=0"), ({"dropout": 1.0}, "dropout=1.0"),
    ({"lr": -1.0}, "--lr -1.0"), ({"target_modules": ()}, "target_modules"),
])
def test_invalid_lora_options_name_the_option(options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        LoRA(**options)


def test_lora_dropout_trains_while_frozen_layers_stay_in_eval(image_backbone):
    from peft import LoraConfig, LoraModel

    model = Classifier(copy.deepcopy(image_backbone.module), nn.Linear(image_backbone.feature_dim, 3))
    LoraModel(model, LoraConfig(r=2, lora_dropout=0.1, target_modules=["backbone.features.17.conv.2"]), "default")
    model.eval()
    set_train_mode(model)
    assert model.backbone.features[17].conv[2].lora_dropout["default"].training
    assert not model.backbone.features[17].conv[3].training  # its frozen BatchNorm
    assert not model.backbone.features[0][1].training


def test_lora_with_l2sp_records_the_penalty(text_backbone, text_pairs):
    result = headstart.fit(text_pairs, text_backbone, "lora", l2sp=1.0, epochs=1, batch_size=8, progress=False)
    assert result.history[0]["l2sp_penalty"] > 0


def test_lora_is_reproducible_for_a_seed(text_backbone, text_pairs):
    torch.manual_seed(123)  # global state must not matter
    first = headstart.fit(text_pairs, text_backbone, "lora", epochs=1, batch_size=8, progress=False)
    torch.rand(7)
    second = headstart.fit(text_pairs, text_backbone, "lora", epochs=1, batch_size=8, progress=False)
    one, two = first.predictor.model.adapter.tensors, second.predictor.model.adapter.tensors
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


def test_cli_fits_lora_with_l2sp_and_writes_the_adapter(text_csv, tiny_text_dir, tmp_path):
    from typer.testing import CliRunner

    from headstart.cli.app import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(text_csv), "--model", str(tiny_text_dir), "--strategy", "lora",
                                      "--l2sp", "0.5", "--epochs", "1", "--out", str(out), "--quiet", "--json"],
                                env={"HF_HUB_OFFLINE": "1", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert payload["info"]["adapter"]["rank"] == 8
    assert json.loads((out / "config.json").read_text())["config"]["l2sp"] == 0.5
    assert (out / "model" / "adapter.safetensors").is_file() and (out / "model" / "adapter_config.json").is_file()
    bad = CliRunner().invoke(app, ["fit", str(text_csv), "--strategy", "lora", "--l2sp", "-1", "--quiet"],
                             env={"HF_HUB_OFFLINE": "1"})
    assert bad.exit_code != 0 and "--l2sp" in (bad.output + str(bad.exception))
