"""Run directories: what a fit writes, refusing to clobber a run, and predicting from it in a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import headstart
from headstart.core.errors import RunError

NEW_TEXTS = ["The keeper caught the ball in the rain", "Fold the cream into the warm custard", "a b c"]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def as_arrays(rows: list[dict], classes: list[str]) -> tuple[list[str], np.ndarray]:
    return [r["label"] for r in rows], np.array([[r["probabilities"][c] for c in classes] for r in rows])


@pytest.mark.parametrize("run", ["text_run", "image_run"])
def test_run_directory_holds_every_record_and_the_model(run, request):
    result, out = request.getfixturevalue(run)
    for name in ("config.json", "split.json", "history.jsonl", "metrics.json",
                 "model/model.safetensors", "model/headstart.json"):
        assert (out / name).is_file(), name
    assert result.run_dir == out
    config = json.loads((out / "config.json").read_text())["config"]
    assert config == result.config.to_dict()
    assert headstart.FitConfig.from_dict(config) == result.config
    assert json.loads((out / "split.json").read_text()) == result.split
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert history == result.history and history
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] == result.metrics["val"]["accuracy"]
    spec = json.loads((out / "model/headstart.json").read_text())
    assert spec["classes"] == result.classes
    assert not [p.name for p in out.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_text_run_saves_the_tokenizer(text_run):
    _, out = text_run
    assert (out / "model" / "tokenizer.json").is_file() or (out / "model" / "vocab.txt").is_file()
    assert (out / "model" / "tokenizer_config.json").is_file()


def test_image_run_records_the_partial_fit(image_run):
    result, out = image_run
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["strategy"] == "partial" and config["epochs"] == 1 and config["options"]["unfreeze"] == 2
    assert len((out / "history.jsonl").read_text().splitlines()) == 1
    assert json.loads((out / "model/headstart.json").read_text())["preprocessing"]["size"] == 32


def test_fitting_again_into_a_run_without_overwrite_fails_and_keeps_it(text_run, text_csv, tiny_text_dir):
    _, out = text_run
    before = tree_bytes(out)
    with pytest.raises(RunError, match="overwrite"):
        headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(out), progress=False, seed=5)
    assert tree_bytes(out) == before


def test_overwrite_replaces_the_run(tmp_path, text_pairs, text_backbone):
    out = tmp_path / "run"
    headstart.fit(text_pairs, text_backbone, "linear", out=str(out), progress=False, seed=1)
    headstart.fit(text_pairs, text_backbone, "linear", out=str(out), progress=False, seed=2, overwrite=True)
    assert json.loads((out / "split.json").read_text())["seed"] == 2
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hs-cache", "run"]


def test_save_after_fit_writes_the_same_run(tmp_path, text_pairs, text_backbone):
    result = headstart.fit(text_pairs, text_backbone, "linear", progress=False)
    assert result.run_dir is None
    result.save(tmp_path / "later")
    loaded = headstart.load_run(tmp_path / "later")
    labels, probs = as_arrays(loaded.predict(NEW_TEXTS, device="cpu"), result.classes)
    ref_labels, ref_probs = as_arrays(result.predict(NEW_TEXTS, device="cpu"), result.classes)
    assert labels == ref_labels
    np.testing.assert_allclose(probs, ref_probs, atol=1e-5)


def test_loaded_runs_predict_the_same_in_a_new_process(text_run, image_run, image_folder):
    text_result, text_dir = text_run
    image_result, image_dir = image_run
    images = sorted(str(p) for p in image_folder.rglob("*.png"))[::5]
    script = textwrap.dedent("""
        import json, sys
        import headstart
        text_dir, image_dir, texts, images = json.loads(sys.argv[1])
        print(json.dumps({"text": headstart.load_run(text_dir).predict(texts, device="cpu"),
                          "image": headstart.predict(image_dir, images, device="cpu")}))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = json.dumps([str(text_dir), str(image_dir), NEW_TEXTS, images])
    proc = subprocess.run([sys.executable, "-c", script, args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=str(text_dir.parent))
    assert proc.returncode == 0, proc.stderr
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    for result, key, inputs in ((text_result, "text", NEW_TEXTS), (image_result, "image", images)):
        here = result.predict(inputs, device="cpu")
        assert [r["input"] for r in fresh[key]] == [r["input"] for r in here]
        labels, probs = as_arrays(fresh[key], result.classes)
        ref_labels, ref_probs = as_arrays(here, result.classes)
        assert labels == ref_labels
        np.testing.assert_allclose(probs, ref_probs, atol=1e-5)


def test_load_run_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="not a headstart run"):
        headstart.load_run(tmp_path)


