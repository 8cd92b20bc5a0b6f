"""FitConfig: every option of a fit, validated once, saved with the run as JSON.

The options every fit shares are FitConfig's fields, declared in headstart.core.fields; a strategy's own options (``unfreeze``, ``rank``,
``dropout``...) are declared once, in its dataclass (see headstart.strategies.options), and kept in
``options``. ``FitConfig.of(strategy="lora", dropout=0.1)`` files ``dropout`` there; a name that neither
FitConfig nor the strategy takes is a ConfigError naming the strategies that do take it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from headstart.core.choices import BALANCE_MODES, PRECISIONS, REGRESSION_LOSSES
from headstart.core.errors import ConfigError
from headstart.core.fields import DEFAULT_BATCH_SIZE, FitFields, shared_fields, shared_names
from headstart.data.targets import TASK_CHOICES, check_task
from headstart.tasks.kinds import SELECT_CHOICES
from headstart.runs.tracking import parse_trackers
from headstart.strategies import STRATEGIES, make_strategy
from headstart.strategies.options import check_option_names, option_fields, option_problems

BN_POLICIES = shared_fields()["bn"].metadata["choices"]
AUTO_STRATEGIES = ("linear", "partial", "full", "lp-ft", "contrastive")  # what ``auto`` may fit
# Keys of config.json before a strategy's options moved into ``options``: read back into it.
LEGACY_OPTIONS = ("unfreeze", "lr", "head_lr", "lr_decay", "rank", "alpha")


@dataclass(frozen=True)
class FitConfig(FitFields):
    """Options of ``headstart.fit`` / ``headstart fit``: the shared ones (``FitFields``, declared in
    headstart.core.fields) and the strategy's own, in ``options``; CLI flags are these names with dashes.
    ``FitConfig.of(strategy="lora", dropout=0.1, epochs=3)`` sorts keywords into the two."""

    # the strategy's own options (fields of its dataclass), by name; a None value means its default
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "track", parse_trackers(self.track))
        if self.task in TASK_CHOICES or self.task in ("classification", "multilabel"):
            object.__setattr__(self, "task", check_task(self.task))
        checks = [
            (0 < self.val_fraction < 1, "--val-fraction must be between 0 and 1 (e.g. 0.2)"),
            (0 <= self.test_fraction < 1, "--test-fraction must be in [0, 1)"),
            (self.val_fraction + self.test_fraction < 1, "--val-fraction plus --test-fraction must stay below 1"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (0 <= self.seed < 2**32, "--seed must be a whole number from 0 to 2**32 - 1"),
            (self.shots is None or self.shots >= 1, "--shots must be at least 1 example per class"),
            (self.unlabelled is None or self.strategy == "linear", f"--unlabelled learns from the pool with "
             f"--strategy linear only (got {self.strategy}); fit linear with the pool, or drop --unlabelled"),
            (self.batch_size is None or self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.patience >= 1, "--patience must be at least 1"),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}"),
            (self.num_workers is None or self.num_workers >= 0, "--num-workers must be 0 or more"),
            (self.image_size is None or self.image_size >= 16, "--image-size must be at least 16 pixels"),
            (self.max_length is None or self.max_length >= 8, "--max-length must be at least 8 tokens"),
            (self.clip_seconds is None or 0.05 <= self.clip_seconds <= 600,
             "--clip-seconds must be between 0.05 and 600 seconds"),
            (0 <= self.warmup < 1, "--warmup is a fraction of the steps, in [0, 1)"),
            (0 <= self.weight_decay < math.inf, "--weight-decay must be a finite number, 0 or more"),
            (0 <= self.l2sp < math.inf, "--l2sp must be 0 (off) or a finite number above it"),
            (self.bn in BN_POLICIES, f"--bn must be one of {', '.join(BN_POLICIES)}"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.regression_loss in REGRESSION_LOSSES,
             f"--regression-loss must be one of {', '.join(REGRESSION_LOSSES)}"),
            (self.balance in BALANCE_MODES, f"--balance must be one of {', '.join(BALANCE_MODES)}"),
            (self.select_metric in SELECT_CHOICES, f"--select-metric must be one of {', '.join(SELECT_CHOICES)}"),
            (self.task in TASK_CHOICES, f"--task must be one of {', '.join(TASK_CHOICES)}"),
            (self.label_sep is None or (isinstance(self.label_sep, str) and self.label_sep.strip() != ""),
             "--label-sep must be a non-blank string, e.g. '|'"),
        ]
        problems = [msg for ok, msg in checks if not ok]
        if problems:
            raise ConfigError("Invalid options: " + "; ".join(problems) + ".")
        taken = option_fields(STRATEGIES.get(self.strategy))  # a None value it takes is recorded (its default)
        given = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(self.options).items()
                 if v is not None or k in taken}
        object.__setattr__(self, "options", given)
        if self.strategy == "auto":
            check_option_names(given, {s: STRATEGIES[s] for s in AUTO_STRATEGIES}, "Strategy 'auto'", STRATEGIES)
            problems = dict.fromkeys(p for s in AUTO_STRATEGIES for p in option_problems(STRATEGIES[s], given))
            if problems:
                raise ConfigError("Invalid options: " + "; ".join(problems) + ".")
        elif self.strategy in STRATEGIES:  # an unregistered one is a strategy object's: fit() takes it as it is
            check_option_names(given, {self.strategy: STRATEGIES[self.strategy]}, f"Strategy {self.strategy!r}",
                               STRATEGIES)
            make_strategy(self.strategy, **given)  # the strategy's own checks of the values

    @classmethod
    def of(cls, **values: Any) -> "FitConfig":
        """A FitConfig from keywords: the shared fields by name, the rest the strategy's own options
        (``FitConfig.of(strategy="lora", dropout=0.1)`` is ``FitConfig(strategy="lora", options={"dropout": 0.1})``)."""
        shared, own = split_options(values)
        return cls(**shared, options={**values.get("options", {}), **own})

    def batch(self) -> int:
        """The training batch size: as given, else the strategy's default (``default_batch_size``, else 32)."""
        return self.batch_size or getattr(STRATEGIES.get(self.strategy), "default_batch_size", DEFAULT_BATCH_SIZE)

    def strategy_options(self) -> dict[str, Any]:
        """The strategy's own options as given (those not given take the strategy's defaults)."""
        return dict(self.options)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        out["track"] = list(self.track)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FitConfig":
        """Inverse of ``to_dict``; unknown keys are an error that names them. A config.json written before
        strategy options moved into ``options`` (``unfreeze``, ``lr``... at the top) reads the same."""
        known = {f.name for f in dataclasses.fields(cls)}
        data = dict(data)
        legacy = {k: data.pop(k) for k in LEGACY_OPTIONS if k in data}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown config keys {unknown}; known keys: {sorted(known)}.")
        options = {**{k: v for k, v in legacy.items() if v is not None}, **data.get("options", {})}
        return cls(**{**data, "options": options})


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (the shared fields, the rest: strategy options, None values left out)."""
    shared = shared_names()
    return ({k: v for k, v in options.items() if k in shared},
            {k: v for k, v in options.items() if k not in shared and k != "options" and v is not None})
