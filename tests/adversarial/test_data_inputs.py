"""Adversarial data inputs (issue 9, "Trust, round two"): what a user's real files do to the readers.

16-bit and float images, long texts in valid CSV, empty class folders, --shots above a class's size,
non-string texts, links out of a table's folder, stray files among inputs, header-only tables, library
warnings leaking to the terminal, and errors naming the Python arguments of a Python call.
"""

from __future__ import annotations

import csv
import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import headstart
from headstart.backbones.preprocessing import ImagePreprocessing
from headstart.cli.app import app
from headstart.data import load_data, load_image, load_items
from headstart.core.errors import ConfigError, DataError
from headstart.report.plots import confusion_plot

WIDE = {"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
GRADIENT = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))  # 0..65535, left to right


def png(path: Path, colour=(200, 30, 30), size=(8, 8)) -> Path:
    """A small real RGB PNG whose shade varies with its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shade = sum(path.name.encode()) % 50
    Image.new("RGB", size, tuple(min(255, c + shade) for c in colour)).save(path)
    return path


def png16(path: Path, pixels: np.ndarray, colour_type: int) -> Path:
    """A 16-bit PNG written byte by byte (colour type 0 grey, 2 RGB, 6 RGBA), as cameras and scanners do."""
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def assert_gradient(image: Image.Image) -> None:
    """The 0..65535 gradient came through as 0..255 rising left to right, not clipped to white."""
    row = np.asarray(image.convert("L"), dtype=int)[0]
    assert (row == 255).mean() < 0.05, f"{(row == 255).mean():.1%} of the pixels are white"
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    assert abs(int(row[128]) - 128) <= 2


# ---------------------------------------------------------------- 5: images of more than 8 bits


def test_16_bit_png_is_scaled_by_its_range_not_clipped_to_white(tmp_path):
    grey = tmp_path / "grey16.png"
    Image.fromarray(GRADIENT).save(grey)
    assert Image.open(grey).mode == "I;16"
    assert_gradient(load_image(str(grey)))
    rgb = png16(tmp_path / "rgb16.png", np.stack([GRADIENT] * 3, axis=-1), colour_type=2)
    assert_gradient(load_image(str(rgb)))


@pytest.mark.parametrize("name, pixels", [
    ("grey16.tif", GRADIENT),
    ("int32.tif", GRADIENT.astype(np.int32)),
    ("float32.tif", GRADIENT.astype(np.float32) / 65535),
])
def test_wide_tiff_files_are_scaled_by_their_range(tmp_path, name, pixels):
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode in ("I;16", "I", "F")
    assert_gradient(load_image(str(path)))


@pytest.mark.parametrize("mode, dtype", [("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2"), ("I;16N", "=u2"),
                                         ("I", "=i4"), ("F", "=f4")])
def test_in_memory_wide_pil_images_are_scaled_by_their_range(mode, dtype):
    image = Image.frombytes(mode, (256, 4), GRADIENT.astype(dtype).tobytes())
    assert_gradient(load_image(image))


def test_backbone_preprocessing_sees_the_16_bit_gradient(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))).save(path)
    prep = ImagePreprocessing(size=32, crop_pct=1.0)
    batch, _ = prep.collate()([(str(path), 0)])
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (prep.mean, prep.std))
    pixels = (batch[0] * std + mean).mean(dim=0)  # back to 0..1, channels averaged
    assert pixels[:, :4].mean() < 0.1 and pixels[:, -4:].mean() > 0.9
    assert (pixels > 0.99).float().mean() < 0.1


# ---------------------------------------------------------------- 8: long texts in valid CSV


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_long_texts_in_a_valid_table_are_read_and_the_csv_limit_restored(tmp_path, suffix, delimiter):
    long_text = "word " * 60_000  # 300,000 characters, above the csv module's 131,072
    path = tmp_path / f"long{suffix}"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["text", "label"])
        for i in range(4):
            writer.writerow([long_text if i == 0 else f"short text {i}", "a" if i % 2 else "b"])
    limit = csv.field_size_limit()
    splits = load_data(path, val_fraction=0.5)
    assert long_text in splits.train.items + splits.val.items
    assert csv.field_size_limit() == limit


# ---------------------------------------------------------------- 10: silent surprises


def test_an_empty_class_folder_is_reported_as_skipped(tmp_path):
    root = tmp_path / "data"
    for name in ("cat", "dog"):
        for i in range(3):
            png(root / name / f"{i}.png")
    (root / "fox").mkdir()
    splits = load_data(root)
    assert splits.classes == ["cat", "dog"]
    [skipped] = splits.skipped
    assert skipped.origin == os.path.join(str(root), "fox") and "empty" in skipped.reason


def test_fit_prints_the_empty_class_folder(tmp_path, tiny_text_dir):
    root = tmp_path / "texts"
    for name, words in (("sport", "goal match team"), ("food", "bake soup bread")):
        (root / name).mkdir(parents=True)
        for i in range(5):
            (root / name / f"{i}.txt").write_text(f"{words} {i}", encoding="utf-8")
    (root / "music").mkdir()
    result = CliRunner().invoke(app, ["fit", str(root), "--model", str(tiny_text_dir), "--strategy", "linear",
                                      "--out", str(tmp_path / "run"), "--quiet"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "music" in result.output and "empty" in result.output


def test_shots_above_a_class_size_warn_with_the_class_and_its_size(text_backbone, text_pairs, capsys):
    items, labels = text_pairs
    keep = [i for i, y in enumerate(labels) if y == "sports" or i < 21]  # 15 sports, 6 cooking
    data = ([items[i] for i in keep], [labels[i] for i in keep])
    result = headstart.fit(data, text_backbone, "linear", shots=8, progress=True)
    warning = next(w for w in result.metrics["data_warnings"] if "shots" in w)
    assert "'cooking' (5)" in warning and "sports" not in warning
    assert warning in capsys.readouterr().err
    assert result.split["shots_short"] == {"cooking": 5}


def test_a_number_in_a_jsonl_text_column_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"text": f"some words {i}", "label": "ab"[i % 2]} for i in range(6)]
    rows[2]["text"] = 42
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl line 3: the text in column 'text' is not a string but int 42"):
        load_data(path)
    splits = load_data(path, skip_bad=True)
    assert [s.origin for s in splits.skipped] == [f"{path} line 3"]
    assert 42 not in splits.train.items + splits.val.items


def test_non_string_texts_in_frames_and_lists_are_refused_or_skipped():
    frame = pd.DataFrame({"text": ["one", 2.5, "three", "four", "five", "six"], "label": list("ababab")})
    with pytest.raises(DataError, match="DataFrame row 2: the text in column 'text' is not a string but float 2.5"):
        load_data(frame)
    with pytest.raises(DataError, match="list item 2: the text is not a string but bool True"):
        load_data((["one", True, "three", "four", "five", "six"], list("ababab")))
    missing = pd.DataFrame({"text": pd.array(["one", None, "three", "four", "five", "six"], dtype="string"),
                            "label": list("ababab")})
    with pytest.raises(DataError, match="DataFrame row 2: the text in column 'text' is empty"):
        load_data(missing)  # pandas.NA, not the text "<NA>"


def test_a_link_in_the_table_folder_to_a_file_outside_is_refused(tmp_path):
    outside = png(tmp_path / "private" / "secret.png")
    folder = tmp_path / "table"
    for i in range(4):
        png(folder / "images" / f"{i}.png")
    os.symlink(outside, folder / "images" / "innocent.png")
    table = folder / "data.csv"
    lines = ["image,label"] + [f"images/{i}.png,{'ab'[i % 2]}" for i in range(4)] + ["images/innocent.png,a"]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        load_data(table)
    message = str(error.value)
    assert message.startswith(f"{table} line 6: the image path 'images/innocent.png' is a link to")
    assert str(outside) in message and "outside the table's folder" in message
    splits = load_data(table, skip_bad=True)
    assert all("innocent" not in item for item in splits.train.items + splits.val.items)


def test_stray_files_in_a_folder_to_predict_are_skipped_and_listed(tmp_path):
    folder = tmp_path / "new_photos"
    for i in range(3):
        png(folder / f"{i}.png")
    (folder / "notes.txt").write_text("taken on holiday", encoding="utf-8")
    (folder / "labels.json").write_text("{}", encoding="utf-8")
    inputs = load_items(folder)
    assert inputs.modality == "image" and len(inputs) == 3
    assert sorted(os.path.basename(s.origin) for s in inputs.skipped) == ["labels.json", "notes.txt"]
    assert all("only the images are read" in s.reason for s in inputs.skipped)


def test_predict_cli_on_a_folder_with_a_stray_text_file(image_run, tmp_path):
    _, run = image_run
    folder = tmp_path / "new_photos"
    for i in range(3):
        png(folder / f"{i}.png")
    (folder / "notes.txt").write_text("taken on holiday", encoding="utf-8")
    result = CliRunner().invoke(app, ["predict", str(run), str(folder)], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(result.stdout.strip().splitlines()))
    assert [os.path.basename(r[0]) for r in rows[1:]] == ["0.png", "1.png", "2.png"]


# ---------------------------------------------------------------- 11: errors name the file; no raw warnings


def test_a_header_only_csv_names_the_file(tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_text("text,label\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"tickets\.csv: it has a header \(text, label\) but no data rows"):
        load_data(path)
    with pytest.raises(DataError, match=r"tickets\.csv: .*no data rows"):
        load_items(path)


def test_an_empty_dataframe_says_so():
    with pytest.raises(DataError, match=r"DataFrame: it has no rows \(columns \['text', 'label'\]\)"):
        load_data(pd.DataFrame({"text": [], "label": []}))


def test_pillow_warnings_do_not_reach_the_user(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for name in ("cat", "dog"):
        for i in range(3):
            png(root / name / f"{i}.png", size=(8, 8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # 64 pixels: a "bomb" warning, not yet an error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_data(root)
        load_image(splits.train.items[0])
    assert [str(w.message) for w in caught] == []


def test_matplotlib_warnings_do_not_reach_the_user():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uri = confusion_plot([[3, 1], [0, 4]], ["猫", "犬"])  # no glyphs for these in the bundled font
    assert uri.startswith("data:image/png;base64,")
    assert [str(w.message) for w in caught] == []
    before = list(warnings.filters)
    confusion_plot([[1]], ["猫"])
    assert warnings.filters == before  # silenced while drawing only, never for the whole process


# ---------------------------------------------------------------- 9: Python calls get Python argument names


def test_data_errors_from_python_name_the_python_arguments(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("sentence,tag\nhello,a\nthere,b\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"label_col="):
        load_data(table)
    with pytest.raises(DataError, match=r"--label-col \(label_col=\)"):
        load_data(table, label_col="topic")
    blank = tmp_path / "b.csv"
    blank.write_text("text,label\nhi,a\n ,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"skip_bad=True"):
        load_data(blank)
    with pytest.raises(ConfigError, match=r"val_fraction="):
        load_data(table, val_fraction=1.5)


# ---- issue 11: data that is not one class per item ----------------------------------------------------------

def test_python_lists_as_labels_are_label_sets_not_classes_named_like_lists():
    texts = [f"item number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(20)]
    labels = [["a"], ["b", "c"], ["a", "c"], []] * 5
    splits = load_data((texts, labels))
    assert splits.task == "multi-label" and splits.classes == ["a", "b", "c"]
    assert not any("[" in name for name in splits.classes)


def test_a_numeric_size_column_is_a_regression_and_skip_bad_keeps_it_one(tmp_path):
    """Sizes in m² (46 distinct values) once gave an 8,000-character error listing each as a class with one
    example; --skip-bad then dropped most rows and trained a classifier on what was left."""
    rows = [(f"a flat of {40 + 3 * i} square metres near the park, number {i}", 40 + 3 * i) for i in range(46)]
    rows += [("a flat whose size nobody measured", "unknown")]
    table = tmp_path / "flats.csv"
    pd.DataFrame(rows, columns=["text", "size"]).to_csv(table, index=False)
    with pytest.raises(DataError) as refused:
        load_data(str(table), label_col="size")
    assert "flats.csv line 48: the label 'unknown' is not a number" in str(refused.value)
    assert len(str(refused.value)) < 400
    splits = load_data(str(table), label_col="size", skip_bad=True)
    assert splits.task == "regression" and len(splits.train) + len(splits.val) == 46
    assert [s.origin for s in splits.skipped] == [f"{table} line 48"]


def test_a_nested_label_list_names_its_row(tmp_path):
    table = tmp_path / "tags.jsonl"
    table.write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": ["x", ["y"]]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"tags.jsonl line 2: the label in column 'labels' .* is a nested list"):
        load_data(str(table))
