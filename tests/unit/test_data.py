"""Tests for headstart.data: folders, in-memory sources, checks, splits, hashes, bundled data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headstart.data import (
    IMAGE_EXTENSIONS,
    Dataset,
    bbc_news_csv,
    bbc_news_folder,
    load_data,
    load_image,
    load_items,
    mnist_folder,
)
from headstart.core.errors import ConfigError, DataError

COLORS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "fox": (30, 30, 200)}


def png(path: Path, color=(10, 20, 30), size=(8, 8), mode="RGB") -> Path:
    """Write a small real PNG (colour varies with the file name so contents differ)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shade = sum(path.name.encode()) % 50
    Image.new(mode, size, tuple(min(255, c + shade) for c in color)[: len(mode)]).save(path)
    return path


def image_tree(root: Path, per_class: int = 4, classes=("cat", "dog")) -> Path:
    """root/<class>/<n>.png for each class."""
    for name in classes:
        for number in range(per_class):
            png(root / name / f"{number}.png", COLORS[name])
    return root


def text_tree(root: Path, per_class: int = 4, classes=("sport", "tech")) -> Path:
    """root/<class>/<n>.txt for each class."""
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for number in range(per_class):
            (root / name / f"{number}.txt").write_text(f"{name} article {number}", encoding="utf-8")
    return root


def snapshot(root: Path) -> dict[str, int]:
    """Every path under root with its mtime, to prove nothing was written there."""
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


# ---------------------------------------------------------------- folders: happy paths


def test_image_folder_with_class_subfolders(tmp_path):
    root = image_tree(tmp_path / "data", per_class=5)
    splits = load_data(root)
    assert splits.classes == ["cat", "dog"]
    assert splits.train.modality == "image"
    assert len(splits.train) + len(splits.val) == 10
    assert all(os.path.isabs(item) and item.endswith(".png") for item in splits.train.items)
    assert set(splits.val.labels) == {"cat", "dog"}
    assert str(root / "cat" / "0.png") in splits.train.origins + splits.val.origins
    assert splits.split["method"] == "stratified" and splits.skipped == []


def test_image_folder_with_train_val_test_subfolders(tmp_path):
    root = tmp_path / "data"
    image_tree(root / "train", 3)
    image_tree(root / "validation", 1)
    image_tree(root / "test", 2)
    splits = load_data(root)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 4)
    assert splits.split["method"] == "given"
    assert splits.split["sizes"] == {"train": 6, "val": 2, "test": 4}
    assert splits.val.origins[0] == os.path.join(str(root), "validation", "cat", "0.png")


def test_explicit_val_wins_over_val_subfolder(tmp_path):
    root = tmp_path / "data"
    image_tree(root / "train", 3)
    image_tree(root / "val", 1)
    other = image_tree(tmp_path / "other", 2)
    splits = load_data(root, val=other)
    assert len(splits.val) == 4 and all("other" in o for o in splits.val.origins)


def test_text_folder_reads_utf8_and_latin1_and_ignores_junk(tmp_path):
    root = text_tree(tmp_path / "news")
    (root / "sport" / "latin.txt").write_bytes("a \xa315m fee".encode("latin-1"))
    (root / ".hidden.txt").write_text("x")
    (root / "sport" / "Thumbs.db").write_bytes(b"\0")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("x")
    splits = load_data(root, val_fraction=0.25)
    texts = splits.train.items + splits.val.items
    assert splits.train.modality == "text" and len(texts) == 9
    assert "a £15m fee" in texts


def test_load_image_converts_modes_to_rgb(tmp_path):
    for mode, color in (("L", (90,)), ("RGBA", (1, 2, 3, 0)), ("P", (5,))):
        path = png(tmp_path / f"{mode}.png", color, mode=mode)
        image = load_image(str(path))
        assert image.mode == "RGB" and image.size == (8, 8)
    assert load_image(Image.new("LA", (3, 3))).mode == "RGB"
    assert load_image(np.zeros((4, 5), np.uint8)).size == (5, 4)
    assert ".png" in IMAGE_EXTENSIONS and ".JPG".lower() in IMAGE_EXTENSIONS


def test_load_image_unreadable_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png: cannot decode"):
        load_image(bad)


# ---------------------------------------------------------------- folders: bad inputs


