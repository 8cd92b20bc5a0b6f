"""The input size images are fed at, chosen from their native size and the backbone's pretrained size.

Small images gain little from being blown up to a backbone's 224 px and cost about (224 / size)^2 more
compute per epoch; large ones are shrunk to the pretrained size, as always. The rule for fine-tuning
(measured in bench/RESULTS.md): twice the native short side, rounded up to a multiple of 32, at least
``MIN_SIZE`` and at most the pretrained size. A frozen backbone (``linear``) extracts its features once,
so it takes the pretrained size whatever the images' size (decided on the zoo, bench/RESULTS.md).
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from headstart.data.dataset import Dataset

MIN_SIZE = 96
SAMPLE = 200  # images whose headers are read to find the native size


def native_size(data: Dataset, sample: int = SAMPLE) -> int | None:
    """Median short side, in pixels, of up to ``sample`` images of ``data`` (headers only); None if unknown."""
    step = max(1, len(data) // sample)
    sides = [side for item in data.items[::step][:sample] if (side := _short_side(item)) is not None]
    return int(np.median(sides)) if sides else None


def choose_image_size(native: int | None, pretrained: int, frozen: bool = False) -> int:
    """The input size for images whose short side is ``native`` on a backbone pretrained at ``pretrained``;
    ``frozen`` (a fit that only reads cached features, ``linear``) always takes the pretrained size: it pays
    for the size once, and on the zoo (bench/RESULTS.md) it scored better there."""
    if native is None or frozen:
        return pretrained
    return min(pretrained, max(MIN_SIZE, 32 * math.ceil(2 * native / 32)))


def _short_side(item) -> int | None:
    if isinstance(item, Image.Image):
        return min(item.size)
    if isinstance(item, np.ndarray) and item.ndim >= 2:
        return int(min(item.shape[:2]))
    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as image:  # reads the header, not the pixels
                return min(image.size)
        except OSError:
            return None
    return None
