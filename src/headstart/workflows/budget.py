"""A wall-clock budget for a comparison: parse "15m", estimate each fit before it runs, skip or stop.

Fine-tuning estimates come from a measured training step (``advise.measure_step_seconds``) times the
steps a fit takes, plus the forward passes that evaluate it, scaled after each fit by what it really
cost. Linear probes are estimated from their last measured fit (or the feature extraction they need).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

from headstart.core.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600}
FORWARD_PER_STEP = 1 / 3  # a forward pass costs about a third of a training step (forward + 2x backward)


@dataclass
class Budget:
    """Seconds allowed in total (None: unlimited) and what each strategy's fits have cost so far.

    ``reserve`` seconds at the end are kept back for what follows the fits (saving runs and the report).
    """

    total: float | None = None
    start: float = field(default_factory=time.perf_counter)
    measured: dict[str, tuple[float, float]] = field(default_factory=dict)  # strategy -> (fraction, seconds)
    reserve: float = 0.0

    @classmethod
    def parse(cls, budget: str | float | None) -> "Budget":
        """``None``, a number of seconds, or text such as "90s", "15m", "1.5h"."""
        if budget is None or isinstance(budget, (int, float)):
            return cls(None if budget is None else float(budget))
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(budget))
        if not match:
            raise ConfigError(f"--budget {budget!r}: use seconds or a number with s, m or h (e.g. 90s, 15m, 1h).")
        return cls(float(match.group(1)) * _UNITS[match.group(2) or "s"])

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.perf_counter() - self.start

    def left(self) -> float:
        """Seconds left for fits, after the reserve (infinite without a budget)."""
        if self.total is None:
            return float("inf")
        return self.total - self.reserve - self.elapsed()

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
        left = self.left()
        if estimate is None or left <= 0:
            return f"budget of {hms(self.total or 0)} used up"
        return f"estimated {hms(estimate)} > {hms(left)} left"

    def deadline(self, finish: float = 0.0) -> float | None:
        """A ``time.perf_counter()`` value at which a running fit must stop training (None: no limit).

        ``finish``: seconds the fit needs after training stops (its last validation pass and final scoring).
        """
        return None if self.total is None else self.start + self.total - self.reserve - finish

    def record(self, strategy: str, fraction: float, seconds: float) -> None:
        """Remember what a fit cost, for later estimates."""
        self.measured[strategy] = (fraction, seconds)


@dataclass
class CostModel:
    """Seconds a fit should take, from a measured training step, the data sizes and the epochs.

    ``step``: seconds per training batch, per strategy (measured); ``forward``: seconds per item of
    inference. ``scale`` corrects a strategy's estimates by what its last fit really cost; a strategy not
    yet measured is slowed as much as the slowest one measured.
    """

    n_train: int
    n_val: int
    n_test: int
    batch_size: int
    epochs: int
    step: dict[str, float]
    forward: float
    scale: dict[str, float] = field(default_factory=dict)

    def extraction(self) -> float:
        """One forward pass over every item: what the first linear probe costs (its features are cached)."""
        return (self.n_train + self.n_val + self.n_test) * self.forward

    def finish(self, fraction: float) -> float:
        """Seconds a fine-tune needs once its deadline passes: the batch under way, the epoch's validation
        pass, then scoring train, validation and test; slowed as much as the slowest fit so far ran over
        its estimate."""
        n = round(self.n_train * fraction) + 2 * self.n_val + self.n_test
        return (max(self.step.values(), default=0.0) + n * self.forward) * self._slowdown()

    def _slowdown(self) -> float:
        """How much slower than estimated the fits measured so far ran (at least 1): the prior for the rest."""
        return max([1.0, *self.scale.values()])

    def fit(self, strategy: str, fraction: float = 1.0, epochs: int | None = None, extraction: bool = False) -> float:
        """Estimated seconds of one fine-tune on ``fraction`` of the training data (``extraction``: plus the
        features its probe needs, when no linear fit has cached them)."""
        return self._raw(strategy, fraction, epochs, extraction) * self.scale.get(strategy, self._slowdown())

    def calibrate(self, strategy: str, fraction: float, epochs_run: int, seconds: float) -> None:
        """Scale later estimates of ``strategy`` by what a fit of ``epochs_run`` epochs really took."""
        self.scale[strategy] = seconds / max(self._raw(strategy, fraction, max(epochs_run, 1)), 1e-9)

    def _raw(self, strategy: str, fraction: float, epochs: int | None, extraction: bool = False) -> float:
        n_train = max(1, round(self.n_train * fraction))
        per_epoch = math.ceil(n_train / self.batch_size) * self.step[strategy] + self.n_val * self.forward
        scoring = (n_train + self.n_val + self.n_test) * self.forward
        return (epochs or self.epochs) * per_epoch + scoring + (self.extraction() if extraction else 0.0)


def hms(seconds: float) -> str:
    """``0.4s``, ``42s``, ``3m10s``, ``1h02m``: short durations for reasons and titles."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