def test_corrupt_image_is_named(tmp_path):
    root = image_tree(tmp_path / "data")
    (root / "cat" / "bad.jpg").write_bytes(b"\xff\xd8 garbage")
    with pytest.raises(DataError) as error:
        load_data(root)
    message = str(error.value)
    assert "cat/bad.jpg" in message and "cannot be decoded" in message
    assert "--skip-bad" in message


def test_truncated_image_is_named(tmp_path):
    root = image_tree(tmp_path / "data")
    full = png(tmp_path / "full.png", size=(64, 64))
    (root / "dog" / "cut.png").write_bytes(full.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"dog/cut\.png.*cannot be decoded.*--skip-bad"):
        load_data(root)


def test_skip_bad_skips_corrupt_truncated_empty_and_unknown_files(tmp_path):
    root = image_tree(tmp_path / "data")
    (root / "cat" / "bad.jpg").write_bytes(b"garbage")
    full = png(tmp_path / "full.png", size=(64, 64))
    (root / "dog" / "cut.png").write_bytes(full.read_bytes()[:-40])
    (root / "dog" / "notes.md").write_text("hello")
    (root / "readme.txt").write_text("layout notes")
    splits = load_data(root, skip_bad=True)
    skipped = {Path(s.origin).name: s.reason for s in splits.skipped}
    assert set(skipped) == {"bad.jpg", "cut.png", "notes.md", "readme.txt"}
    assert "unsupported file type (.md)" in skipped["notes.md"]
    assert len(splits.train) + len(splits.val) == 8


def test_empty_text_file(tmp_path):
    root = text_tree(tmp_path / "news")
    (root / "tech" / "blank.txt").write_text("  \n\t")
    with pytest.raises(DataError, match=r"tech/blank\.txt: the text is empty.*--skip-bad"):
        load_data(root)
    splits = load_data(root, skip_bad=True)
    assert [Path(s.origin).name for s in splits.skipped] == ["blank.txt"]


