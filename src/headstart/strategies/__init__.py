"""Ways to adapt a backbone, one module each, behind one contract (see strategies.base).

The names below load on first use (PEP 562), so that ``headstart.strategies.declared`` and
``headstart.strategies.options`` import without torch: ``headstart --help`` reads them (start-up time).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headstart.strategies.base import FitContext, Strategy, StrategyResult
    from headstart.strategies.contrastive import Contrastive
    from headstart.strategies.full import Full
    from headstart.strategies.linear import Linear
    from headstart.strategies.lora import LoRA
    from headstart.strategies.lpft import LPFT
    from headstart.strategies.partial import Partial
    from headstart.strategies.registry import STRATEGIES, make_strategy, register_strategy

_HOMES = {
    "FitContext": "base", "Strategy": "base", "StrategyResult": "base", "Contrastive": "contrastive",
    "Full": "full", "Linear": "linear", "LoRA": "lora", "LPFT": "lpft", "Partial": "partial",
    "STRATEGIES": "registry", "make_strategy": "registry", "register_strategy": "registry",
}

__all__ = [
    "LPFT",
    "LoRA",
    "STRATEGIES",
    "Contrastive",
    "FitContext",
    "Full",
    "Linear",
    "Partial",
    "Strategy",
    "StrategyResult",
    "make_strategy",
    "register_strategy",
]


def __getattr__(name: str) -> Any:
    """Load ``name`` from its module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
