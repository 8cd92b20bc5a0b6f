"""`headstart suggest`: typical-and-diverse picks on a cold start, picks from a run that skip its training items,
the picks.csv it writes, its forecast, and errors that name what is wrong. Tiny models, the real CLI."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import headstart
from headstart.cli.app import main
from headstart.data import load_items
from headstart.label.forecast import forecast, sampling_error
from headstart.label.select import margin_doubt, threshold_doubt, typical, uncertain, use_uncertain
from headstart.tasks import SingleLabel
from headstart.workflows.advise import advise

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import COOKING, SPORTS, write_image_folder  # noqa: E402

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the `headstart` entry point in this process: (exit code, stdout and stderr as one line)."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)

    def run(*args) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["headstart", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        out, err = capsys.readouterr()
        return code, " ".join((out + err).split())

    return run


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def blobs(sizes: list[int], dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian clusters of the given sizes: (features, cluster of each row)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim)) * 10
    x = np.concatenate([c + rng.normal(size=(s, dim)) for c, s in zip(centres, sizes)])
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


# ---- selection on features ---------------------------------------------------------------------------------------

def test_cold_start_picks_one_item_per_cluster():
    x, cluster = blobs([40, 25, 15, 10, 6])
    picks = typical(x, 5)
    assert sorted(cluster[[p.index for p in picks]]) == [0, 1, 2, 3, 4]
    assert picks[0].reason.startswith("typical of group 1 of 5 (40 unlabelled items)")  # largest group first


def test_typical_picks_skip_clusters_already_labelled():
    x, cluster = blobs([30, 30, 30, 30])
    labelled = x[cluster == 0][:2]
    picks = typical(x[cluster != 0], 3, labelled)
    assert sorted(cluster[cluster != 0][[p.index for p in picks]]) == [1, 2, 3]


def test_uncertain_picks_are_unsure_and_spread():
    x, cluster = blobs([50, 50])
    doubt = np.zeros(len(x))
    doubt[[0, 1, 2, 60, 61]] = [0.9, 0.95, 0.93, 0.8, 0.7]  # the three most doubtful are in one cluster
    picks = uncertain(x, 2, doubt, [f"item {i}" for i in range(len(x))])
    assert [p.index for p in picks] == [1, 60]  # the most doubtful of each cluster, most doubtful first


def test_doubt_by_task_says_why():
    doubt, reasons = margin_doubt(np.array([[0.41, 0.38, 0.21], [0.9, 0.05, 0.05]]), ["shirt", "tshirt", "coat"])
    assert doubt[0] > doubt[1] and reasons[0] == "unsure: shirt 0.41 vs tshirt 0.38"
    doubt, reasons = threshold_doubt(np.array([[0.9, 0.31], [0.95, 0.02]]), np.array([0.5, 0.3]), ["a", "b"])
    assert doubt[0] > doubt[1] and reasons[0] == "unsure about b: 0.31 (threshold 0.30)"


def test_switch_rule_turns_to_uncertain_picks_as_labels_grow():
    assert not use_uncertain(10 * 19, 10) and use_uncertain(10 * 20, 10)


def test_forecast_extrapolates_a_rising_curve_with_an_interval():
    x, cluster = blobs([60, 60, 60], dim=8, seed=1)
    x = x + np.random.default_rng(2).normal(size=x.shape).astype(np.float32) * 12  # overlapping: room to learn
    task = SingleLabel(["a", "b", "c"])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, val = order[:90], order[90:]
    labels = [["a", "b", "c"][c] for c in cluster]
    ahead = forecast(task, (x[train], cluster[train], [labels[i] for i in train]), (x[val], cluster[val]), 90)
    assert ahead.low <= ahead.expected <= ahead.high <= 1
    sizes = [n for n, _ in ahead.curve]
    assert len(sizes) == 3 and sizes[0] < sizes[1] < sizes[2] == 90 and abs(sizes[0] - 22.5) <= 2
    assert "extrapolation" in ahead.sentence() and "with 90 more labels" in ahead.sentence()
    assert sampling_error(1.0, 6) > 0.2 > sampling_error(0.9, 1000)  # a perfect score on 6 items is no certainty


def test_advise_forecasts_what_labelling_as_many_again_buys(cli, text_csv, tiny_text_dir):
    code, out = cli("advise", text_csv, "--models", tiny_text_dir, "--quiet")
    assert code == 0, out
    assert "What labelling more buys: accuracy about" in out and "with 24 more labels (now" in out
    advice = advise(str(text_csv), [str(tiny_text_dir)], progress=False)
    ahead = advice.recommendation["forecast"]
    assert ahead["labelled"] == ahead["more"] == 24 and ahead["low"] <= ahead["expected"] <= ahead["high"]
    assert [n for n, _ in ahead["curve"]] == [6, 12, 24] and isinstance(ahead["flattened"], bool)


# ---- the CLI ---------------------------------------------------------------------------------------------------

def test_cli_cold_start_on_images_picks_one_of_each_colour(cli, image_folder, tmp_path):
    out = tmp_path / "picks.csv"
    code, said = cli("suggest", image_folder, "--model", "random:mobilenetv2", "--image-size", "32", "--n", "3",
                     "--out", out, "-q")
    assert code == 0, said
    rows = read_csv(out)
    assert list(rows[0]) == ["rank", "path", "reason"]
    assert sorted(Path(r["path"]).parent.name for r in rows) == ["blue", "green", "red"]
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and rows[0]["reason"].startswith("typical of group")


@pytest.fixture(scope="module")
def linear_image_run(tmp_path_factory):
    """A linear run of random MobileNetV2 (32 px) on 3 colours x 8 images."""
    data = write_image_folder(tmp_path_factory.mktemp("train-colours"), per_class=8, seed=3)
    out = tmp_path_factory.mktemp("runs") / "colours"
    headstart.fit(str(data), "random:mobilenetv2", "linear", out=str(out), progress=False, image_size=32,
                  cache_dir=str(tmp_path_factory.mktemp("run-cache")))
    return data, out


def test_suggest_run_never_returns_a_training_item(cli, linear_image_run, tmp_path):
    data, run = linear_image_run
    pool = write_image_folder(tmp_path / "pool", per_class=2, seed=9)
    for i, f in enumerate(sorted(data.rglob("*.png"))[::2]):  # training items again, renamed, and in place
        shutil.copy(f, pool / f"again_{i}.png")
    out = tmp_path / "picks.csv"
    code, said = cli("suggest", pool, "--run", run, "--n", "50", "--out", out, "-q")  # more than are new
    assert code == 0, said
    rows = read_csv(out)
    assert list(rows[0]) == ["rank", "path", "guess", "probability", "reason"]
    trained = set(load_items(str(data)).item_hashes())
    picked = load_items([r["path"] for r in rows], modality="image")
    assert not trained & set(picked.item_hashes())
    assert len(rows) == 6 and "12 pool items are already labelled in the run" in said
    assert {r["guess"] for r in rows} <= {"red", "green", "blue"}
    assert all(0 < float(r["probability"]) <= 1 for r in rows)
    assert "accuracy about" in said and "extrapolation" in said
    code, said = cli("suggest", data, "--run", run, "--n", "3", "--out", tmp_path / "none.csv", "-q")
    assert code == 2 and "is already labelled in" in said and not (tmp_path / "none.csv").exists()


def test_suggest_run_on_texts_writes_text_and_guess(cli, text_run, tmp_path):
    _, run = text_run
    pool = tmp_path / "pool.csv"
    new = ["The referee sent off two players before half time", "Bake the cake until a skewer comes out clean",
           "The keeper punched the ball clear", "Simmer the beans with garlic"]
    with open(pool, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text"], *([t] for t in new + SPORTS[:3] + COOKING[:3])])
    out = tmp_path / "picks.csv"
    code, said = cli("suggest", pool, "--run", run, "--n", "3", "--out", out, "-q")
    assert code == 0, said
    rows = read_csv(out)
    assert list(rows[0]) == ["rank", "text", "guess", "probability", "reason"]
    assert {r["text"] for r in rows} <= set(new) and len(rows) == 3
    assert {r["guess"] for r in rows} <= {"sports", "cooking"}


def test_suggest_refuses_bad_input_and_names_the_fix(cli, image_folder, tmp_path):
    out = tmp_path / "picks.csv"
    (tmp_path / "empty").mkdir()
    code, said = cli("suggest", tmp_path / "empty", "--model", "random:mobilenetv2", "--n", "3", "--out", out)
    assert code == 2 and "is an empty folder" in said and "Put the unlabelled files" in said
    code, said = cli("suggest", image_folder, "--model", "random:mobilenetv2", "--n", "0", "--out", out)
    assert code == 2 and "--n 0" in said and "at least 1" in said
    (tmp_path / "notes.docx").write_text("not data")
    code, said = cli("suggest", tmp_path / "notes.docx", "--model", "random:mobilenetv2", "--n", "3", "--out", out)
    assert code == 2 and "notes.docx" in said and "'.docx'" in said
    code, said = cli("suggest", image_folder, "--n", "3", "--out", out)
    assert code == 2 and "--model NAME" in said and "--run RUN" in said
    assert "Traceback" not in said and not out.exists()


def test_suggest_never_overwrites_the_users_file(cli, image_folder, tmp_path):
    out = tmp_path / "picks.csv"
    out.write_text("my own notes\n")
    code, said = cli("suggest", image_folder, "--model", "random:mobilenetv2", "--n", "3", "--out", out)
    assert code == 2 and "already exists" in said and "--overwrite" in said
    assert out.read_text() == "my own notes\n"
    code, said = cli("suggest", image_folder, "--model", "random:mobilenetv2", "--n", "3", "--out",
                     image_folder / "picks.csv")
    assert code == 2 and "never writes into" in said and not (image_folder / "picks.csv").exists()


@pytest.mark.parametrize("task", ["multi-label", "regression"])
def test_suggest_run_past_the_switch_picks_unsure_items_per_task(cli, tiny_text_dir, tmp_path, task):
    texts = [f"{text} ({k})" for k in range(4) for text in SPORTS + COOKING]  # 120 labelled: past the switch
    sport = [k % 30 < len(SPORTS) for k in range(len(texts))]
    if task == "multi-label":
        labels = ["|".join(["sport" if s else "food"] + (["short"] if len(t) < 50 else []))
                  for t, s in zip(texts, sport)]
    else:
        labels = [f"{(10.0 if s else 0.0) + len(t) / 20:.2f}" for t, s in zip(texts, sport)]
    data = tmp_path / "labelled.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text", "label"], *zip(texts, labels)])
    run = tmp_path / "run"
    headstart.fit(str(data), str(tiny_text_dir), "linear", out=str(run), progress=False, task=task)
    new = ["The referee sent off two players", "Bake the cake until golden", "The keeper punched the ball clear",
           "Simmer the beans with garlic", "A draw in the derby", "Whisk the cream"]
    pool = tmp_path / "pool.csv"
    with open(pool, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text"], *([t] for t in new + texts[:4])])
    out = tmp_path / "picks.csv"
    code, said = cli("suggest", pool, "--run", run, "--n", "3", "--out", out, "-q")
    assert code == 0, said
    rows = read_csv(out)
    assert list(rows[0]) == ["rank", "text", "guess", "probability", "reason"] and len(rows) == 3
    assert {r["text"] for r in rows} <= set(new) and all(r["reason"].startswith("unsure") for r in rows)
    assert "uncertain-and-diverse" in said and "4 pool items are already labelled" in said
    assert ("micro_f1 about" if task == "multi-label" else "r2 about") in said


def test_cli_cold_start_on_sounds(cli, speech_folder, tmp_path):
    out = tmp_path / "picks.csv"
    code, said = cli("suggest", speech_folder, "--model", "random:aisfx-cnn", "--n", "4", "--out", out, "-q")
    assert code == 0, said
    rows = read_csv(out)
    assert list(rows[0]) == ["rank", "path", "reason"] and len({r["path"] for r in rows}) == 4
    assert all(r["path"].endswith(".wav") and Path(r["path"]).is_file() for r in rows)


def test_a_broken_pool_file_names_skip_bad_and_skip_bad_leaves_it_out(cli, tmp_path):
    """The unreadable-file error advises --skip-bad: suggest must take it (it said 'No such option' before)."""
    pool = write_image_folder(tmp_path / "pool", per_class=2, seed=5)
    broken = pool / "red" / "broken.png"
    broken.write_text("not an image")
    args = ["suggest", pool, "--model", "random:mobilenetv2", "--image-size", "32", "--n", "2", "-q"]
    code, said = cli(*args, "--out", tmp_path / "a.csv")
    assert code == 2 and "broken.png" in said and "--skip-bad" in said
    code, said = cli(*args, "--out", tmp_path / "b.csv", "--skip-bad")
    assert code == 0, said
    assert "skipped" in said and "broken.png" in said
    assert "broken.png" not in (tmp_path / "b.csv").read_text() and len(read_csv(tmp_path / "b.csv")) == 2
