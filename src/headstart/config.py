"""FitConfig: every option of a fit, validated once, saved with the run as JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from headstart.devices import PRECISIONS
from headstart.engine import TrainSettings
from headstart.errors import ConfigError

BN_POLICIES = ("auto", "frozen", "train")


@dataclass(frozen=True)
class FitConfig:
    """Options of ``headstart.fit`` / ``headstart fit``; CLI flags are these names with dashes."""

    model: str = "minilm-l6"
    strategy: str = "linear"
    weights: str | None = None  # checkpoint file for a timm/torchvision architecture named by ``model``
    image_size: int | None = None  # override the weights' input size (e.g. 96 for small images)
    max_length: int | None = None  # text: tokens kept per item (default 128)
    clip_seconds: float | None = None  # audio: clip length (default: from the data's durations)
    # data
    text_col: str | None = None
    label_col: str | None = None
    image_col: str | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    skip_bad: bool = False
    seed: int = 0
    shots: int | None = None  # keep this many training examples per class (few-shot)
    budget: str | float | None = None  # strategy auto: time for the recommended fine-tuning ("15m")
    # strategy
    unfreeze: int | None = None  # partial / lp-ft: number of last layer groups to train
    lr: float | None = None
    head_lr: float | None = None
    lr_decay: float | None = None
    rank: int | None = None  # lora: adapter rank
    alpha: int | None = None  # lora: adapter scaling numerator
    # training loop (fine-tuning strategies)
    epochs: int = 10
    batch_size: int = 32
    patience: int = 3
    augment: bool = True
    hflip: bool = True
    weight_decay: float = 0.01
    warmup: float = 0.1
    l2sp: float = 0.0  # L2-SP weight (Li et al. 2018): pull trained backbone weights to the pretrained ones; 0 = off
    cache_boundary: bool | None = None  # partial, no augmentation: frozen groups run once, output cached; None: CPUs
    bn: str = "auto"  # BatchNorm statistics while fine-tuning: frozen | train | auto (frozen on small data)
    label_smoothing: float = 0.0
    find_lr: bool = False  # fine-tuning: a learning-rate range test picks the rates (the default ones scaled)
    # hardware
    device: str = "auto"
    precision: str = "auto"
    num_workers: int | None = None  # None: chosen from the device and core count
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        checks = [
            (0 < self.val_fraction < 1, "--val-fraction must be between 0 and 1 (e.g. 0.2)"),
            (0 <= self.test_fraction < 1, "--test-fraction must be in [0, 1)"),
            (self.val_fraction + self.test_fraction < 1, "--val-fraction plus --test-fraction must stay below 1"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.shots is None or self.shots >= 1, "--shots must be at least 1 example per class"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.patience >= 1, "--patience must be at least 1"),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}"),
            (self.num_workers is None or self.num_workers >= 0, "--num-workers must be 0 or more"),
            (self.image_size is None or self.image_size >= 16, "--image-size must be at least 16 pixels"),
            (self.max_length is None or self.max_length >= 8, "--max-length must be at least 8 tokens"),
            (self.clip_seconds is None or 0.05 <= self.clip_seconds <= 600,
             "--clip-seconds must be between 0.05 and 600 seconds"),
            (0 <= self.warmup < 1, "--warmup is a fraction of the steps, in [0, 1)"),
            (self.l2sp >= 0, "--l2sp must be 0 (off) or more"),
            (self.bn in BN_POLICIES, f"--bn must be one of {', '.join(BN_POLICIES)}"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
        ]
        problems = [msg for ok, msg in checks if not ok]
        if problems:
            raise ConfigError("Invalid options: " + "; ".join(problems) + ".")

    def strategy_options(self) -> dict[str, Any]:
        """Options that belong to the strategy (None means its default)."""
        return {"unfreeze": self.unfreeze, "lr": self.lr, "head_lr": self.head_lr, "lr_decay": self.lr_decay,
                "rank": self.rank, "alpha": self.alpha}

    def train_settings(self) -> TrainSettings:
        """The fine-tuning loop's settings."""
        return TrainSettings(
            epochs=self.epochs, batch_size=self.batch_size, patience=self.patience, augment=self.augment,
            hflip=self.hflip, weight_decay=self.weight_decay, warmup=self.warmup, l2sp=self.l2sp,
            cache_boundary=self.cache_boundary, label_smoothing=self.label_smoothing, find_lr=self.find_lr,
            frozen_bn={"auto": None, "frozen": True, "train": False}[self.bn],
            num_workers=self.num_workers or 0, seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FitConfig":
        """Inverse of ``to_dict``; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown config keys {unknown}; known keys: {sorted(known)}.")
        return cls(**data)
