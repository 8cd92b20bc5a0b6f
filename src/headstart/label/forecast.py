"""How much labelling more buys: a learning curve of the linear probe on a run's cached features, extrapolated.

The curve is measured, not recorded: the run's task probe is fitted on 25, 50 and 100% of its training items
(``FRACTIONS``; stratified by class for single-label, ``REPEATS`` draws each) and scored on its validation items
with the task's main metric. A line in log(items), ``metric = a + b ln(n)`` (the log-linear fit learning
curves of linear probes follow over a few doublings), fitted to those points and carried to n + N, is the
estimate; the interval is the 5th to 95th percentile of the same extrapolation over bootstrap resamples of the
points, widened by the validation set's own sampling error (Agresti-Coull). It is an extrapolation of three
points, and says so. The curve has flattened when one more doubling of the labels is expected to add under
``FLAT`` (a point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from headstart.tasks import Task
from headstart.tasks.kinds import kind

FRACTIONS = (0.25, 0.5, 1.0)
REPEATS = 3
BOOTSTRAP = 200
FLAT = 0.01  # gain per doubling of the labelled items below which the curve has flattened
CS = (0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class Forecast:
    """The metric expected after labelling ``more`` items, its interval, and the curve it came from."""

    metric: str
    labelled: int
    more: int
    now: float
    expected: float
    low: float
    high: float
    per_doubling: float
    curve: list[tuple[int, float]]
    validation: int

    @property
    def flattened(self) -> bool:
        """One more doubling of the labels is expected to add less than ``FLAT``."""
        return self.per_doubling < FLAT

    def sentence(self) -> str:
        """The forecast in words: 'accuracy about 0.82 [0.80, 0.84] with 100 more labels ...'."""
        points = ", ".join(f"{v:.3f} at {n}" for n, v in self.curve)
        flat = ("; the curve has flattened: more labels will not pay much" if self.flattened
                else f"; each doubling of the labels adds about {self.per_doubling:+.3f}")
        return (f"{self.metric} about {self.expected:.2f} [{self.low:.2f}, {self.high:.2f}] with {self.more} more "
                f"labels (now {self.now:.2f} from {self.labelled}){flat}. An extrapolation of the linear probe's "
                f"learning curve on the run's cached features ({points}; scored on {self.validation} validation "
                "items), not a promise.")


def forecast(task: Task, train: tuple[np.ndarray, np.ndarray, list], val: tuple[np.ndarray, np.ndarray],
             more: int, seed: int = 0) -> Forecast:
    """The task's main metric on ``val`` (features, targets) after ``more`` items beyond ``train`` (features,
    targets, strata: one class name or group per item) are labelled."""
    x, y, strata = train
    rng = np.random.default_rng(seed)
    points = [(len(rows), score(task, x[rows], y[rows], val, seed))
              for fraction in FRACTIONS for _ in range(1 if fraction == 1 else REPEATS)
              for rows in [subsample(strata, fraction, rng)]]
    sizes, values = np.log([p[0] for p in points]), np.array([p[1] for p in points])
    steps = np.log(len(y) + more) - np.log(len(y))  # how far past today's labels, on the curve's log scale
    slope = float(np.polyfit(sizes, values, 1)[0])
    now = values[-1]
    # From today's score on, at the curve's slope: more labels are not expected to hurt, so a slope below 0
    # (noise on a flat curve) forecasts no change rather than a loss.
    draws = [now + max(float(np.polyfit(sizes[d], values[d], 1)[0]), 0.0) * steps
             for d in (rng.integers(0, len(points), len(points)) for _ in range(BOOTSTRAP))
             if len(set(sizes[d])) > 1]
    noise = sampling_error(now, len(val[1])) if kind(task.name).has_classes else 0.0  # a share's binomial error
    expected = float(now + max(slope, 0.0) * steps)
    low, high = np.percentile(draws, [5, 95]) if draws else (expected, expected)
    bounded = (lambda v: float(min(v, 1.0))) if task.main_metric != "r2" else float
    means = {n: float(np.mean([v for m, v in points if m == n])) for n, _ in points}
    return Forecast(task.main_metric, len(y), more, float(now), bounded(expected), bounded(low - noise),
                    bounded(high + noise), float(slope * np.log(2)), sorted(means.items()), len(val[1]))


def sampling_error(p: float, n: int) -> float:
    """The 95% half-width of a proportion ``p`` measured on ``n`` items, Agresti-Coull style (two successes and
    two failures added), so that a perfect score on a few items still gets a wide interval."""
    adjusted = (p * n + 2) / (n + 4)
    return float(1.96 * np.sqrt(adjusted * (1 - adjusted) / (n + 4)))


def score(task: Task, x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray], seed: int) -> float:
    """The task probe fitted on ``(x, y)``, scored on ``val`` with the task's main metric."""
    probe = task.probe(x, y, val[0], val[1], CS, seed, None)
    with torch.no_grad():
        outputs = probe.head(torch.from_numpy(np.asarray(val[0], np.float32))).double().numpy()
    return float(task.scores(outputs, val[1])[f"val_{task.main_metric}"])


def subsample(strata: list, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Row positions: ``fraction`` of each stratum's rows (at least one each), drawn at random."""
    if fraction >= 1:
        return np.arange(len(strata))
    groups: dict = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    picked = [i for rows in groups.values() for i in rng.permutation(rows)[:max(1, round(fraction * len(rows)))]]
    return np.sort(np.array(picked))
