"""Strategies by name: the built-ins, plus any a user registers."""

from __future__ import annotations

from typing import Any

from headstart.core.errors import ConfigError
from headstart.core.fields import shared_names
from headstart.strategies.base import Strategy
from headstart.strategies.contrastive import Contrastive
from headstart.strategies.full import Full
from headstart.strategies.linear import Linear
from headstart.strategies.lora import LoRA
from headstart.strategies.lpft import LPFT
from headstart.strategies.declared import DECLARED
from headstart.strategies.options import check_option_names, option_fields
from headstart.strategies.partial import Partial

STRATEGIES: dict[str, type] = {}


def register_strategy(cls: type) -> type:
    """Make a strategy dataclass available by its ``name`` (usable as a class decorator): to ``fit`` and
    ``compare``, and as flags for its options. An option named as an option every fit shares (``batch_size``,
    ``epochs``...: FitConfig's fields) is refused, as it would never receive its value."""
    check_no_shadowing(cls)
    STRATEGIES[cls.name] = DECLARED[cls.name] = cls
    return cls


def check_no_shadowing(cls: type) -> None:
    """ConfigError when a strategy class declares an option of the same name as a shared one."""
    clash = sorted(set(option_fields(cls)) & shared_names())
    if clash:
        raise ConfigError(f"Strategy {getattr(cls, 'name', cls.__name__)!r} declares the option(s) "
                          f"{', '.join(clash)}, which every fit already has (FitConfig's fields): the shared value "
                          "would shadow it. Read it from the fit's settings instead (FitContext.settings), or "
                          "rename the option.")


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


for _built_in in (Linear, Partial, Full, LPFT, LoRA, Contrastive):  # through the same gate as a user's
    register_strategy(_built_in)
