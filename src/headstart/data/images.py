"""Recognising, checking and decoding images from files, PIL images and numpy arrays."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from headstart.core.errors import DataError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})  # more than 8 bits per pixel


@contextmanager
def quiet_pillow() -> Iterator[None]:
    """Silence Pillow's warnings (DecompressionBombWarning, palette transparency...) within the block only.

    They would reach the user's terminal as raw warnings with library paths; what matters is handled here:
    an image too large to be safe is refused (DecompressionBombError), transparency is composited.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def is_image_name(name: str | os.PathLike) -> bool:
    """True if the file name ends in one of IMAGE_EXTENSIONS (any case)."""
    return os.path.splitext(os.fspath(name))[1].lower() in IMAGE_EXTENSIONS


def image_file_problem(path: str) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) if the image file cannot be fully decoded, else None."""
    try:
        with quiet_pillow(), Image.open(path) as image:
            image.load()
    except (FileNotFoundError, IsADirectoryError):
        return f"the image file '{path}' does not exist", "Correct the path or add the file"
    except DECODE_ERRORS as exc:
        detail = str(exc).replace(f" '{path}'", "").replace(f" {path}", "")
        return (
            f"the image file '{os.path.basename(path)}' cannot be decoded ({detail})",
            "Re-save it as PNG or JPEG or remove it",
        )
    return None


def array_problem(array: np.ndarray) -> str | None:
    """Why a numpy array is not an image headstart can use, or None if it is.

    Images are HxW or HxWxC (C = 1, 3, 4) arrays of uint8, of other integers within 0-255, or of floats
    within [0, 1] or [0, 255] (see ``to_uint8`` for how those are scaled).
    """
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    if not shape_ok or array.shape[0] == 0 or array.shape[1] == 0:
        return f"the image array has shape {array.shape}; expected HxW or HxWxC with C = 1, 3 or 4"
    return pixel_problem(array)


def pixel_problem(array: np.ndarray) -> str | None:
    """Why the values of an image array (or a stack of them) cannot be read as pixels, or None."""
    if array.dtype == np.uint8:
        return None
    if array.dtype.kind not in "uif":
        return (f"the image array has dtype {array.dtype}; give uint8 pixels, or floats in [0, 1] "
                "or [0, 255]")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return "the image array holds NaN or infinite values"
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        kind = "floats in [0, 1] or [0, 255]" if array.dtype.kind == "f" else "integers in 0-255"
        return f"the image array has values from {low:g} to {high:g}; give {kind}"
    return None


def to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 pixels from an array that passed ``pixel_problem``.

    Floats whose values all lie in [0, 1] are scaled by 255; any other values (floats up to 255, integers)
    are taken as 0-255 and rounded. The rule applies to the array as a whole: a stack of images
    (N x H x W[ x C]) is scaled alike, so a nearly black image among them is not brightened on its own.
    """
    if array.dtype == np.uint8:
        return array
    scale = 255.0 if array.dtype.kind == "f" and array.max() <= 1.0 else 1.0
    return np.rint(array.astype(np.float64) * scale).astype(np.uint8)


def array_to_image(array: np.ndarray) -> Image.Image:
    """PIL image (L, RGB or RGBA) from an array that passed ``array_problem``."""
    array = to_uint8(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    mode = {2: "L"}.get(array.ndim) or {3: "RGB", 4: "RGBA"}[array.shape[2]]
    return Image.fromarray(np.ascontiguousarray(array), mode=mode)


def to_8bit(image: Image.Image) -> Image.Image:
    """L image from a mode with more than 8 bits per pixel (WIDE_MODES), stretched from its lowest to its highest
    value (a constant image becomes black); Pillow's own conversion clips at 255, whitening a 16-bit image."""
    values = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(values)
    low = float(values[finite].min()) if finite.any() else 0.0
    high = float(values[finite].max()) if finite.any() else 0.0
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled = np.nan_to_num((values - low) * scale, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of ``image``; transparent pixels are composited onto white, wide (16-bit, float) pixels scaled."""
    if image.mode in WIDE_MODES:
        return to_8bit(image).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def load_image(item: Any) -> Image.Image:
    """RGB image from a path, PIL image or uint8 array; DataError naming the file if unreadable."""
    if isinstance(item, Image.Image):
        with quiet_pillow():
            return to_rgb(item)
    if isinstance(item, np.ndarray):
        problem = array_problem(item)
        if problem:
            raise DataError(f"Cannot use this image: {problem}.")
        return to_rgb(array_to_image(item))
    if not isinstance(item, (str, Path)):
        raise DataError(
            f"Cannot load an image from a {type(item).__name__}; "
            "pass a file path, a PIL image or a numpy array (uint8, or floats in [0, 1] or [0, 255])."
        )
    try:
        with quiet_pillow(), Image.open(item) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except FileNotFoundError as exc:
        raise DataError(f"{item}: the image file does not exist. Check the path.") from exc
    except DECODE_ERRORS as exc:
        raise DataError(
            f"{item}: cannot decode this image ({exc}). "
            "Re-save it as PNG or JPEG, or remove it from the data."
        ) from exc
