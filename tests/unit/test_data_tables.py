"""Tests for reading tables (CSV, TSV, JSONL, Parquet, DataFrames) with headstart.data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from headstart.data import load_data, load_items
from headstart.core.errors import ConfigError, DataError

REVIEWS = [
    ("Loved it, would buy again", "pos"),
    ("Great value", "pos"),
    ('Said "wow" out loud', "pos"),
    ("Broke after a day", "neg"),
    ("Terrible,\nsimply terrible", "neg"),
    ("Not worth it", "neg"),
]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write a file the way a user would, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def csv_text(rows, header="text,label") -> str:
    """A hand-written CSV: quotes only where needed."""
    lines = [header]
    for text, label in rows:
        needs_quotes = any(c in text for c in ',"\n')
        cell = '"' + text.replace('"', '""') + '"' if needs_quotes else text
        lines.append(f"{cell},{label}")
    return "\n".join(lines) + "\n"


def png(path: Path, shade: int) -> Path:
    """A small real PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 6), (shade, 0, 0)).save(path)
    return path


# ---------------------------------------------------------------- happy paths


def test_csv_with_quotes_and_multiline_cells(tmp_path):
    table = write(tmp_path / "train.csv", csv_text(REVIEWS))
    splits = load_data(table, val_fraction=0.34)
    texts = set(splits.train.items + splits.val.items)
    assert texts == {text for text, _ in REVIEWS}
    assert splits.classes == ["neg", "pos"] and splits.train.modality == "text"
    origins = splits.split["train_origins"] + splits.split["val_origins"]
    numbers = sorted(int(origin.rsplit(" ", 1)[1]) for origin in origins)
    assert numbers == [2, 3, 4, 5, 6, 8]  # the 5th row starts on line 6 and spans 2 lines


def test_tsv_jsonl_parquet_and_dataframe_agree(tmp_path):
    frame = pd.DataFrame(REVIEWS, columns=["review", "Category"])
    tsv = write(
        tmp_path / "t.tsv",
        "review\tCategory\n" + "".join(f"{t.replace(chr(10), ' ')}\t{c}\n" for t, c in REVIEWS),
    )
    jsonl = write(
        tmp_path / "t.jsonl",
        "\n".join(json.dumps({"review": t, "Category": c}) for t, c in REVIEWS) + "\n\n",
    )
    parquet = tmp_path / "t.parquet"
    frame.to_parquet(parquet)
    for source in (tsv, jsonl, parquet, frame):
        splits = load_data(source, val_fraction=0.34)
        assert len(splits.train) + len(splits.val) == 6 and splits.classes == ["neg", "pos"]
    assert load_data(parquet).split["train_origins"][0].endswith("t.parquet row 1")
    assert load_data(frame).split["train_origins"][0] == "DataFrame row 1"


def test_numeric_labels_become_strings_and_label_col_option(tmp_path):
    rows = [{"body": f"text {i}", "stars": i % 2, "y": "ignored"} for i in range(6)]
    table = write(tmp_path / "r.jsonl", "\n".join(json.dumps(r) for r in rows))
    splits = load_data(table, label_col="stars")
    assert splits.classes == ["0", "1"]


def test_latin1_csv(tmp_path):
    table = write(
        tmp_path / "fr.csv", "text,label\ncaf\xe9,a\nna\xefve,a\nbon,b\nmal,b\n", "latin-1"
    )
    splits = load_data(table, val_fraction=0.5)
    assert "café" in splits.train.items + splits.val.items


def test_image_table_with_relative_paths(tmp_path):
    root = tmp_path / "shop"
    for i in range(4):
        png(root / "pics" / f"{i}.png", 40 * i)
    table = write(
        root / "labels.csv",
        "image,label\n" + "".join(f"pics/{i}.png,{'ab'[i % 2]}\n" for i in range(4)),
    )
    splits = load_data(table, val_fraction=0.5)
    assert splits.train.modality == "image"
    assert set(splits.train.items + splits.val.items) == {
        str(root / "pics" / f"{i}.png") for i in range(4)
    }


def test_load_items_table_ignores_its_labels(tmp_path):
    labelled = write(tmp_path / "a.csv", "text,label\nhello,x\nbye,y\n")
    assert load_items(labelled).labels is None and load_items(labelled).items == ("hello", "bye")
    partly = write(tmp_path / "b.csv", "text,label\nhello,\nbye,y\n")
    assert load_items(partly).labels is None and load_items(partly).items == ("hello", "bye")
    plain = write(tmp_path / "c.csv", "sentence\nhello\n")
    assert load_items(plain).items == ("hello",)


# ---------------------------------------------------------------- bad inputs


def test_empty_text_names_line_and_column(tmp_path):
    table = write(tmp_path / "train.csv", "text,label\ngood,a\n   ,a\nfine,b\nok,b\n")
    with pytest.raises(DataError) as error:
        load_data(table)
    assert str(error.value) == (
        f"{table} line 3: the text in column 'text' is empty. Fill it in or remove it, "
        "or pass --skip-bad (skip_bad=True) to skip such items."
    )