def test_predict_rejects_inputs_of_the_other_modality(image_run):
    _, out = image_run
    with pytest.raises(RunError, match="This run takes images, but the data given holds texts"):
        headstart.predict(out, ["some text"])


def test_writing_under_a_file_is_a_run_error(tmp_path, text_pairs, text_backbone):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the run's parent folder should be")
    with pytest.raises(RunError, match="Could not write the run"):
        headstart.fit(text_pairs, text_backbone, "linear", out=str(blocker / "run"), progress=False)
    assert blocker.read_text().startswith("a file")


def test_writing_into_a_read_only_folder_is_a_run_error(tmp_path, text_pairs, text_backbone):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running with privileges that ignore folder permissions")
        with pytest.raises(RunError, match="writable"):
            headstart.fit(text_pairs, text_backbone, "linear", out=str(locked / "run"), progress=False)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_an_existing_run_is_refused_before_any_work(text_run, text_csv, tiny_text_dir, tmp_path):
    _, out = text_run
    cache = tmp_path / "fresh-cache"
    with pytest.raises(RunError, match="already holds a headstart run"):
        headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(out), progress=False,
                      cache_dir=str(cache))
    assert not cache.exists()  # no features were computed for a fit that could not be saved


def test_out_naming_an_existing_file_is_a_run_error_and_keeps_the_file(tmp_path, text_pairs, text_backbone):
    target = tmp_path / "notes.txt"
    target.write_text("precious")
    with pytest.raises(RunError, match="is a file"):
        headstart.fit(text_pairs, text_backbone, "linear", out=str(target), progress=False, overwrite=True)
    assert target.read_text() == "precious"


def _copy_with_task(run: Path, dest: Path, task) -> Path:
    """A copy of ``run`` whose model/headstart.json holds ``task`` under "task" (``...``: no "task" at all)."""
    import shutil

    shutil.copytree(run, dest)
    spec_file = dest / "model" / "headstart.json"
    spec = json.loads(spec_file.read_text())
    if task is ...:
        del spec["task"]
    else:
        spec["task"] = task
    spec_file.write_text(json.dumps(spec))
    return dest


def test_a_run_saved_before_tasks_existed_is_single_label(text_run, tmp_path):
    result, run = text_run
    old = headstart.load_run(_copy_with_task(run, tmp_path / "old", ...))
    assert old.task.name == "single-label" and old.task.classes == result.classes
    assert old.temperature == headstart.load_run(run).temperature
    labels, probs = as_arrays(old.predict(NEW_TEXTS, device="cpu"), result.classes)
    ref_labels, ref_probs = as_arrays(result.predict(NEW_TEXTS, device="cpu"), result.classes)
    assert labels == ref_labels
    np.testing.assert_allclose(probs, ref_probs, atol=1e-6)


@pytest.mark.parametrize("task", [
    "multi-label",  # a bare name, not a record
    ["regression"],
    {"name": "ranking"},
    {"name": "multi-label", "thresholds": [0.5]},  # the run has two labels
    {"name": "multi-label", "thresholds": [0.5, None]},
    {"name": "multi-label", "thresholds": [0.5, 1.5]},
    {"name": "multi-label", "thresholds": [0.5, "0.4"]},
    {"name": "regression", "target": "y", "train_std": 1.0},
    {"name": "regression", "target": "y", "train_mean": "high", "train_std": 1.0},
    {"name": "regression", "target": "y", "train_mean": 3.0, "train_std": 0.0},
])
def test_a_damaged_task_record_is_a_run_error_naming_the_file(text_run, tmp_path, task):
    run = _copy_with_task(text_run[1], tmp_path / "damaged", task)
    with pytest.raises(RunError, match=r"model/headstart\.json: its 'task' record is damaged") as caught:
        headstart.load_run(run)
    assert str(run) in str(caught.value)


def test_a_task_that_does_not_fit_the_saved_head_is_a_run_error(text_run, tmp_path):
    task = {"name": "regression", "target": "y", "train_mean": 3.0, "train_std": 1.0, "scale_folded": True}
    run = _copy_with_task(text_run[1], tmp_path / "edited", task)
    with pytest.raises(RunError, match=r"headstart\.json asks for a head of 1 outputs .* has 2"):
        headstart.load_run(run)
