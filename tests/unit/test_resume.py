"""Crash safety: per-epoch checkpoints, resuming after an exception or a real SIGKILL, full disks.

Resumed runs must end with exactly the metrics and history of an uninterrupted run with the same seed
(bit-identical on CPU in one process at a time: every RNG stream, the optimizer, the scheduler and the
best epoch's weights are restored). Only wall-clock and memory figures may differ; ``same`` ignores them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import headstart
from headstart.training import engine
from headstart.core.errors import RunError

from conftest import write_image_folder

COSTS = {"seconds", "peak_rss_mb", "peak_gpu_mb", "backbone_forward_items"}
FIT = dict(image_size=32, epochs=3, batch_size=8, unfreeze=2, patience=10, progress=False)


class Crash(Exception):
    """Stands in for a crash right after an epoch's checkpoint was written."""


def same(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in COSTS}


def history(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def crash_after_epoch(monkeypatch, last: int) -> None:
    real = engine.save_checkpoint

    def save_then_crash(folder, tensors, state):
        real(folder, tensors, state)
        if state["epoch"] >= last:
            raise Crash(f"simulated crash after epoch {state['epoch']}")

    monkeypatch.setattr(engine, "save_checkpoint", save_then_crash)


def fit_image(folder: Path, out: Path, strategy: str = "partial", **options):
    return headstart.fit(str(folder), "random:mobilenetv2", strategy, out=str(out), **{**FIT, **options})


@pytest.fixture
def fit_text(text_csv, tiny_text_dir):
    """Fit the tiny BERT on topics.csv (files, so ``resume=RUN`` needs nothing else): fast."""
    def fit(out: Path, strategy: str = "partial", **options):
        unfreeze = None if strategy == "lora" else 1
        return headstart.fit(str(text_csv), str(tiny_text_dir), strategy, out=str(out),
                             **{**FIT, "image_size": None, "unfreeze": unfreeze, **options})
    return fit


@pytest.fixture
def fit_any(request, image_folder, fit_text):
    if request.param == "image":
        return lambda out, strategy, **o: fit_image(image_folder, out, strategy, **o)
    return fit_text


@pytest.mark.parametrize("fit_any, strategy", [("image", "partial"), ("text", "lp-ft"), ("text", "lora")],
                         indirect=["fit_any"])
def test_resume_after_a_crash_matches_the_uninterrupted_run(fit_any, tmp_path, monkeypatch, strategy):
    """Image partial (BatchNorm, augmentation), text LP-FT and LoRA (dropout): exactly equal."""
    full = tmp_path / "full"
    fit_any(full, strategy)
    assert not (full / "checkpoints").exists()  # a finished run keeps no training state

    run = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 1)
        with pytest.raises(Crash):
            fit_any(run, strategy)
    state = json.loads((run / "checkpoints/state.json").read_text())
    scored_start = strategy == "lp-ft"  # LP-FT's history starts with epoch 0, the probe's model scored
    assert state["epoch"] == 1 and len(state["history"]) == 1 + scored_start
    assert (run / "config.json").is_file() and (run / "split.json").is_file() and not (run / "model").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "config.json", "split.json", "state-0001.safetensors", "state.json"]
    with pytest.raises(RunError, match="--resume"):  # a plain fit into it is refused and says what to do
        fit_any(run, strategy)

    torch.manual_seed(123)  # whatever the global generator holds, resume restores its own
    resumed = headstart.fit(resume=run, progress=False)
    assert resumed.run_dir == run and not (run / "checkpoints").exists()
    assert same(json.loads((run / "metrics.json").read_text())) == same(json.loads((full / "metrics.json").read_text()))
    assert history(run) == history(full) and len(history(run)) == 3 + scored_start
    assert json.loads((run / "split.json").read_text()) == json.loads((full / "split.json").read_text())
    assert json.loads((run / "config.json").read_text())["config"] == json.loads((full / "config.json").read_text())["config"]
    a, b = load_file(str(run / "model/model.safetensors")), load_file(str(full / "model/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_of_in_memory_data_needs_the_data_again(text_pairs, text_backbone, tmp_path, monkeypatch):
    run = tmp_path / "run"
    options = dict(epochs=2, batch_size=8, unfreeze=1, progress=False, seed=3)
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 1)
        with pytest.raises(Crash):
            headstart.fit(text_pairs, text_backbone, "partial", out=str(run), **options)
    with pytest.raises(RunError, match="in-memory"):
        headstart.fit(resume=run, progress=False)
    with pytest.raises(headstart.ConfigError, match="epochs"):
        headstart.fit(text_pairs, resume=run, epochs=5)
    items, labels = text_pairs
    with pytest.raises(RunError, match="split"):
        headstart.fit((items[:-2], labels[:-2]), text_backbone, resume=run, progress=False)
    resumed = headstart.fit(text_pairs, text_backbone, resume=run, progress=False)
    full = headstart.fit(text_pairs, text_backbone, "partial", out=str(tmp_path / "full"), **options)
    assert same(resumed.metrics) == same(full.metrics)
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in full.history]


