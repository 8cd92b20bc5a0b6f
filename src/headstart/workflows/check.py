"""check_strategy: does a strategy keep the contract every headstart strategy keeps? (scikit-learn's
check_estimator, for strategies: built-in ones and those a user registers with ``register_strategy``.)"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import numpy as np
import torch

from headstart.backbones import Backbone
from headstart.core.config import FitConfig
from headstart.workflows.pipeline import fit_prepared, prepare
from headstart.workflows.runtime import Runtime
from headstart.strategies import STRATEGIES, Strategy, make_strategy
from headstart.strategies.options import option_fields, option_values


def check_strategy(strategy: str | Strategy, backbone: Backbone, data: Any, **options: Any) -> None:
    """Fit ``strategy`` twice on ``data`` with ``backbone`` (a small one: this trains) and raise AssertionError,
    naming the rule, unless it keeps the contract:

    - it is a frozen dataclass with a ``name``; every option has help text (``strategies.options.option``);
    - registered under its name, it is rebuilt from its config.json record (every option value, as JSON);
    - ``fit``'s result has a model has a ``backbone`` and a ``head`` with one output per class;
    - ``fit`` leaves the strategy object and the backbone's weights untouched;
    - the same seed gives the same model (identical validation logits).

    ``options`` are FitConfig fields for the fits (``epochs=1``, ``batch_size=8``...).
    """
    strat = make_strategy(strategy)
    assert isinstance(getattr(strat, "name", None), str), "a strategy has a `name` (a ClassVar[str])"
    assert dataclasses.is_dataclass(strat) and type(strat).__dataclass_params__.frozen, \
        f"{strat.name}: a strategy is a frozen dataclass (its fields are its options)"
    for name, field in option_fields(strat).items():
        assert field.metadata.get("help"), f"{strat.name}: option {name!r} has no help text (use options.option)"
    if STRATEGIES.get(strat.name) is type(strat):
        record = json.loads(json.dumps(FitConfig.of(model=backbone.name, strategy=strat.name,
                                                    options=option_values(strat)).to_dict()))
        cfg = FitConfig.from_dict(record)
        assert make_strategy(cfg.strategy, **cfg.strategy_options()) == strat, \
            f"{strat.name}: not rebuilt from its config.json record {record['options']}"
    cfg = FitConfig.of(model=backbone.name, strategy=strat.name, **options)
    splits, backbone = prepare(data, backbone, cfg)
    runtime = Runtime.from_config(cfg, progress=False)
    before, weights = copy.deepcopy(strat), copy.deepcopy(backbone.module.state_dict())
    fits = [fit_prepared(splits, backbone, cfg, strat, runtime) for _ in range(2)]
    assert strat == before, f"{strat.name}: fit changed the strategy object"
    assert all(torch.equal(v, backbone.module.state_dict()[k]) for k, v in weights.items()), \
        f"{strat.name}: fit changed the backbone's pretrained weights (train a copy)"
    model = fits[0].predictor.model
    assert hasattr(model, "backbone") and hasattr(model, "head"), f"{strat.name}: the model is a Classifier"
    logits = [fit.predictor.probabilities(splits.val, "cpu") for fit in fits]
    assert logits[0].shape == (len(splits.val), len(splits.classes)), \
        f"{strat.name}: the head must give one output per class ({len(splits.classes)})"
    assert np.allclose(logits[0], logits[1], atol=1e-6), f"{strat.name}: the same seed gave different models"
    assert isinstance(fits[0].info, dict), f"{strat.name}: the result's info is a dict (saved in metrics.json)"
