"""A wall-clock budget for a comparison: parse "15m", estimate each fit from those measured, skip or stop."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from headstart.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600}


@dataclass
class Budget:
    """Seconds allowed in total (None: unlimited) and what each strategy's fits have cost so far."""

    total: float | None = None
    start: float = field(default_factory=time.perf_counter)
    measured: dict[str, tuple[float, float]] = field(default_factory=dict)  # strategy -> (fraction, seconds)

    @classmethod
    def parse(cls, budget: str | float | None) -> "Budget":
        """``None``, a number of seconds, or text such as "90s", "15m", "1.5h"."""
        if budget is None or isinstance(budget, (int, float)):
            return cls(None if budget is None else float(budget))
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(budget))
        if not match:
            raise ConfigError(f"--budget {budget!r}: use seconds or a number with s, m or h (e.g. 90s, 15m, 1h).")
        return cls(float(match.group(1)) * _UNITS[match.group(2) or "s"])

    def left(self) -> float:
        """Seconds left (infinite without a budget)."""
        if self.total is None:
            return float("inf")
        return self.total - (time.perf_counter() - self.start)

    def estimate(self, strategy: str, fraction: float) -> float | None:
        """Seconds a fit should take, scaled from this strategy's last measured fit; None if never measured."""
        if strategy not in self.measured:
            return None
        f0, seconds = self.measured[strategy]
        return seconds * max(fraction / f0, 0.25)  # fixed costs do not shrink with the data

    def allows(self, estimate: float | None) -> bool:
        """True when time is left and the estimate (if any) fits in it."""
        left = self.left()
        return left > 0 and (estimate is None or estimate <= left)

    def skip_reason(self, estimate: float | None) -> str:
        """Why a fit was skipped, in numbers."""
        if estimate is None or self.left() <= 0:
            return f"budget of {self.total:.0f} s used up"
        return f"estimated {estimate:.0f} s, only {max(self.left(), 0):.0f} s of the budget left"

    def deadline(self) -> float | None:
        """A ``time.perf_counter()`` value at which a running fit must stop (None: no limit)."""
        return None if self.total is None else self.start + self.total

    def record(self, strategy: str, fraction: float, seconds: float) -> None:
        """Remember what a fit cost, for later estimates."""
        self.measured[strategy] = (fraction, seconds)
