"""The built-in strategies' options, declared without torch: each strategy class extends its options class here
with its ``fit``, and ``headstart fit --help`` reads names, help and defaults from here without loading torch.

The default learning rates live here too, so a flag's help states the rate a fit actually uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from headstart.training.defaults import DEFAULT_CS
from headstart.strategies.options import Checked, check_count, check_decay, check_rate, check_strengths, option

FINETUNE_LR = {"image": 5e-4, "text": 1e-4, "audio": 5e-4}  # partial / full: learning rate of the top backbone group
FRESH_HEAD_LR = 1e-3  # a fresh head's learning rate while fine-tuning
LORA_LR = {"image": 2e-3, "text": 2e-3, "audio": 2e-3}  # adapters start at zero and need larger steps than full weights
LORA_HEAD_LR = 1e-2  # the fresh head keeps pace with them (MiniLM on 200 BBC texts: 0.94 vs 0.73 at 5e-4/1e-3)
CONTRASTIVE_LR = 2e-5  # SetFit's body learning rate
COMPARED = ("linear", "partial", "full", "lp-ft")  # what `compare` runs unless told


def rate(value: float) -> str:
    """A learning rate as people write it: 5e-4, 2e-5, 0.01."""
    if value >= 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def per_modality(rates: dict[str, float]) -> str:
    """``{"image": 5e-4, "text": 1e-4}`` as "5e-4 images, 1e-4 texts" (one number when they agree)."""
    if len(set(rates.values())) == 1:
        return rate(next(iter(rates.values())))
    plural = {"image": "images", "text": "texts", "audio": "sounds"}
    return ", ".join(f"{rate(value)} {plural.get(modality, modality)}" for modality, value in rates.items())


LR_HELP = f"Learning rate of the top layer group [default: {per_modality(FINETUNE_LR)}]."
HEAD_LR_HELP = f"Learning rate of the head [default: {rate(FRESH_HEAD_LR)}]."
DECAY_HELP = "Layer-wise decay: each lower group learns at lr * decay."
CS_HELP = "Inverse regularisation strengths C tried; the best on validation is kept."


@dataclass(frozen=True)
class LinearOptions(Checked):
    """Options of ``linear``."""

    cs: tuple[float, ...] = option(DEFAULT_CS, CS_HELP, check_strengths)


@dataclass(frozen=True)
class PartialOptions(Checked):
    """Options of ``partial``."""

    unfreeze: int = option(2, "Train the last N layer groups (and the head).", check_count)
    lr: float | None = option(None, LR_HELP, check_rate)
    head_lr: float | None = option(None, HEAD_LR_HELP, check_rate)
    lr_decay: float = option(0.7, DECAY_HELP, check_decay)


@dataclass(frozen=True)
class FullOptions(Checked):
    """Options of ``full``."""

    lr: float | None = option(None, LR_HELP, check_rate)
    head_lr: float | None = option(None, HEAD_LR_HELP, check_rate)
    lr_decay: float = option(0.7, DECAY_HELP, check_decay)


@dataclass(frozen=True)
class LPFTOptions(Checked):
    """Options of ``lp-ft``."""

    unfreeze: int | None = option(None, "Train the last N layer groups (and the head) [default: all].",
                                  check_count)
    lr: float | None = option(None, "Learning rate of the top layer group [default: a tenth of the head's].",
                              check_rate)
    lr_decay: float = option(0.7, DECAY_HELP, check_decay)


@dataclass(frozen=True)
class LoRAOptions(Checked):
    """Options of ``lora``."""

    rank: int = option(8, "Rank of the low-rank adapters.")
    alpha: float = option(16, "Adapter scaling numerator: updates are scaled by alpha / rank.")
    dropout: float = option(0.05, "Dropout on the adapters' input, in [0, 1).")
    lr: float | None = option(None, f"Learning rate of the adapters [default: {per_modality(LORA_LR)}].",
                              check_rate)
    head_lr: float | None = option(None, f"Learning rate of the head [default: {rate(LORA_HEAD_LR)}].", check_rate)
    target_modules: tuple[str, ...] | None = option(None, "Layers to adapt: module names or name endings such "
                                                    "as query,value [default: chosen per model family].")


@dataclass(frozen=True)
class ContrastiveOptions(Checked):
    """Options of ``contrastive``."""

    default_batch_size: ClassVar[int] = 16  # texts per step (--batch-size), SetFit's; every pair is scored

    steps: int = option(60, "Optimizer steps (rounded up to whole passes over the training texts), each on one "
                        "batch of distinct texts (--batch-size of them, 16 unless given; every pair is scored).")
    lr: float | None = option(None, f"Learning rate of the encoder [default: {rate(CONTRASTIVE_LR)}, SetFit's].",
                              check_rate)
    cs: tuple[float, ...] = option(DEFAULT_CS, "Inverse regularisation strengths C tried for the head; the "
                                   "best on validation is kept.", check_strengths)


# The declarations by strategy name, read by the CLI's flags without torch; register_strategy adds a user's.
DECLARED: dict[str, type] = {"linear": LinearOptions, "partial": PartialOptions, "full": FullOptions,
                             "lp-ft": LPFTOptions, "lora": LoRAOptions, "contrastive": ContrastiveOptions}
