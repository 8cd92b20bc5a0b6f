"""Inputs people already hold (datasets objects, float image arrays, a bare text, a DataFrame with the run's
columns), notebook reprs, and evaluation items the run has already seen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import headstart
from headstart.data import load_data, load_items
from headstart.core.errors import DataError
from tests.conftest import COOKING, SPORTS


@pytest.fixture(scope="module")
def column_run(tmp_path_factory, tiny_text_dir):
    """A linear run fitted on a DataFrame whose columns are 'body' and 'topic' (not the default names)."""
    frame = pd.DataFrame({"body": SPORTS + COOKING, "topic": ["sports"] * 15 + ["cooking"] * 15})
    out = tmp_path_factory.mktemp("runs") / "columns"
    cache = tmp_path_factory.mktemp("columns-cache")
    result = headstart.fit(frame, str(tiny_text_dir), "linear", text_col="body", label_col="topic", out=str(out),
                           progress=False, cache_dir=str(cache))
    return result, out


def test_predict_a_bare_string_is_a_text_on_a_text_run(text_run):
    result, run = text_run
    rows = result.predict("Whisk the eggs with sugar")
    assert len(rows) == 1 and rows[0]["text"] == "Whisk the eggs with sugar"
    assert headstart.load_run(run).predict("the striker scored")[0]["text"] == "the striker scored"
    with pytest.raises(DataError, match="new_tickets.csv: no such file"):
        result.predict("new_tickets.csv")


def test_predict_a_frame_reuses_the_runs_columns(column_run):
    result, run = column_run
    frame = pd.DataFrame({"text": ["not this one"], "body": ["Bake the bread for an hour"]})
    assert result.predict(frame)[0]["text"] == "Bake the bread for an hour"
    assert headstart.load_run(run).predict(frame)[0]["text"] == "Bake the bread for an hour"
    assert result.predict(frame, text_col="text")[0]["text"] == "not this one"  # a named column still wins
    assert result.predict(pd.DataFrame({"text": ["Fry the onions"]}))[0]["text"] == "Fry the onions"  # defaults
    scores = headstart.evaluate(run, frame.assign(topic=["cooking"]).drop(columns="text"))
    assert scores["n"] == 1


def test_float_image_arrays_are_scaled_as_documented():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 8, 8, 3)).astype(np.uint8)
    as_uint8 = load_items(pixels)
    unit = load_items(pixels / 255.0)  # floats in [0, 1]: times 255
    full = load_items(pixels.astype(np.float32))  # floats in [0, 255]: as they are
    for a, b, c in zip(as_uint8.items, unit.items, full.items):
        assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(np.asarray(a), np.asarray(c))
    dark = np.concatenate([np.full((1, 8, 8), 0.5), np.full((1, 8, 8), 200.0)])  # one stack, scaled as a whole
    assert np.asarray(load_items(dark).items[0]).max() == 0  # 0.5 of 255 rounds to 0, not brightened to 128
    with pytest.raises(DataError, match="values from 0 to 300"):
        load_items([np.linspace(0, 300, 16).reshape(4, 4)])


def test_repr_and_notebook_card(text_run):
    result, run = text_run
    text = repr(result)
    assert text.startswith("FitResult: linear on ") and "text classification, 2 classes (cooking, sports)" in text
    assert f"validation accuracy {result.metrics['val']['accuracy']:.3f}" in text and f"run: {run}" in text
    assert len(text.splitlines()) == 3
    loaded = repr(headstart.load_run(run))
    assert loaded.startswith("Predictor: linear on ") and f"run: {run}" in loaded and "validation accuracy" in loaded
    html = result._repr_html_()
    assert 'class="headstart-card"' in html and "<style>" in html and "body{" not in html
    assert f"{100 * result.metrics['val']['accuracy']:.1f}%" in html
    assert 'class="headstart-card"' in headstart.load_run(run)._repr_html_()


def test_evaluate_counts_items_the_run_has_seen(text_run, text_csv, tmp_path):
    _, run = text_run
    seen = headstart.evaluate(run, text_csv)
    sizes = headstart.runs.folder.read_json(run, "split.json")["sizes"]
    assert seen["overlap"]["train"] == sizes["train"] and seen["overlap"]["val"] == sizes["val"]
    assert seen["warnings"][0].startswith(f"{sizes['train']} were training items and {sizes['val']} were "
                                          "validation items of the run (30 evaluated")
    fresh = tmp_path / "fresh.csv"
    pd.DataFrame({"text": ["Serve the stew with rice", "The keeper made a save"],
                  "label": ["cooking", "sports"]}).to_csv(fresh, index=False)
    assert "overlap" not in headstart.evaluate(run, fresh)


# ---------------------------------------------------------------- Hugging Face datasets

def test_a_datasets_dataset_by_column_names(tiny_text_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"body": datasets.Value("string"),
                                  "topic": datasets.ClassLabel(names=["cooking", "sports"])})
    ds = datasets.Dataset.from_dict({"body": SPORTS + COOKING, "topic": [1] * 15 + [0] * 15}, features=features)
    splits = load_data(ds, text_col="body", label_col="topic")
    assert splits.classes == ["cooking", "sports"] and splits.train.origins[0].startswith("Dataset row ")
    result = headstart.fit(ds, str(tiny_text_dir), "linear", text_col="body", label_col="topic", progress=False)
    assert [r["text"] for r in result.predict(ds.select(range(2)))] == SPORTS[:2]  # the run's column, by name
    assert len(result.predict(ds["body"])) == 30  # a Column
    pair = load_data((ds["body"], ds["topic"]))  # Columns as (items, labels): ClassLabel names kept
    assert pair.classes == ["cooking", "sports"]
    with pytest.raises(DataError, match="DatasetDict with splits 'train'; pass one split"):
        load_data(datasets.DatasetDict(train=ds))


def test_a_datasets_image_dataset():
    datasets = pytest.importorskip("datasets")
    images = [Image.new("RGB", (6, 6), (200 * (i % 2), 40, 40)) for i in range(8)]
    ds = datasets.Dataset.from_dict({"img": images, "label": [i % 2 for i in range(8)]},
                                    features=datasets.Features({"img": datasets.Image(),
                                                                "label": datasets.Value("int64")}))
    splits = load_data(ds)  # the Image feature column is the images, though not named 'image'
    assert splits.train.modality == "image" and splits.classes == ["0", "1"]
    assert all(isinstance(item, Image.Image) for item in splits.train.items)
    raw = ds.cast_column("img", datasets.Image(decode=False))  # {"bytes", "path"} records
    assert load_items(raw).items[0].size == (6, 6)
