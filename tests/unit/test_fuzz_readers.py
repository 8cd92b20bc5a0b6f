"""Fuzzing the data readers: whatever the bytes, ``load_data`` / ``load_items`` succeed or raise a HeadstartError.

Each target states its number of examples (EXAMPLES_*); all of them together take well under a minute on
two CPU cores. Examples are random on every run (no example database is written); a failure prints the
minimal input hypothesis shrank it to, and ``@seed`` / ``@reproduce_failure`` replay it.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from headstart.data import load_data, load_items
from headstart.core.errors import HeadstartError

EXAMPLES_BYTES = 300  # raw bytes under every table extension
EXAMPLES_DELIMITED = 300  # CSV/TSV text: random columns, quoting, NULs, huge fields, encodings
EXAMPLES_JSONL = 300  # JSON Lines: random JSON values and broken lines
EXAMPLES_IMAGES = 200  # image files: random bytes, truncated/corrupted real PNG/JPEG/GIF/BMP/TIFF/WebP
EXAMPLES_IMAGE_PATHS = 200  # image-path columns: ../, absolute, symlinks, NULs, long names

FUZZ = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TABLE_SUFFIXES = [".csv", ".tsv", ".jsonl", ".ndjson", ".parquet"]
IMAGE_SUFFIXES = [".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"]
COLUMN_NAMES = ["text", "label", "image", "path", "Label", "TEXT", "class", "y", "file", "", " ", "a,b", 'q"',
                "\x00", "é", "text ", "label"]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252", "utf-32"]

# Texts with the characters that break naive readers: quotes, delimiters, newlines, NULs, BOMs, surrogates.
nasty_text = st.text(alphabet=st.sampled_from(list('ab ,\t\n\r"\'\\\x00\ufeff\u2028é中🙂;|{}[]:') + ["\udcff"]),
                     max_size=40)
cells = st.one_of(
    nasty_text,
    st.sampled_from(["sports", "cooking", "", " ", "nan", "None", "null", "1", "1.0", "0"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "\"", ",", "\x00"]), st.integers(100_000, 300_000)),
)


def _check(call, *args, **kwargs) -> None:
    """The one property: success, or a HeadstartError (DataError, ConfigError...), never anything else."""
    try:
        call(*args, **kwargs)
    except HeadstartError:
        pass


def _read_all(path: Path) -> None:
    for skip_bad in (False, True):
        _check(load_data, str(path), skip_bad=skip_bad)
        _check(load_items, str(path), skip_bad=skip_bad)


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="surrogateescape" if encoding.startswith("utf-8") else "replace")


@pytest.mark.parametrize("suffix", TABLE_SUFFIXES)
@settings(max_examples=EXAMPLES_BYTES // len(TABLE_SUFFIXES), **FUZZ)
@given(payload=st.binary(max_size=2000))
def test_random_bytes_as_tables(suffix, payload):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(payload)
        _read_all(path)


@settings(max_examples=EXAMPLES_DELIMITED, **FUZZ)
@given(
    delimiter=st.sampled_from([",", "\t"]),
    header=st.lists(st.sampled_from(COLUMN_NAMES), min_size=0, max_size=5),
    rows=st.lists(st.lists(cells, max_size=6), max_size=12),
    quoting=st.sampled_from(["none", "all", "broken"]),
    encoding=st.sampled_from(ENCODINGS),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_random_delimited_tables(delimiter, header, rows, quoting, encoding, newline):
    def line(values: list[str]) -> str:
        if quoting == "all":
            return delimiter.join('"' + v.replace('"', '""') + '"' for v in values)
        if quoting == "broken":
            return delimiter.join('"' + v for v in values)
        return delimiter.join(values)

    text = newline.join([line(header)] + [line(r) for r in rows])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("data.tsv" if delimiter == "\t" else "data.csv")
        path.write_bytes(_encode(text, encoding))
        _read_all(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | nasty_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(COLUMN_NAMES), children,
                                                                      max_size=3),
    max_leaves=8,
)
json_rows = st.dictionaries(st.sampled_from(COLUMN_NAMES), json_values, max_size=4)
json_lines = st.one_of(json_rows.map(json.dumps), json_values.map(json.dumps), nasty_text,
                       st.just('{"text": "unterminated'), st.just(""))


@settings(max_examples=EXAMPLES_JSONL, **FUZZ)
@given(lines=st.lists(json_lines, max_size=15), encoding=st.sampled_from(ENCODINGS),
       suffix=st.sampled_from([".jsonl", ".ndjson"]))
def test_random_jsonl_tables(lines, encoding, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(_encode("\n".join(lines), encoding))
        _read_all(path)


def _real_image_bytes(fmt: str, size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


REAL_IMAGES = {fmt: _real_image_bytes(fmt, 12) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")}


@st.composite
def image_payloads(draw) -> bytes:
    """Random bytes, or a real image truncated, corrupted, or behind another format's header."""
    kind = draw(st.sampled_from(["random", "truncated", "corrupted", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    real = REAL_IMAGES[draw(st.sampled_from(sorted(REAL_IMAGES)))]
    if kind == "truncated":
        return real[: draw(st.integers(0, len(real)))]
    if kind == "header":
        return real[: draw(st.integers(0, 40))] + draw(st.binary(max_size=400))
    data = bytearray(real)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=EXAMPLES_IMAGES, **FUZZ)
@given(payloads=st.lists(st.tuples(image_payloads(), st.sampled_from(IMAGE_SUFFIXES)), min_size=1, max_size=4))
def test_random_image_files(payloads):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        good = _real_image_bytes("PNG", 8)
        for c in ("a", "b"):  # two classes with one decodable image each, plus the fuzzed files
            (root / c).mkdir(parents=True)
            (root / c / "ok.png").write_bytes(good)
        files = []
        for i, (payload, suffix) in enumerate(payloads):
            path = root / ("a", "b")[i % 2] / f"f{i}{suffix}"
            path.write_bytes(payload)
            files.append(str(path))
        _read_all(root)
        _check(load_items, files)
        _check(load_items, files[0])
        for skip_bad in (False, True):
            _check(load_data, (files + [str(root / "a" / "ok.png")], ["a"] * len(files) + ["b"]), skip_bad=skip_bad)


path_values = st.one_of(
    st.sampled_from(["../outside.png", "../../etc/passwd", "/etc/passwd", "/dev/zero", "/proc/self/environ",
                     "link_out.png", "link_loop.png", "link_dir.png", "sub/../ok.png", "./ok.png", "ok.png",
                     "~/ok.png", "sub", ".", "..", "", "nul\x00byte.png", "C:\\Windows\\x.png", "file:///etc/x.png",
                     "a" * 300 + ".png", "ok.png" + "/" * 5, "sub/" * 50 + "x.png"]),
    st.builds(lambda a, b: a + b, st.sampled_from(["../", "/", "./", "sub/", "/tmp/", "\\..\\"]),
              st.text(alphabet="ab./\\\x00", max_size=12).map(lambda s: s + ".png")),
)


@settings(max_examples=EXAMPLES_IMAGE_PATHS, **FUZZ)
@given(paths=st.lists(path_values, min_size=1, max_size=6), labels=st.lists(st.sampled_from(["a", "b", ""]),
                                                                            min_size=6, max_size=6),
       column=st.sampled_from(["image", "path", "file"]), suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_random_image_paths_in_tables(paths, labels, column, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        outside = Path(tmp) / "outside.png"
        outside.write_bytes(_real_image_bytes("PNG", 8))
        folder = Path(tmp) / "table"
        (folder / "sub").mkdir(parents=True)
        (folder / "ok.png").write_bytes(_real_image_bytes("PNG", 8))
        os.symlink(outside, folder / "link_out.png")
        os.symlink(folder / "link_loop.png", folder / "link_loop.png")
        os.symlink(folder / "sub", folder / "link_dir.png")
        rows = [{column: p, "label": labels[i]} for i, p in enumerate(paths)]
        rows += [{column: "ok.png", "label": "a"}, {column: "ok.png", "label": "b"}]
        path = folder / f"data{suffix}"
        if suffix == ".jsonl":
            path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8", errors="surrogateescape")
        else:
            d = "\t" if suffix == ".tsv" else ","
            lines = [f"{column}{d}label"] + ['"' + r[column].replace('"', '""') + f'"{d}{r["label"]}' for r in rows]
            path.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")
        _read_all(path)
