"""A learning-rate range test (Smith 2017, fastai's ``lr_find``), made robust for small data.

A few dozen training steps on a throw-away copy of the optimizer, with every parameter group's rate raised
exponentially together (layer-wise ratios kept); the loss is smoothed (debiased moving average), the test
stops when it diverges, and the suggestion is a tenth of the rate at the smoothed minimum (the last rate at
which the loss still fell steadily). When the loss barely moves (a flat curve: no rate stood out) there is no
suggestion and the caller keeps its default. The model's weights and buffers are restored afterwards.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

STEPS = 40
START, END = 1e-6, 1.0  # the top group's rate at the first and last step
SMOOTHING = 0.8
DIVERGED = 4.0  # stop when the smoothed loss exceeds this many times its minimum
FLAT = 0.05  # a fall of less than this share of the first loss is a flat curve


@dataclass
class LrRange:
    """Rates tried (the top group's), smoothed losses, and the suggested rate (None: keep the default)."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    suggestion: float | None = None
    reason: str = ""


def lr_range_test(model: nn.Module, batches: Iterable, groups: list[dict], top_lr: float,
                  step_loss: Callable[[nn.Module, object, torch.Tensor], torch.Tensor], steps: int = STEPS) -> LrRange:
    """Run the test on ``model`` (restored afterwards) over ``batches`` (cycled) of ``(inputs, targets)``.

    ``groups`` are the optimizer's parameter groups at their default rates, ``top_lr`` the top group's.
    ``step_loss(model, inputs, targets)`` returns the batch loss to minimise.
    """
    saved = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.AdamW([{**g, "params": list(g["params"])} for g in groups])
    ratios = [g["lr"] / top_lr for g in optimizer.param_groups]
    out, average, best = LrRange(), 0.0, math.inf
    try:
        for i, (inputs, y) in enumerate(itertools.islice(itertools.cycle(batches), steps)):
            lr = START * (END / START) ** (i / max(1, steps - 1))
            for g, ratio in zip(optimizer.param_groups, ratios):
                g["lr"] = lr * ratio
            loss = step_loss(model, inputs, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            average = SMOOTHING * average + (1 - SMOOTHING) * loss.item()
            smooth = average / (1 - SMOOTHING ** (i + 1))
            out.lrs.append(lr)
            out.losses.append(smooth)
            best = min(best, smooth)
            if not math.isfinite(smooth) or smooth > DIVERGED * best:
                break
    finally:
        model.load_state_dict(saved)
    return suggest(out)


def suggest(found: LrRange) -> LrRange:
    """Fill ``suggestion`` and ``reason`` from the smoothed curve."""
    losses = np.array(found.losses, dtype=np.float64)
    if len(losses) < 5 or not np.isfinite(losses[0]):
        found.reason = "too few steps to judge"
        return found
    low = int(np.nanargmin(losses))
    if losses[0] - losses[low] < FLAT * losses[0]:
        found.reason = f"flat curve: the loss fell by less than {FLAT:.0%} over the range"
        return found
    found.suggestion = max(found.lrs[0], found.lrs[low] / 10)
    found.reason = f"a tenth of {found.lrs[low]:.2g}, where the smoothed loss was lowest"
    return found
