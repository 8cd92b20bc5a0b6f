"""One training loop: contrastive trains through the engine (checkpoints and resume, early stopping), and the
user's callbacks reach it from ``headstart.fit(..., callbacks=[...])``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import headstart

COSTS = {"seconds", "peak_rss_mb", "peak_gpu_mb", "backbone_forward_items"}
CONTRASTIVE = dict(steps=6, progress=False)  # 24 training texts, 16 a step: 3 epochs of 2 steps


class Crash(Exception):
    """A crash right after an epoch was checkpointed."""


class CrashAfter(headstart.Callback):
    """Raise after epoch ``last`` (the user's callbacks run after the checkpoint is written)."""

    def __init__(self, last: int):
        self.last = last

    def after_epoch(self, state, epoch: int) -> None:
        if epoch >= self.last:
            raise Crash(f"after epoch {epoch}")


class Recorder(headstart.Callback):
    """Keeps each epoch's row and the number of batches; stops training after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None):
        self.rows, self.batches, self.stop_after = [], 0, stop_after

    def after_batch(self, state) -> bool:
        self.batches += 1
        return False

    def after_epoch(self, state, epoch: int) -> None:
        self.rows.append(dict(state.outcome.history[-1]))
        if self.stop_after is not None and epoch >= self.stop_after:
            state.outcome.stopped_early = True


def costless(metrics: dict) -> dict:
    metrics = {k: v for k, v in metrics.items() if k not in COSTS}
    info = dict(metrics.get("strategy_info", {}))
    for key in ("contrastive_seconds", "resumed_from", "train_history"):
        info.pop(key, None)
    return {**metrics, "strategy_info": info}


def test_contrastive_resumes_after_a_crash_and_ends_as_the_uninterrupted_run(text_csv, tiny_text_dir, tmp_path):
    full, run = tmp_path / "full", tmp_path / "crashed"
    headstart.fit(str(text_csv), str(tiny_text_dir), "contrastive", out=full, **CONTRASTIVE)
    with pytest.raises(Crash):
        headstart.fit(str(text_csv), str(tiny_text_dir), "contrastive", out=run, callbacks=[CrashAfter(1)],
                      **CONTRASTIVE)
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 1
    torch.manual_seed(7)  # resume restores its own generators
    resumed = headstart.fit(resume=run, progress=False)
    assert resumed.info["resumed_from"] == 1 and resumed.info["steps"] == 6
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (run, full)]
    assert costless(metrics[0]) == costless(metrics[1])
    a, b = (load_file(str(folder / "model/model.safetensors")) for folder in (run, full))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_user_callback_sees_every_contrastive_epoch(text_pairs, text_backbone):
    seen = Recorder()
    result = headstart.fit(text_pairs, text_backbone, "contrastive", callbacks=[seen], **CONTRASTIVE)
    assert [row["epoch"] for row in seen.rows] == [1, 2, 3] and seen.batches == 6 == result.info["steps"]
    assert all(row["val_loss"] >= 0 and row["train_loss"] >= 0 for row in seen.rows)


def test_a_user_callback_can_stop_fine_tuning(text_pairs, text_backbone):
    stop = Recorder(stop_after=1)
    result = headstart.fit(text_pairs, text_backbone, "partial", unfreeze=1, epochs=4, patience=10,
                           callbacks=[stop], progress=False)
    assert [row["epoch"] for row in stop.rows] == [1] and len(result.history) == 1


def test_the_linear_decay_contrastive_trains_with_reaches_zero_in_a_straight_line():
    from headstart.training.engine import warmup_cosine

    f = warmup_cosine(10, 0.2, "linear")
    assert [round(f(step), 3) for step in range(11)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125,
                                                          0.0]
