"""Strategies by name: the built-ins, plus any a user registers."""

from __future__ import annotations

from typing import Any

from headstart.core.errors import ConfigError
from headstart.strategies.base import Strategy
from headstart.strategies.contrastive import Contrastive
from headstart.strategies.full import Full
from headstart.strategies.linear import Linear
from headstart.strategies.lora import LoRA
from headstart.strategies.lpft import LPFT
from headstart.strategies.options import check_option_names
from headstart.strategies.partial import Partial

STRATEGIES: dict[str, type] = {cls.name: cls for cls in (Linear, Partial, Full, LPFT, LoRA, Contrastive)}


def register_strategy(cls: type) -> type:
    """Make a strategy dataclass available by its ``name`` (usable as a class decorator)."""
    STRATEGIES[cls.name] = cls
    return cls


def make_strategy(name: str | Strategy, /, **options: Any) -> Strategy:
    """A strategy from its name and the options it accepts (options it does not know are an error)."""
    if not isinstance(name, str):
        return name
    if name not in STRATEGIES:
        raise ConfigError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}, "
                          "or auto (fit only: the advised strategy within --budget).")
    cls = STRATEGIES[name]
    given = {k: v for k, v in options.items() if v is not None}
    check_option_names(given, {name: cls}, f"Strategy {name!r}", STRATEGIES)
    return cls(**given)