def test_empty_folder_lists_supported_extensions(tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    with pytest.raises(DataError) as error:
        load_data(tmp_path / "data")
    assert "no usable files" in str(error.value) and ".png" in str(error.value)
    assert ".txt" in str(error.value)


def test_file_in_root_explains_layout(tmp_path):
    root = image_tree(tmp_path / "data")
    png(root / "stray.png")
    with pytest.raises(DataError, match=r"stray\.png: .*not in a class folder.*<class name>"):
        load_data(root)


def test_unknown_extensions_are_listed(tmp_path):
    root = image_tree(tmp_path / "data")
    (root / "cat" / "a.docx").write_text("x")
    (root / "dog" / "b.heic").write_text("x")
    with pytest.raises(DataError, match=r"2 file\(s\) of unsupported type \(\.docx, \.heic\)"):
        load_data(root)


def test_mixed_modalities_in_folder(tmp_path):
    root = image_tree(tmp_path / "data")
    (root / "dog" / "story.txt").write_text("a dog story")
    with pytest.raises(DataError, match=r"mixed modalities: 8 image file.*1 \.txt file"):
        load_data(root)


def test_mixed_modalities_between_train_and_val(tmp_path):
    train = image_tree(tmp_path / "images")
    val = text_tree(tmp_path / "texts", classes=("cat", "dog"))
    with pytest.raises(DataError, match="training data holds images but the val data holds texts"):
        load_data(train, val=val)


def test_unseen_class_in_val_and_test(tmp_path):
    train = image_tree(tmp_path / "train")
    val = image_tree(tmp_path / "val", 1, classes=("cat", "dog", "fox"))
    with pytest.raises(DataError) as error:
        load_data(train, val=val)
    message = str(error.value)
    assert "fox/0.png" in message and "class 'fox' is not in the training data" in message
    assert "--skip-bad" in message
    with pytest.raises(DataError, match=r"fox/0\.png: its class 'fox'.*from the test data"):
        load_data(train, test=val)
    splits = load_data(train, val=val, test=val, skip_bad=True)
    assert splits.val.labels == ("cat", "dog") and splits.test.labels == ("cat", "dog")
    assert [s.reason for s in splits.skipped] == [
        "val class 'fox' is not in the training data",
        "test class 'fox' is not in the training data",
    ]


def test_class_with_one_example(tmp_path):
    root = image_tree(tmp_path / "data", classes=("cat", "dog"))
    png(root / "fox" / "only.png", COLORS["fox"])
    with pytest.raises(DataError) as error:
        load_data(root)
    message = str(error.value)
    assert "'fox' (1 example)" in message and "Add more examples" in message
    assert "--skip-bad" in message
    splits = load_data(root, skip_bad=True)
    assert splits.classes == ["cat", "dog"]
    assert "class 'fox' has only 1 training example" in splits.skipped[0].reason


def test_fewer_than_two_classes(tmp_path):
    root = image_tree(tmp_path / "data", classes=("cat",))
    with pytest.raises(DataError, match=r"1 class\(es\) \['cat'\].*at least 2"):
        load_data(root)


def test_bad_fractions_are_config_errors(tmp_path):
    root = image_tree(tmp_path / "data")
    with pytest.raises(ConfigError, match="--val-fraction"):
        load_data(root, val_fraction=0)
    with pytest.raises(ConfigError, match="plus --test-fraction"):
        load_data(root, val_fraction=0.5, test_fraction=0.5)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_data(tmp_path / "nope")


# ---------------------------------------------------------------- in-memory sources


def test_python_pairs_of_texts_pil_and_numpy():
    texts = load_data((["good", "fine", "bad", "awful"], ["pos", "pos", "neg", "neg"]))
    assert texts.train.modality == "text" and texts.classes == ["neg", "pos"]
    pil = [Image.new("RGB", (4, 4), (i * 20, 0, 0)) for i in range(4)]
    images = load_data((pil, [0, 0, 1, 1]))
    assert images.train.modality == "image" and images.classes == ["0", "1"]
    arrays = [np.full((5, 5), i, np.uint8) for i in range(3)] + [np.zeros((5, 5, 3), np.uint8)]
    from_numpy = load_data((arrays, np.array(["a", "a", "b", "b"])))
    assert all(isinstance(item, Image.Image) for item in from_numpy.train.items)
    assert from_numpy.val.origins[0].startswith("list item ")


def test_python_pair_problems():
    with pytest.raises(DataError, match="3 items but 2 labels"):
        load_data((["a", "b", "c"], ["x", "y"]))
    with pytest.raises(DataError, match=r"mixes modalities: list item 1 is an image"):
        load_data((["cat.jpg", "some text"], ["x", "y"]))
    with pytest.raises(DataError, match=r"list item 2: the image array has values from 0 to 300; give floats in"):
        load_data(([np.zeros((2, 2), np.uint8), np.linspace(0, 300, 4).reshape(2, 2)], ["x", "y"]))
    with pytest.raises(DataError, match=r"list item 1: the image array holds NaN"):
        load_data(([np.full((2, 2), np.nan), np.zeros((2, 2))], ["x", "y"]))
    with pytest.raises(DataError, match="carries no labels"):
        load_data(["a", "b", "c"])


def test_load_items_inputs(tmp_path):
    root = image_tree(tmp_path / "photos")
    (root / "cat" / "broken.png").write_bytes(b"junk")
    items = load_items(root, skip_bad=True)
    assert len(items) == 8 and items.labels is None and items.modality == "image"
    assert [Path(s.origin).name for s in items.skipped] == ["broken.png"]
    with pytest.raises(DataError, match="broken.png"):
        load_items(root)
    single = load_items(root / "cat" / "0.png")
    assert single.items == (str(root / "cat" / "0.png"),)
    assert load_items(["nice film", "dull film"]).modality == "text"
    assert len(load_items(Image.new("RGB", (3, 3)))) == 1
    with pytest.raises(DataError, match=r"list item 2: the text is empty"):
        load_items(["ok", "   "])


# ---------------------------------------------------------------- splits


def many_texts(per_class: dict[str, int]):
    """(texts, labels) with distinct texts."""
    texts, labels = [], []
    for label, count in per_class.items():
        texts += [f"{label} text {i}" for i in range(count)]
        labels += [label] * count
    return texts, labels


def test_stratified_split_is_seeded_and_covers_every_class():
    data = many_texts({"a": 40, "b": 20, "c": 2, "d": 3})
    first = load_data(data, seed=7, test_fraction=0.2)
    again = load_data(data, seed=7, test_fraction=0.2)
    other = load_data(data, seed=8, test_fraction=0.2)
    assert first.split == again.split
    assert first.split["val_origins"] != other.split["val_origins"]
    for part in (first.train, first.val):
        assert part.classes == ["a", "b", "c", "d"]
    assert first.split["sizes"] == {"train": 38, "val": 14, "test": 13}
    assert first.split["carved"] == ["val", "test"]
    everything = (
        first.split["train_origins"] + first.split["val_origins"] + first.split["test_origins"]
    )
    assert sorted(everything) == sorted(f"list item {i}" for i in range(1, 66))
    json.dumps(first.split)


def test_two_examples_per_class_split_one_and_one():
    splits = load_data(many_texts({"a": 2, "b": 2}), val_fraction=0.1, test_fraction=0.1)
    assert splits.train.labels == ("a", "b") and splits.val.labels == ("a", "b")
    assert splits.test is None and splits.split["sizes"]["test"] == 0


# ---------------------------------------------------------------- hashes and read-only


def test_item_hashes_follow_content_not_path(tmp_path):
    one = png(tmp_path / "one" / "x.png", (1, 2, 3))
    two = tmp_path / "two" / "elsewhere.png"
    two.parent.mkdir()
    two.write_bytes(one.read_bytes())
    data = Dataset(
        items=(str(one), str(two)), labels=("a", "b"), modality="image", origins=("one", "two")
    )
    first, second = data.item_hashes()
    assert first == second
    png(two, (200, 0, 0))
    changed = Dataset(
        items=(str(one), str(two)), labels=None, modality="image", origins=("one", "two")
    )
    assert changed.item_hashes()[1] != first
    assert changed.fingerprint() != data.fingerprint()
    assert data.subset([1, 0]).item_hashes() == [second, first]
    assert changed.subset([1, 0]).fingerprint() != changed.fingerprint()


def test_item_hashes_for_texts_and_pil_images():
    texts = Dataset(("hi", "hi", "ho"), ("a", "b", "a"), "text", ("1", "2", "3"))
    assert texts.item_hashes()[0] == texts.item_hashes()[1] != texts.item_hashes()[2]
    red = Image.new("RGB", (2, 2), (255, 0, 0))
    images = Dataset((red, red.copy(), red.convert("L")), None, "image", ("1", "2", "3"))
    hashes = images.item_hashes()
    assert hashes[0] == hashes[1] != hashes[2]


def test_loading_never_writes_into_the_data_folder(tmp_path):
    root = tmp_path / "data"
    image_tree(root / "train", 3)
    image_tree(root / "test", 2)
    (root / "train" / "cat" / "bad.png").write_bytes(b"junk")
    before = snapshot(root)
    splits = load_data(root, skip_bad=True, test_fraction=0.2)
    splits.train.item_hashes()
    load_items(root / "test", skip_bad=True)
    assert snapshot(root) == before


# ---------------------------------------------------------------- bundled data


def test_bbc_news_folder_loads_2225_texts_in_5_classes(tmp_path):
    folder = bbc_news_folder()
    splits = load_data(folder)
    assert len(splits.train) + len(splits.val) == 2225 and splits.skipped == []
    assert splits.classes == ["business", "entertainment", "politics", "sports", "tech"]
    table = bbc_news_csv(tmp_path / "bbc.csv")
    assert load_data(table).split["sizes"] == splits.split["sizes"]


def test_mnist_folder_small_and_idempotent(tmp_path):
    dest = mnist_folder(tmp_path / "mnist5", per_class=5)
    files = sorted(dest.rglob("*.png"))
    assert len(files) == 50 and files[0].relative_to(dest).as_posix() == "0/0000.png"
    with Image.open(files[0]) as image:
        assert image.mode == "L" and image.size == (28, 28)
    before = snapshot(dest)
    assert mnist_folder(dest, per_class=5) == dest and snapshot(dest) == before
    assert [p.name for p in tmp_path.iterdir()] == ["mnist5"]
    with pytest.raises(DataError, match="not an MNIST folder with 7 images"):
        mnist_folder(dest, per_class=7)
    assert load_data(dest).classes == [str(d) for d in range(10)]
