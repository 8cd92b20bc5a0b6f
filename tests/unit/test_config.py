"""Options: FitConfig validation, strategy names and options, and data that does not fit the model."""

from __future__ import annotations

import json

import pytest

import headstart
from headstart.core.errors import ConfigError, DataError


@pytest.mark.parametrize("options,flag", [
    ({"epochs": 0}, "--epochs"),
    ({"batch_size": 0}, "--batch-size"),
    ({"patience": 0}, "--patience"),
    ({"val_fraction": 0.0}, "--val-fraction"),
    ({"val_fraction": 1.5}, "--val-fraction"),
    ({"test_fraction": -0.1}, "--test-fraction"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, "--val-fraction plus --test-fraction"),
    ({"precision": "fp16"}, "--precision"),
    ({"num_workers": -1}, "--num-workers"),
    ({"image_size": 8}, "--image-size"),
    ({"max_length": 4}, "--max-length"),
    ({"warmup": 1.0}, "--warmup"),
])
def test_invalid_option_errors_name_the_flag(options, flag):
    with pytest.raises(ConfigError) as info:
        headstart.FitConfig(**options)
    assert flag in str(info.value)


def test_every_invalid_option_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        headstart.FitConfig(epochs=0, batch_size=0)
    assert "--epochs" in str(info.value) and "--batch-size" in str(info.value)


def test_default_config_is_valid_and_round_trips_through_a_dict():
    cfg = headstart.FitConfig.of(strategy="partial", unfreeze=3, epochs=4, image_size=64)
    assert headstart.FitConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_config_keys_are_named():
    with pytest.raises(ConfigError, match="epoch_count"):
        headstart.FitConfig.from_dict({"epoch_count": 3})


def test_fit_validates_options_before_loading_anything(tmp_path):
    with pytest.raises(ConfigError, match="--epochs"):
        headstart.fit(str(tmp_path / "does-not-exist"), "no-such-model", "partial", epochs=0)


def test_unknown_strategy_lists_the_strategies(text_pairs):
    with pytest.raises(ConfigError) as info:
        headstart.fit(text_pairs, "no-such-model", "finetune-everything")
    message = str(info.value)
    assert "finetune-everything" in message
    for name in ("linear", "partial", "full", "lp-ft"):
        assert name in message
    assert set(headstart.STRATEGIES) >= {"linear", "partial", "full", "lp-ft"}


@pytest.mark.parametrize("strategy,options,named", [
    ("linear", {"unfreeze": 2}, "unfreeze"),
    ("linear", {"lr": 1e-3}, "lr"),
    ("full", {"unfreeze": 2}, "unfreeze"),
    ("lp-ft", {"head_lr": 1e-3}, "head_lr"),
])
def test_strategy_options_it_does_not_take_are_a_config_error(text_pairs, strategy, options, named):
    with pytest.raises(ConfigError) as info:
        headstart.fit(text_pairs, "no-such-model", strategy, **options)
    assert named in str(info.value) and strategy in str(info.value)


def test_a_registered_strategy_is_usable_by_name(text_pairs, text_backbone):
    from dataclasses import dataclass
    from typing import ClassVar

    from headstart.strategies import Linear

    @dataclass(frozen=True)
    class StrongProbe(Linear):
        cs: tuple = (0.5,)
        name: ClassVar[str] = "strong-probe"

    headstart.register_strategy(StrongProbe)
    try:
        result = headstart.fit(text_pairs, text_backbone, "strong-probe", progress=False)
        assert result.strategy == "strong-probe" and result.info["C"] == 0.5
    finally:
        headstart.STRATEGIES.pop("strong-probe")
    instance = headstart.fit(text_pairs, text_backbone, StrongProbe(cs=(2.0,)), progress=False)
    assert instance.info["C"] == 2.0


def test_text_model_on_an_image_folder_says_to_pick_an_image_model(image_folder, tiny_text_dir):
    with pytest.raises(DataError) as info:
        headstart.fit(str(image_folder), str(tiny_text_dir), "linear", progress=False)
    message = str(info.value)
    assert "pick an image model" in message.lower()
    assert "headstart models" in message


def test_image_model_on_texts_says_to_pick_a_text_model(text_csv, image_backbone):
    with pytest.raises(DataError, match="(?i)pick a text model"):
        headstart.fit(str(text_csv), image_backbone, "linear", progress=False)


def test_an_option_no_fit_takes_is_a_config_error_naming_who_takes_it():
    with pytest.raises(ConfigError, match=r"(?s)'linear' does not take dropout \(an option of: lora\)"):
        headstart.FitConfig.of(dropout=0.1)
    with pytest.raises(ConfigError, match="no_such_option"):
        headstart.FitConfig.of(strategy="lora", no_such_option=1)


def test_strategy_options_are_keywords_of_of_kept_in_options_and_checked_by_the_strategy():
    cfg = headstart.FitConfig.of(strategy="lora", dropout=0.1, target_modules=["query", "value"], epochs=2)
    assert cfg.options == {"dropout": 0.1, "target_modules": ("query", "value")} and cfg.epochs == 2
    assert headstart.FitConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="dropout=1.5"):
        headstart.FitConfig.of(strategy="lora", dropout=1.5)
    assert headstart.FitConfig.of(strategy="auto", unfreeze=1, steps=5).options == {"unfreeze": 1, "steps": 5}


def test_a_config_json_from_before_options_moved_reads_the_same():
    old = {"model": "minilm-l6", "strategy": "partial", "unfreeze": 3, "lr": None, "head_lr": None,
           "lr_decay": 0.5, "rank": None, "alpha": None, "epochs": 4}
    cfg = headstart.FitConfig.from_dict(old)
    assert cfg.options == {"unfreeze": 3, "lr_decay": 0.5} and cfg.epochs == 4


def test_a_run_fitted_with_a_strategy_object_is_rebuilt_from_its_config_json(text_pairs, text_backbone, tmp_path):
    from headstart.strategies import Linear, make_strategy

    strategy = Linear(cs=(0.25, 4.0))
    headstart.fit(text_pairs, text_backbone, strategy, out=tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert saved["options"] == {"cs": [0.25, 4.0]}
    cfg = headstart.FitConfig.from_dict(saved)
    assert make_strategy(cfg.strategy, **cfg.strategy_options()) == strategy
