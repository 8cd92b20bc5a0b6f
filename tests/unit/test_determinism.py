"""Determinism: the same seed gives the same run, in one process or in two fresh ones.

Tolerance: none. On CPU every comparison here is exact: metrics (minus wall-clock and memory figures)
compared with ``==``, history rows with ``==``, model tensors with ``torch.equal``, for ``linear``
(each process with a fresh, empty feature cache), ``partial`` and ``lp-ft``. This holds because the
fine-tuning loop seeds its DataLoader generator and the global generator from the fit's seed; fresh heads,
LoRA adapters and the weights of ``random:NAME`` backbones loaded by name are drawn from that seed on a
forked generator (torch seeds its global generator randomly at import, so nothing may depend on it); and
the linear probe's L-BFGS solve runs on one thread. Both processes run with the same
thread count (``OMP_NUM_THREADS=1``); reductions split over a different number of threads may round
differently, so bit-identity across machines or thread counts is not claimed. No
``torch.use_deterministic_algorithms`` is needed on CPU. On GPUs (not tested here) cuDNN kernel choice
can break bit-identity.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import headstart
from headstart.data import load_data

COSTS = {"seconds", "peak_rss_mb", "peak_gpu_mb", "backbone_forward_items"}
SCRIPT = textwrap.dedent("""
    import json, sys
    import headstart
    data, root, cache = sys.argv[1:4]
    common = dict(image_size=32, epochs=2, batch_size=8, patience=10, progress=False, device="cpu", seed=3)
    for strategy, extra in (("linear", {}), ("partial", {"unfreeze": 2}), ("lp-ft", {"unfreeze": 1})):
        headstart.fit(data, "random:mobilenetv2", strategy, out=f"{root}/{strategy}", cache_dir=cache,
                      **common, **extra)
""")


def record(run: Path) -> tuple[dict, list[dict], dict[str, torch.Tensor]]:
    metrics = {k: v for k, v in json.loads((run / "metrics.json").read_text()).items() if k not in COSTS}
    history = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
               for line in (run / "history.jsonl").read_text().splitlines()]
    return metrics, history, load_file(str(run / "model/model.safetensors"))


def assert_same_run(a: Path, b: Path) -> None:
    (ma, ha, ta), (mb, hb, tb) = record(a), record(b)
    assert ma == mb
    assert ha == hb
    assert ta.keys() == tb.keys()
    unequal = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not unequal, f"{len(unequal)} tensors differ, e.g. {unequal[:3]}"


def test_the_same_seed_gives_bit_identical_runs_in_fresh_processes(image_folder, tmp_path):
    """linear, partial and lp-ft, each process with its own empty feature cache: exactly equal."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for name in ("a", "b"):
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(image_folder), str(tmp_path / name),
                               str(tmp_path / f"cache-{name}")], capture_output=True, text=True, env=env,
                              timeout=400)
        assert proc.returncode == 0, proc.stderr[-3000:]
    for strategy in ("linear", "partial", "lp-ft"):
        assert_same_run(tmp_path / "a" / strategy, tmp_path / "b" / strategy)
    a = load_file(str(tmp_path / "a/linear/model/model.safetensors"))
    b = load_file(str(tmp_path / "b/lp-ft/model/model.safetensors"))
    assert not all(torch.equal(a[k], b[k]) for k in a)  # the comparison can see a difference


@pytest.mark.parametrize("strategy", ["partial", "lora"])
def test_the_same_seed_gives_the_same_fine_tuning_twice_in_one_process(text_csv, tiny_text_dir, tmp_path, strategy):
    """Whatever the global generator holds between fits (heads and adapters come from the seed): exact."""
    options = dict(epochs=2, batch_size=8, progress=False, seed=5, unfreeze=1 if strategy == "partial" else None)
    for name, noise in (("a", 1), ("b", 2)):
        torch.manual_seed(noise)
        headstart.fit(str(text_csv), str(tiny_text_dir), strategy, out=str(tmp_path / name), **options)
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_different_seeds_give_different_splits(image_folder, text_csv):
    for source in (str(image_folder), str(text_csv)):
        splits = {seed: load_data(source, seed=seed).split for seed in (0, 1, 2)}
        assert splits[0]["val_origins"] == load_data(source, seed=0).split["val_origins"]
        vals = {tuple(sorted(s["val_origins"])) for s in splits.values()}
        assert len(vals) == 3
        for s in splits.values():
            assert sorted(s["train_origins"] + s["val_origins"]) == sorted(splits[0]["train_origins"]
                                                                            + splits[0]["val_origins"])


def test_different_seeds_give_different_fine_tuning(text_csv, tiny_text_dir):
    runs = [headstart.fit(str(text_csv), str(tiny_text_dir), "partial", epochs=1, batch_size=8, unfreeze=1,
                          progress=False, seed=seed) for seed in (0, 1)]
    assert runs[0].split["val_origins"] != runs[1].split["val_origins"]
    assert runs[0].history[0]["train_loss"] != runs[1].history[0]["train_loss"]