def test_missing_label_names_line(tmp_path):
    table = write(tmp_path / "train.csv", "text,label\ngood,a\nbad,\nfine,b\nok,b\nyes,a\n")
    with pytest.raises(
        DataError, match=r"train\.csv line 3: the label in column 'label' is missing"
    ):
        load_data(table)


def test_missing_columns_list_existing_ones_and_the_option(tmp_path):
    table = write(tmp_path / "train.csv", "sentence,tag\nhi,a\n")
    with pytest.raises(DataError) as error:
        load_data(table)
    message = str(error.value)
    assert "train.csv: no label column found" in message
    assert "['sentence', 'tag']" in message and "--label-col" in message
    with pytest.raises(
        DataError,
        match=r"no column 'body'; the columns are \['sentence', 'tag'\]"
        r"\. Pass --text-col",
    ):
        load_data(table, label_col="tag", text_col="body")
    no_items = write(tmp_path / "n.csv", "words,label\nhi,a\n")
    with pytest.raises(DataError, match=r"no text or image column.*--text-col \(text_col=\) or --image-col"):
        load_data(no_items)


def test_mixed_text_and_image_columns(tmp_path):
    png(tmp_path / "a.png", 1)
    png(tmp_path / "b.png", 2)
    table = write(
        tmp_path / "t.csv", "text,image,label\nx,a.png,p\ny,a.png,p\nz,b.png,q\nw,b.png,q\n"
    )
    with pytest.raises(DataError, match="mixed modalities.*--text-col text.*--image-col image"):
        load_data(table)
    assert load_data(table, image_col="image").train.modality == "image"
    with pytest.raises(ConfigError, match=r"only one of --text-col \(text_col=\) and --image-col"):
        load_data(table, image_col="image", text_col="text")


@pytest.mark.parametrize(
    "bad_path", ["../secret.png", "../../etc/passwd", "/etc/passwd", "pics/../../secret.png"]
)
def test_image_paths_may_not_escape_the_table_folder(tmp_path, bad_path):
    png(tmp_path / "secret.png", 9)
    root = tmp_path / "data"
    for i in range(4):
        png(root / "pics" / f"{i}.png", i)
    rows = "".join(f"pics/{i}.png,{'ab'[i % 2]}\n" for i in range(4))
    table = write(root / "t.csv", f"image,label\n{rows}{bad_path},a\n")
    with pytest.raises(DataError) as error:
        load_data(table)
    assert f"t.csv line 6: the image path '{bad_path}' points outside" in str(error.value)
    splits = load_data(table, skip_bad=True)
    assert [s.origin for s in splits.skipped] == [f"{table} line 6"]


def test_missing_image_file_names_row(tmp_path):
    for i in range(4):
        png(tmp_path / f"{i}.png", i)
    table = write(
        tmp_path / "t.csv", "path,label\n0.png,a\n1.png,a\nmissing.png,a\n2.png,b\n3.png,b\n"
    )
    with pytest.raises(
        DataError,
        match=r"t\.csv line 4: the image file '.*missing\.png' does not "
        r"exist\. Correct the path",
    ):
        load_data(table)
    assert len(load_data(table, skip_bad=True).skipped) == 1


def test_unseen_label_in_val_table(tmp_path):
    train = write(tmp_path / "train.csv", csv_text(REVIEWS))
    val = write(tmp_path / "val.csv", "text,label\nmeh,neutral\ngood,pos\n")
    with pytest.raises(
        DataError, match=r"val\.csv line 2: its class 'neutral' is not in the training"
    ):
        load_data(train, val=val)
    splits = load_data(train, val=val, skip_bad=True)
    assert splits.val.items == ("good",) and splits.split["method"] == "given"


def test_skip_bad_collects_every_bad_row(tmp_path):
    table = write(
        tmp_path / "train.csv",
        "text,label\ngood,a\n,a\nfine,b\nok,\ntoo,many,fields\nyes,a\nno,b\n",
    )
    splits = load_data(table, skip_bad=True)
    assert sorted(s.origin.split()[-1] for s in splits.skipped) == ["3", "5", "6"]
    reasons = {s.origin.split()[-1]: s.reason for s in splits.skipped}
    assert "3 fields but the header has 2" in reasons["6"]
    assert reasons["3"] == "the text in column 'text' is empty"
    with pytest.raises(DataError, match="line 6: it has 3 fields.*Put quotes"):
        load_data(write(tmp_path / "x.csv", "text,label\na,b\nc,d\na,b\nc,d\ntoo,many,fields\n"))


def test_empty_table_and_bad_json(tmp_path):
    with pytest.raises(DataError, match="first line must be a header"):
        load_data(write(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match=r"t\.jsonl line 2: this line is not valid JSON"):
        load_data(write(tmp_path / "t.jsonl", '{"text": "a", "label": "x"}\n{"text": \n'))
