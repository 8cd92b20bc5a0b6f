"""Ways to adapt a backbone, one module each, behind one contract (see strategies.base)."""

from headstart.strategies.base import FitContext, Strategy, StrategyResult
from headstart.strategies.contrastive import Contrastive
from headstart.strategies.full import Full
from headstart.strategies.linear import Linear
from headstart.strategies.lora import LoRA
from headstart.strategies.lpft import LPFT
from headstart.strategies.partial import Partial
from headstart.strategies.registry import STRATEGIES, make_strategy, register_strategy

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
