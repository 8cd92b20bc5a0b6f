"""`fit --unlabelled`: label spreading over a pool of unlabelled items, recorded in the run, refused where it does
not apply. Tiny random MobileNetV2 on colour images (the colours separate even its random features)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from headstart.strategies.spread import domain_auc, spread_labels

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adversarial.cli_harness import cli, refused  # noqa: E402,F401
from conftest import write_image_folder  # noqa: E402


def blobs(per: int, seed: int = 0, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 16) * 10
    x = np.concatenate([c + rng.normal(size=(per, 16)) + shift for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(3), per)


def test_spreading_labels_a_clustered_pool_from_one_label_a_cluster():
    x, y = blobs(40)
    labelled = np.array([0, 40, 80])
    pool = np.setdiff1d(np.arange(120), labelled)
    spread = spread_labels(x[labelled], y[labelled], x[pool], keep=1.0)
    assert len(spread.rows) == len(pool) and (spread.labels == y[pool][spread.rows]).mean() > 0.95
    half = spread_labels(x[labelled], y[labelled], x[pool], keep=0.5)
    assert len(half.rows) == len(pool) // 2 and half.confidence.min() >= np.median(spread.confidence) - 1e-9


def test_domain_check_tells_a_shifted_pool_from_a_like_one():
    x, _ = blobs(40)
    like, _ = blobs(40, seed=1)
    unlike, _ = blobs(40, seed=1, shift=3.0)
    assert domain_auc(x, like) < 0.7 < 0.9 < domain_auc(x, unlike)


def flat_pool(root: Path, per_class: int, seed: int) -> Path:
    pool = root / "pool"
    pool.mkdir(parents=True)
    for image in write_image_folder(root / "sorted", per_class=per_class, seed=seed).rglob("*.png"):
        shutil.copy(image, pool / image.name)
    return pool


def test_fit_unlabelled_records_its_pseudo_labels(cli, image_folder, tmp_path):
    pool = flat_pool(tmp_path, 10, seed=5)
    run = tmp_path / "run"
    done = cli(["fit", image_folder, "--model", "random:mobilenetv2", "--image-size", "32", "--unlabelled", pool,
                "--out", run])
    assert done.exit_code == 0, done.output
    assert "--unlabelled: 15 of 30 pool items got spread labels" in done.output  # the surer half
    record = json.loads((run / "metrics.json").read_text())["strategy_info"]["unlabelled"]
    assert record["pool"] == 30 and record["spread_labels"] == 15
    assert record["pseudo_labels"] == (15 if record["kept"] else 0)
    assert record["val_accuracy_with_pool"] >= 0 and 0 <= record["domain_auc"] <= 1
    assert "15 of 30 pool items got spread labels" in (run / "report.html").read_text(encoding="utf-8")
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["unlabelled"] == str(pool)


def test_fit_unlabelled_refuses_what_it_cannot_use(cli, image_folder, tmp_path):
    pool = flat_pool(tmp_path, 2, seed=5)
    refused(cli(["fit", image_folder, "--model", "random:mobilenetv2", "--image-size", "32", "--strategy",
                 "partial", "--unlabelled", pool, "--out", tmp_path / "r1"]), "--strategy linear only")
    refused(cli(["fit", image_folder, "--model", "random:mobilenetv2", "--image-size", "32", "--unlabelled",
                 tmp_path / "missing", "--out", tmp_path / "r2"]), "missing")
    known = tmp_path / "known"
    known.mkdir()
    for image in image_folder.rglob("*.png"):
        shutil.copy(image, known / image.name)
    refused(cli(["fit", image_folder, "--model", "random:mobilenetv2", "--image-size", "32", "--unlabelled",
                 known, "--out", tmp_path / "r3"]), "Every item of --unlabelled", "is one of the labelled items")
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))
