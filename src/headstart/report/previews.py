"""What a report shows of one item: a small JPEG thumbnail (data URI) for an image, a spectrogram thumbnail for a
sound, the first characters of a text.

Previews are made from the items in memory (file paths, PIL images, numpy arrays, texts) while the
data is at hand, and only ever embedded as data URIs: a report never points at the user's files.
:func:`gallery` keeps a fit's worst validation mistakes (as its task picks them), previews included, small
enough for metrics.json, so a run's report can be rebuilt where the data is not.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from headstart.core.errors import DataError

if TYPE_CHECKING:
    from headstart.data import Dataset

THUMB_PX = 64  # longest side of a thumbnail, in pixels
TEXT_CHARS = 160  # characters of a text shown
GALLERY_SIZE = 24  # validation mistakes a fit keeps (the worst first)
_URI = re.compile(r"data:image/(jpeg|png);base64,[A-Za-z0-9+/]+={0,2}")


def thumbnail(item: Any, px: int = THUMB_PX) -> str | None:
    """A JPEG data URI of ``item`` (a path, PIL image or array) at most ``px`` on its longest side, or None when it
    cannot be read (a file moved since loading). At 64 px it holds at most 2.7 kB (pure noise; a photo ~1.5 kB)."""
    from headstart.data.images import load_image  # the data package is heavy; reports may never need it

    try:
        image = load_image(item)
    except (DataError, OSError):
        return None
    image.thumbnail((px, px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def spectrogram_thumbnail(path: Any, px: int = THUMB_PX, rate: int = 16_000) -> str | None:
    """A JPEG data URI of a sound file's log-power spectrogram (time across, low frequencies at the bottom),
    ``px`` pixels square, or None when the file cannot be read."""
    from headstart.data.audio import read_audio  # the data package is heavy; reports may never need it

    try:
        samples = read_audio(str(path), rate)
    except (DataError, OSError, RuntimeError, ValueError):  # soundfile's LibsndfileError is a RuntimeError
        return None
    window = 512
    if len(samples) < window:
        samples = np.pad(samples, (0, window - len(samples)))
    frames = np.lib.stride_tricks.sliding_window_view(samples, window)[::window // 4] * np.hanning(window)
    power = 10 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-10).T[::-1]  # [frequency, time]
    top = power.max()
    scaled = np.clip((power - (top - 80)) / 80, 0, 1)  # 80 dB of range, the loudest bin white
    image = Image.fromarray((255 * scaled).astype(np.uint8)).resize((px, px), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def text_preview(text: Any, chars: int = TEXT_CHARS) -> str:
    """The first ``chars`` characters of a text, whitespace runs folded, an ellipsis where it was cut."""
    folded = " ".join(str(text).split())
    return folded if len(folded) <= chars else folded[: chars - 1].rstrip() + "…"


def preview(item: Any, modality: str) -> dict:
    """``{"thumbnail": data URI}`` for an image, ``{"text": first characters}`` for a text (empty when unreadable)."""
    if modality not in _THUMBNAILS:
        return {"text": text_preview(item)}
    uri = _THUMBNAILS[modality](item)
    return {"thumbnail": uri} if uri else {}


_THUMBNAILS = {"image": thumbnail, "audio": spectrogram_thumbnail}  # per modality of files; texts are quoted


def safe_thumbnail(uri: Any) -> str | None:
    """``uri`` when it is a base64 JPEG/PNG data URI (as :func:`thumbnail` writes), else None: a record read back
    from a run folder may have been edited, and only an inert image may reach an ``src`` attribute."""
    return uri if isinstance(uri, str) and _URI.fullmatch(uri) else None


def gallery(ds: Dataset, picked: Sequence[tuple[int, dict]]) -> list[dict]:
    """The report's gallery, kept in metrics.json: for each ``(index, fields)`` a task picked on ``ds`` (its
    ``mistakes``), the item's origin, those fields and a preview."""
    return [{"origin": str(ds.origins[i]), **fields, **preview(ds.items[i], ds.modality)} for i, fields in picked]
