"""check_strategy: the built-in strategies keep the contract, a registered one is checked alike, and a
strategy that breaks a rule is told which."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import headstart
from headstart.strategies import Contrastive, Linear, LoRA, Partial, register_strategy
from headstart.strategies.options import option

FAST = dict(epochs=1, batch_size=8)


@pytest.mark.parametrize("strategy", [Linear(), Partial(unfreeze=1), LoRA(rank=2), Contrastive(steps=2)],
                         ids=lambda s: s.name)
def test_built_in_strategies_keep_the_contract(strategy, text_backbone, text_pairs):
    headstart.check_strategy(strategy, text_backbone, text_pairs, **FAST)


def test_a_registered_strategy_is_checked_by_name(text_backbone, text_pairs):
    @dataclass(frozen=True)
    class Sharp(Linear):
        cs: tuple = option((4.0,), "The one C tried.")
        name: ClassVar[str] = "sharp"

    register_strategy(Sharp)
    try:
        headstart.check_strategy("sharp", text_backbone, text_pairs)
    finally:
        headstart.STRATEGIES.pop("sharp")


def test_a_strategy_that_changes_the_backbone_is_named(text_backbone, text_pairs):
    @dataclass(frozen=True)
    class Careless(Linear):
        name: ClassVar[str] = "careless"

        def fit(self, backbone, splits, ctx):
            with torch.no_grad():
                next(backbone.module.parameters()).add_(1.0)
            return super().fit(backbone, splits, ctx)

    with pytest.raises(AssertionError, match="careless: fit changed the backbone's pretrained weights"):
        headstart.check_strategy(Careless(), text_backbone, text_pairs)


def test_options_without_help_are_named(text_backbone, text_pairs):
    @dataclass(frozen=True)
    class Bare(Linear):
        strength: float = 1.0
        name: ClassVar[str] = "bare"

    with pytest.raises(AssertionError, match="'strength' has no help text"):
        headstart.check_strategy(Bare(), text_backbone, text_pairs)
