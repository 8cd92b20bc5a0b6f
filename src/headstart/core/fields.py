"""The options every fit shares, declared once: name, type, default and help of each (FitConfig's fields).

``FitConfig`` (headstart.core.config) extends ``FitFields`` with the strategy's own options and the checks of the
values; the CLI's flags of fit, compare, advise and audit are generated from these declarations (headstart.cli.flags)
and the strategies' (headstart.strategies.options). This module imports nothing heavy, so ``headstart --help``
reads it without torch, and the strategy registry reads ``shared_names`` to refuse an option that would shadow one.

Each field's metadata: ``help``; ``group``, which verbs' flags take it (see headstart.cli.flags); optionally
``flags`` (the option's names, e.g. ``("--model", "-m")``), ``metavar``, and ``choices`` (shown in the help;
FitConfig checks them).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from headstart.core.choices import BALANCE_MODES, PRECISIONS, REGRESSION_LOSSES

DEFAULT_BATCH_SIZE = 32  # a strategy may declare its own (``default_batch_size``: contrastive's is 16)
GROUPS = ("model", "input", "data", "budget", "pool", "training", "hardware", "tracking")


def setting(default: Any, help: str, group: str, *, flags: tuple[str, ...] = (), metavar: str | None = None,
            choices: tuple[str, ...] = ()) -> Any:
    """A shared option: a dataclass field with its default and how its flag reads (see the module docstring)."""
    return dataclasses.field(default=default, metadata={"help": help, "group": group, "flags": flags,
                                                        "metavar": metavar, "choices": choices})


SELECT_HELP = ("What chooses the epoch kept and the probe's C [default: the task's main metric]: accuracy | "
               "macro_f1 | balanced_accuracy (single-label); micro_f1 | macro_f1 | map | subset_accuracy "
               "(multi-label); r2 | spearman (regression).")
TASK_HELP = ("What the labels are: single-label | multi-label | regression | auto (lists or separated names: "
             "multi-label; numbers with over 20 distinct values: regression).")


@dataclass(frozen=True)
class FitFields:
    """The options of every fit, whatever its strategy; CLI flags are these names with dashes."""

    model: str = setting("minilm-l6", "Built-in name, timm name, HF id or local dir.", "model",
                         flags=("--model", "-m"))
    strategy: str = setting("linear", "linear | partial | full | lp-ft | lora | contrastive (text) | auto", "model",
                            flags=("--strategy", "-s"))
    weights: str | None = setting(None, "Checkpoint file for the architecture named by --model.", "input")
    image_size: int | None = setting(None, "Input size in pixels [default: from the images' own size, at most the "
                                     "weights' size].", "input")
    max_length: int | None = setting(None, "Text: tokens kept per item [default: 128].", "input")
    clip_seconds: float | None = setting(None, "Audio: clip length in seconds [default: from the data's "
                                         "durations].", "input")
    text_col: str | None = setting(None, "Table column with the texts.", "data")
    label_col: str | None = setting(None, "Table column with the labels.", "data")
    image_col: str | None = setting(None, "Table column with image paths (relative to the table).", "data")
    val_fraction: float = setting(0.2, "Share of DATA held out for validation when --val is not given.", "data")
    test_fraction: float = setting(0.0, "Share of DATA held out as a test set when --test is not given.", "data")
    skip_bad: bool = setting(False, "Skip unreadable or invalid items and list them.", "data")
    task: str = setting("auto", TASK_HELP, "data", choices=("single-label", "multi-label", "regression", "auto"))
    label_sep: str | None = setting(None, "Multi-label: what separates a cell's labels, e.g. '|' [default: | or ; "
                                    "when found].", "data")
    seed: int = setting(0, "Seed of the split, the head and the training order (compare: of the first split; "
                        "repeats use seed+1, seed+2...).", "data")
    shots: int | None = setting(None, "Few-shot: keep this many training examples per class.", "data")
    budget: str | float | None = setting(None, "--strategy auto: time for the recommended fine-tuning, e.g. 15m.", "budget")
    unlabelled: str | None = setting(None, "--strategy linear: a folder or table of unlabelled items to learn from "
                                     "(label spreading on the features; kept only if it validates at least as "
                                     "well).", "pool")
    epochs: int = setting(10, "Most epochs of fine-tuning (early stopping may end sooner).", "training")
    batch_size: int | None = setting(None, f"Training batch size [default: {DEFAULT_BATCH_SIZE}; contrastive: 16 "
                                     "texts per step].", "training")
    patience: int = setting(3, "Epochs without validation improvement before stopping.", "training")
    augment: bool | None = setting(None, "Light augmentation when fine-tuning (images: crops, flips; sound: time "
                                   "shift, gain, noise, time/frequency masks) [default: on; off for aisfx-cnn].",
                                   "training")
    hflip: bool = setting(True, "Random horizontal flips (turn off for digits, text).", "training")
    weight_decay: float = setting(0.01, "AdamW weight decay of the fine-tuned weights.", "training")
    warmup: float = setting(0.1, "Share of the training steps spent warming the learning rate up.", "training")
    l2sp: float = setting(0.0, "L2-SP weight: pull fine-tuned backbone weights toward the pretrained ones (instead "
                          "of their weight decay); 0 = off.", "training")
    cache_boundary: bool | None = setting(None, "partial without augmentation: run the frozen groups once and "
                                          "train on their cached output (memory-mapped float16) [default: on "
                                          "CPUs].", "training")
    bn: str = setting("auto", "BatchNorm statistics while fine-tuning: frozen | train | auto (frozen below 5,000 "
                      "training items or batches of 16).", "training", choices=("auto", "frozen", "train"))
    label_smoothing: float = setting(0.0, "Label smoothing of the fine-tuning loss (0 = off).", "training")
    regression_loss: str = setting("mse", "Fine-tuning a regression: mse | huber (Huber at one standard deviation "
                                   "of the target: a few wild targets pull less).", "training",
                                   choices=REGRESSION_LOSSES)
    balance: str = setting("auto", "Class imbalance: none | weights | sampler | auto (class weights when the "
                           "largest class has over 3x the smallest's examples).", "training",
                           choices=BALANCE_MODES)
    select_metric: str = setting("auto", SELECT_HELP, "training")
    calibrate: bool = setting(True, "Temperature scaling fitted on validation: the probabilities of predict and "
                              "exports (ECE in metrics.json).", "training")
    find_lr: bool = setting(False, "Fine-tuning: pick the learning rates with a short range test (the defaults "
                            "scaled together; recorded in config.json).", "training")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N", "hardware")
    precision: str = setting("auto", "auto | fp32 | bf16 (auto: bf16 where the hardware has it).", "hardware",
                             choices=PRECISIONS)
    num_workers: int | None = setting(None, "DataLoader worker processes [default: by device and cores].",
                                      "hardware")
    cache_dir: str | None = setting(None, "Feature cache [default: ~/.cache/headstart].", "hardware")
    track: tuple[str, ...] = setting((), "Log the config, every epoch, the final metrics and report.html to "
                                     "tensorboard and/or mlflow (comma-separated; offline; pip install "
                                     "'headstart[track]').", "tracking", metavar="TRACKERS")
    track_dir: str | None = setting(None, "TensorBoard's log folder and MLflow's SQLite store [default: "
                                    "OUT/tensorboard/TIME; MLFLOW_TRACKING_URI or ./mlflow.db].", "tracking",
                                    metavar="DIR")


def shared_fields() -> dict[str, dataclasses.Field]:
    """FitFields' fields by name."""
    return {f.name: f for f in dataclasses.fields(FitFields)}


def shared_types() -> dict[str, Any]:
    """FitFields' fields' types by name (their annotations, evaluated)."""
    return typing.get_type_hints(FitFields)


def shared_names() -> frozenset[str]:
    """The names of the options every fit shares: no strategy may declare an option of the same name."""
    return frozenset(shared_fields())
