"""Adversarial cases of issue 24 (trust, round three): options that were silently ignored, audio messages, the
Python estimators' target checks, and the demo's first screen. Real CLI runs, real tiny fits, real files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile

import headstart
from headstart.core.errors import ConfigError, DataError
from tests.conftest import COOKING, SPORTS
from cli_harness import cli, refused  # noqa: F401  (cli is a fixture)

TEXTS = SPORTS + COOKING


def write_rows(path: Path, header: list[str], rows: list) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_tones(root: Path, per_class: int = 6) -> Path:
    """root/<low|high>/<n>.wav: half-second 16 kHz tones a class apart in pitch, with a little noise."""
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    for name, pitch in (("low", 220.0), ("high", 1760.0)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            wave = 0.5 * np.sin(2 * np.pi * pitch * (1 + 0.02 * i) * t) + 0.01 * rng.standard_normal(len(t))
            soundfile.write(root / name / f"{name}_{i}.wav", wave.astype(np.float32), 16000)
    return root


# ---- options that were silently ignored ---------------------------------------------------------------

def test_balance_weights_on_a_regression_is_refused_not_recorded_as_none(cli, tmp_path, tiny_text_dir):
    table = write_rows(tmp_path / "scores.csv", ["text", "target"], [(t, 1.5 * i) for i, t in enumerate(TEXTS)])
    for mode in ("weights", "sampler"):
        result = cli(["fit", table, "--model", tiny_text_dir, "--balance", mode, "--out", tmp_path / mode, "-q"])
        refused(result, f"--balance {mode}", "this task is regression", "would be ignored")
        assert not (tmp_path / mode).exists()
    with pytest.raises(ConfigError, match=r"balance='weights'.*regression"):
        headstart.fit((TEXTS, [1.5 * i for i in range(len(TEXTS))]), str(tiny_text_dir), "linear", progress=False,
                      balance="weights")
    done = headstart.fit(str(table), str(tiny_text_dir), "linear", progress=False)  # the default, auto, still fits
    assert done.metrics["balance"]["used"] == "none"


def test_label_sep_under_single_label_is_refused(cli, tmp_path, tiny_text_dir, text_csv):
    asked = cli(["fit", text_csv, "--model", tiny_text_dir, "--task", "single-label", "--label-sep", "|",
                 "--out", tmp_path / "a", "-q"])
    refused(asked, "--label-sep |", "the task is single-label (asked for", "--task multi-label")
    # auto on labels that hold no separator: the labels would be taken whole, the separator ignored
    plain = cli(["fit", text_csv, "--model", tiny_text_dir, "--label-sep", ",", "--out", tmp_path / "b", "-q"])
    refused(plain, "--label-sep ,", "0 of 30 labels hold ','", "would be ignored")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ConfigError, match="label_sep='|'.*task is regression"):
        headstart.fit((TEXTS, [1.5 * i for i in range(len(TEXTS))]), str(tiny_text_dir), "linear", progress=False,
                      label_sep="|")


def test_label_sep_that_splits_the_labels_still_fits_multi_label(tmp_path, tiny_text_dir):
    labels = ["sport,outdoor" if i % 2 else "cooking" for i in range(len(TEXTS))]
    result = headstart.fit((TEXTS, labels), str(tiny_text_dir), "linear", progress=False, label_sep=",")
    assert result.metrics["task"] == "multi-label" and set(result.classes) == {"sport", "outdoor", "cooking"}


@pytest.mark.parametrize("options", [["--text-col", "label"], ["--text-col", "text", "--label-col", "text"],
                                     ["--label-col", "text"]])
def test_one_column_as_both_texts_and_labels_is_refused(cli, tmp_path, tiny_text_dir, text_csv, options):
    result = cli(["fit", text_csv, "--model", tiny_text_dir, *options, "--out", tmp_path / "run", "-q"])
    column = "label" if options == ["--text-col", "label"] else "text"
    refused(result, f"column '{column}' would hold both the texts", "--label-col", "['text', 'label']")
    assert not (tmp_path / "run").exists()


def test_one_column_as_both_is_refused_in_python_and_by_evaluate(cli, tmp_path, tiny_text_dir, text_run):
    import pandas as pd

    frame = pd.DataFrame({"text": TEXTS, "label": ["a", "b"] * 15})
    with pytest.raises(ConfigError, match="column 'text' would hold both the texts"):
        headstart.fit(frame, str(tiny_text_dir), "linear", progress=False, label_col="text")
    _, run = text_run
    table = write_rows(tmp_path / "eval.csv", ["text", "label"], [(t, "sports") for t in SPORTS])
    refused(cli(["evaluate", run, table, "--text-col", "label"]), "column 'label' would hold both the texts")
    rows = headstart.predict(run, str(table), text_col="label")  # inputs only: the column is simply the texts
    assert [row["text"] for row in rows] == ["sports"] * len(SPORTS)


# ---- audio messages -----------------------------------------------------------------------------------

def test_a_text_file_named_mp3_and_an_empty_wav_are_named_for_what_they_are(cli, tmp_path):
    folder = write_tones(tmp_path / "sounds")
    (folder / "low" / "fake.mp3").write_text("these are words, not sound\n" * 20)
    fake = cli(["fit", folder, "--model", "random:aisfx-cnn", "--out", tmp_path / "a", "-q"])
    refused(fake, "fake.mp3", "its bytes are not .mp3 audio")
    assert "does not exist" not in fake.output
    (folder / "low" / "fake.mp3").unlink()
    (folder / "high" / "empty.wav").write_bytes(b"")
    empty = cli(["fit", folder, "--model", "random:aisfx-cnn", "--out", tmp_path / "b", "-q"])
    refused(empty, "empty.wav' is empty (0 bytes)")
    assert "Format not recognised" not in empty.output


def test_modality_messages_use_the_right_article_and_plural(cli, tmp_path, tiny_text_dir, image_folder):
    folder = write_tones(tmp_path / "sounds")
    sounds = cli(["fit", folder, "--model", tiny_text_dir, "--out", tmp_path / "a", "-q"])
    refused(sounds, "The data holds sounds", "is a text model", "Pick an audio model")
    images = cli(["fit", image_folder, "--model", "random:aisfx-cnn", "--out", tmp_path / "b", "-q"])
    refused(images, "The data holds images", "is an audio model", "Pick an image model")


def test_evaluating_or_predicting_a_sound_run_on_images_names_the_modality(cli, tmp_path, image_folder):
    folder = write_tones(tmp_path / "sounds")
    run = tmp_path / "run"
    assert cli(["fit", folder, "--model", "random:aisfx-cnn", "--out", run, "-q"]).exit_code == 0
    result = cli(["evaluate", run, image_folder])
    refused(result, "This run takes sounds", f"{image_folder} holds images")
    assert "labels" not in result.output.split("error:")[1].split(".")[0]
    with pytest.raises(headstart.RunError, match="This run takes sounds, but the data given holds images"):
        headstart.load_run(run).outputs(headstart.load_items(str(image_folder)))
    predicted = cli(["predict", run, image_folder])  # was "no usable files found": the images were skipped unsaid
    refused(predicted, "the model takes sounds, but the folder holds images", "use a run fitted on images")


# ---- the Python estimators' targets -------------------------------------------------------------------

def tiny(tiny_text_dir) -> headstart.Classifier:
    return headstart.Classifier(model=str(tiny_text_dir), strategy="linear")


def test_a_missing_label_is_named_by_its_position(tiny_text_dir):
    y = ["sports"] * 15 + ["cooking"] * 15
    y[4] = None
    with pytest.raises(DataError, match=r"y\[4\] is None: that sample has no target"):
        tiny(tiny_text_dir).fit(TEXTS, y)
    with pytest.raises(DataError, match=r"y\[7\] is nan"):
        tiny(tiny_text_dir).fit(TEXTS, np.where(np.arange(30) == 7, np.nan, np.arange(30) % 2))


def test_the_regressor_names_the_first_non_finite_target(tiny_text_dir):
    reg = headstart.Regressor(model=str(tiny_text_dir), strategy="linear")
    y = np.arange(30, dtype=float)
    y[5] = np.nan
    with pytest.raises(DataError, match=r"y\[5\] is nan") as caught:
        reg.fit(TEXTS, y)
    assert "shape" not in str(caught.value)
    y[5], y[9] = 1.0, np.inf
    with pytest.raises(DataError, match=r"y\[9\] is inf, not finite"):
        reg.fit(TEXTS, y)
    with pytest.raises(DataError, match=r"y\[2\] is 'abc', not a number"):
        reg.fit(TEXTS, [1.0, 2.0, "abc"] + [float(i) for i in range(27)])
    with pytest.raises(DataError, match=r"y has shape \(30, 2\)"):
        reg.fit(TEXTS, np.zeros((30, 2)))


def test_mixed_int_and_str_labels_are_refused_as_scikit_learn_does(tiny_text_dir):
    from sklearn.utils.multiclass import unique_labels

    y = [1, "a"] * 15
    with pytest.raises(ValueError, match="Mix of label input types"):
        unique_labels(y)  # scikit-learn's own stance
    with pytest.raises(DataError, match=r"y mixes numbers and strings: y\[0\] is 1 but y\[1\] is 'a'"):
        tiny(tiny_text_dir).fit(TEXTS, y)


def test_lists_as_labels_point_to_multi_label(tiny_text_dir):
    ragged = [["sports", "outdoor"], ["cooking"]] * 15
    with pytest.raises(DataError, match=r"y\[0\] is a list .*task='multi-label'"):
        tiny(tiny_text_dir).fit(TEXTS, ragged)
    with pytest.raises(DataError, match=r"y has shape \(30, 2\).*multi-label"):
        tiny(tiny_text_dir).fit(TEXTS, np.array([["a", "b"]] * 30))


def test_labels_of_one_type_keep_it(tiny_text_dir):
    y = np.array(["sports"] * 15 + ["cooking"] * 15, dtype=object)
    clf = tiny(tiny_text_dir).fit(TEXTS, y)
    assert set(clf.predict(TEXTS[:4])) <= {"sports", "cooking"}


# ---- the demo's first screen --------------------------------------------------------------------------

def test_the_demo_data_raises_no_warning_and_no_task_note(tmp_path, capsys, tiny_text_dir):
    """The demo's own data through fit's real warnings (tiny models in place of its backbones, linear only):
    no leakage or duplicate warning on BBC News, and no "numbers ... taken as classes" note on the digits."""
    from headstart.demo import demo_tasks

    models = {"mobilenetv2": "random:mobilenetv2", "minilm-l6": str(tiny_text_dir)}
    for task, data in demo_tasks(tmp_path):
        options = {k: v for k, v in task.options.items() if k not in {"unfreeze", "image_size", "epochs"}}
        extra = {"image_size": 32} if "image_size" in task.options else {}
        capsys.readouterr()
        headstart.fit(data, models[task.model], "linear", progress=True, **options, **extra)
        err = capsys.readouterr().err
        assert "warning:" not in err and "taken as classes" not in err, err