def test_a_fit_that_fails_before_its_first_epoch_leaves_nothing(fit_text, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(headstart.ConfigError, match="layer groups"):
        fit_text(out, unfreeze=99)
    assert not out.exists()


def test_resume_refuses_runs_with_nothing_to_resume(fit_text, tmp_path):
    with pytest.raises(RunError, match="Nothing to resume"):
        headstart.fit(resume=tmp_path / "nowhere")
    done = tmp_path / "done"
    fit_text(done, epochs=1)
    with pytest.raises(RunError, match="finished run"):
        headstart.fit(resume=done)


def test_a_damaged_checkpoint_is_a_clear_error(fit_text, tmp_path, monkeypatch):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 1)
        with pytest.raises(Crash):
            fit_text(run)
    tensors = run / "checkpoints/state-0001.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(RunError, match="checksum"):
        headstart.fit(resume=run, progress=False)


def test_overwriting_a_finished_run_keeps_it_intact_until_the_new_one_finishes(fit_text, tmp_path, monkeypatch):
    run = tmp_path / "run"
    fit_text(run, epochs=1)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 1)
        with pytest.raises(Crash):
            fit_text(run, epochs=2, overwrite=True, seed=4)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()
             if p.relative_to(run).parts[0] != "checkpoints"}
    assert after == before  # only checkpoints/ was added
    headstart.fit(resume=run, progress=False)
    assert json.loads((run / "config.json").read_text())["config"]["seed"] == 4
    assert not (run / "checkpoints").exists()


# ---- a real kill -9 ----------------------------------------------------------------------------------

def headstart_fit(*args: str, cwd: Path) -> subprocess.Popen:
    cli = [sys.executable, "-c", "from headstart.cli.app import main; main()", "fit", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cli, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:] + out[-2000:]


def test_sigkill_mid_training_then_resume_gives_the_uninterrupted_metrics(tmp_path):
    data = write_image_folder(tmp_path / "colours", per_class=40)  # epochs long enough to catch one
    args = ["colours", "--model", "random:mobilenetv2", "--strategy", "partial", "--image-size", "32",
            "--epochs", "4", "--batch-size", "8", "--unfreeze", "3", "--patience", "10", "--seed", "7",
            "--quiet", "--cache-dir", str(tmp_path / "cache")]
    assert data.is_dir()
    finish(headstart_fit(*args, "--out", "full", cwd=tmp_path))

    proc = headstart_fit(*args, "--out", "killed", cwd=tmp_path)
    state_file = tmp_path / "killed/checkpoints/state.json"
    deadline = time.monotonic() + 240
    epoch = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            epoch = json.loads(state_file.read_text())["epoch"]
        except (OSError, ValueError):
            epoch = 0  # not written yet (os.replace makes a half-written state.json impossible)
        if epoch >= 1:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        proc.communicate()
        pytest.fail(f"the fit ended (rc {proc.returncode}) before it could be killed after epoch 1")
    assert epoch >= 1, "no checkpoint within 240 s"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed = tmp_path / "killed"
    assert not (killed / "metrics.json").exists() and not (killed / "model").exists()
    saved = json.loads(state_file.read_text())["epoch"]
    assert 1 <= saved <= 4  # 4: killed after the last checkpoint, before the final save

    finish(headstart_fit("--resume", "killed", "--quiet", cwd=tmp_path))
    full = tmp_path / "full"
    assert same(json.loads((killed / "metrics.json").read_text())) == same(json.loads((full / "metrics.json").read_text()))
    assert history(killed) == history(full)
    a, b = load_file(str(killed / "model/model.safetensors")), load_file(str(full / "model/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (killed / "checkpoints").exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# ---- a full disk ---------------------------------------------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_a_run_error_and_leaves_the_earlier_run_intact(tiny_disk, text_pairs, text_backbone):
    earlier = tiny_disk / "earlier"
    earlier.mkdir()
    (earlier / "metrics.json").write_text('{"val": {"accuracy": 0.9}}\n')
    (earlier / "model").mkdir()
    (earlier / "model/headstart.json").write_text("{}\n")
    before = {p: p.read_bytes() for p in earlier.rglob("*") if p.is_file()}
    # The tiny BERT's weights (~1 MB) cannot fit in 64 KiB: the final save (or the first checkpoint) fails.
    for out, overwrite in ((tiny_disk / "new", False), (earlier, True)):
        with pytest.raises(RunError, match="disk has space"):
            headstart.fit(text_pairs, text_backbone, "linear", out=str(out), overwrite=overwrite, progress=False)
        assert {p: p.read_bytes() for p in earlier.rglob("*") if p.is_file() and "checkpoints" not in p.parts} == before
    assert not [p.name for p in tiny_disk.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    with pytest.raises(RunError, match="disk has space"):
        headstart.fit(text_pairs, text_backbone, "partial", out=str(tiny_disk / "tuned"), epochs=1,
                      unfreeze=1, progress=False)
    assert {p: p.read_bytes() for p in earlier.rglob("*") if p.is_file() and "checkpoints" not in p.parts} == before
