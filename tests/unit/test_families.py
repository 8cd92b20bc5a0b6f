"""Model families: each one's layer groups, LoRA targets and freeze-boundary cut, and a family registered by a user."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import headstart
from headstart.backbones.registry import BACKBONES, FAMILIES
from headstart.training.boundary import split_at
from headstart.core.errors import ModelNotFoundError

FAMILY_OF_FIXTURE = {"text_backbone": "hf", "image_backbone": "torchvision", "effnet_backbone": "timm"}


@pytest.fixture(params=sorted(FAMILY_OF_FIXTURE))
def each_family(request):
    return FAMILY_OF_FIXTURE[request.param], request.getfixturevalue(request.param)


def _inputs(backbone):
    items = ["the striker scored twice", "bake the bread slowly"] if backbone.modality == "text" else \
        [torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8).permute(1, 2, 0).numpy() for _ in range(2)]
    inputs, _ = backbone.preprocessing.collate()([(item, 0) for item in items])
    return inputs


def test_each_backbone_knows_its_family_and_it_rebuilds_the_module(each_family):
    name, backbone = each_family
    assert backbone.family.name == name and backbone.family.modality == backbone.modality
    rebuilt = backbone.family.build(backbone.arch)
    assert rebuilt.state_dict().keys() == backbone.module.state_dict().keys()
    assert backbone.family.surface(backbone.arch, rebuilt) == (backbone.feature_dim, backbone.group_matcher)


def test_each_family_groups_every_parameter_once_input_side_first(each_family):
    _, backbone = each_family
    groups = backbone.layer_groups()
    names = [n for n, _ in backbone.module.named_parameters()]
    assert len(groups) >= 3 and all(groups)
    assert sorted(n for g in groups for n in g) == sorted(names)
    first = [min(names.index(n) for n in g) for g in groups]
    assert first == sorted(first)


def test_each_family_lora_targets_are_adaptable_layers_of_the_upper_half(each_family):
    name, backbone = each_family
    targets, rule = backbone.family.lora_targets(backbone, backbone.module)
    modules = dict(backbone.module.named_modules())
    assert targets and rule == {"hf": "hf-encoder-linear", "torchvision": "cnn-later-conv",
                                "timm": "cnn-later-conv"}[name]
    kinds = nn.Linear if name == "hf" else nn.Conv2d
    assert all(isinstance(modules[t], kinds) and getattr(modules[t], "groups", 1) == 1 for t in targets)
    if name != "hf":  # CNNs: only the later half of the layer groups
        groups = backbone.layer_groups()
        later = {p.rpartition(".")[0] for g in groups[len(groups) // 2:] for p in g}
        assert set(targets) <= later


def test_each_family_cuts_where_it_can_and_the_cut_computes_the_same(each_family):
    name, backbone = each_family
    module = backbone.family.build(backbone.arch).eval()
    module.load_state_dict(backbone.module.state_dict())
    cut = backbone.family.boundary(module)
    if name == "timm":  # timm's pooled head lies outside its blocks: no exact cut, partial recomputes
        assert cut is None and split_at(backbone, module, 1) is None
        return
    split = split_at(backbone, module, 2)
    assert split is not None and split.text == cut.tokens == (name == "hf")
    batch = _inputs(backbone)
    with torch.no_grad():
        act = split.frozen_part(batch)
        top_in = {"hidden": act, "attention_mask": batch["attention_mask"]} if split.text else act
        torch.testing.assert_close(split.top.eval()(top_in), module(batch), rtol=0, atol=1e-5)


# ---- a family of one's own ------------------------------------------------------------------------


class ToyCNN(nn.Module):
    """Three small conv stages, average-pooled: enough layer groups for partial fine-tuning."""

    def __init__(self, width: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU()),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))


@pytest.fixture
def toy_family():
    """A family and a named backbone registered through the public API; unregistered afterwards."""

    class ToyFamily(headstart.ImageFamily):
        name = "toy"

        def build(self, arch: dict) -> nn.Module:
            return ToyCNN(arch["width"])

        def surface(self, arch: dict, module: nn.Module) -> tuple[int, dict]:
            return arch["width"], {"stem": r"^features\.0\.", "blocks": r"^features\.(\d+)\."}

    headstart.register_family(ToyFamily)

    @headstart.register_backbone("toy-cnn", modality="image", description="a toy CNN")
    def load_toy(pretrained: bool):
        torch.manual_seed(0)
        arch = {"family": "toy", "width": 8}
        return ToyCNN(8), arch, "toy weights" if pretrained else "random initialisation"

    try:
        yield ToyFamily
    finally:
        FAMILIES.pop("toy", None)
        BACKBONES.pop("toy-cnn", None)


def test_a_registered_family_loads_by_name_and_fits_partial(toy_family, image_folder, tmp_path):
    backbone = headstart.load_backbone("toy-cnn")
    assert isinstance(backbone.family, toy_family) and backbone.feature_dim == 8
    assert len(backbone.layer_groups()) == 3 and backbone.source == "toy weights"
    assert {"name": "toy-cnn", "modality": "image", "description": "a toy CNN", "available": True,
            "source": "registered in Python"} in headstart.models()
    before = {k: v.clone() for k, v in backbone.module.state_dict().items()}
    out = tmp_path / "run"
    result = headstart.fit(str(image_folder), model="toy-cnn", strategy="partial", epochs=2, batch_size=8,
                           out=str(out), progress=False)
    assert result.metrics["trainable_params"] == sum(p.numel() for p in ToyCNN(8).features[1:].parameters()) + 8 * 3 + 3
    trained = result.predictor.model.backbone.state_dict()
    assert torch.equal(trained["features.0.0.weight"], before["features.0.0.weight"])  # the frozen stem
    assert not torch.equal(trained["features.2.0.weight"], before["features.2.0.weight"])
    spec = json.loads((out / "model" / "headstart.json").read_text())
    assert spec["arch"] == {"family": "toy", "width": 8}
    again = headstart.load_run(str(out)).predict(str(image_folder / "red"))
    direct = result.predict(str(image_folder / "red"))
    assert [r["label"] for r in again] == [r["label"] for r in direct]


def test_a_run_of_an_unregistered_family_says_what_is_missing(toy_family, image_folder, tmp_path):
    out = tmp_path / "run"
    headstart.fit(str(image_folder), model="toy-cnn", strategy="linear", out=str(out), progress=False)
    FAMILIES.pop("toy")
    with pytest.raises(headstart.RunError, match="family registered in code not imported"):
        headstart.load_run(str(out))
    with pytest.raises(ModelNotFoundError, match="'toy'"):
        headstart.backbones.build_module({"family": "toy", "width": 8})
    assert "'hf', 'torchvision', 'timm'" in str(pytest.raises(ModelNotFoundError,
                                                               headstart.backbones.family_of, {"family": "x"}).value)


def test_a_family_without_name_or_modality_is_refused():
    class Nameless(headstart.Family):
        modality = "image"

    with pytest.raises(headstart.ConfigError, match="needs a 'name'"):
        headstart.register_family(Nameless)
