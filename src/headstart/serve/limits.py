"""What a request may hold, and turning its JSON or multipart parts into items a run can predict on.

Every bound is checked before the work it guards: the body's size before it is read whole (see
``headstart.serve.app``), an image's width x height from its header before its pixels are decoded (a
decompression bomb is refused unread), a sound's duration from its header before its samples are.
A request that breaks one gets a ``RequestError``: its HTTP status, the field at fault and what to do.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from headstart.data.audio import resample
from headstart.data.images import DECODE_ERRORS, quiet_pillow, to_rgb


@dataclass(frozen=True)
class Limits:
    """The bounds of one request; each has a ``headstart serve`` option of the same name."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_items: int = 64
    max_text_chars: int = 20_000
    max_pixels: int = 25_000_000  # width x height of one decoded image (Pillow's own bomb limit is 89M)
    max_audio_seconds: float = 60.0


class RequestError(Exception):
    """A request headstart will not answer: ``status`` (4xx), the ``field`` at fault and a message saying
    what to do; the server turns it into ``{"error": {"field": ..., "message": ...}}``."""

    def __init__(self, status: int, field: str | None, message: str):
        super().__init__(message)
        self.status, self.field, self.message = status, field, message

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": {"field": self.field, "message": self.message}}


def bad(field: str | None, message: str, status: int = 422) -> RequestError:
    """A RequestError (422 unless told: the request was well-formed but its content cannot be used)."""
    return RequestError(status, field, message)


def json_inputs(payload: Any, limits: Limits) -> tuple[list[Any], int | None]:
    """``(inputs, top_k)`` of a JSON body ``{"inputs": [...], "top_k": K}``, shapes and counts checked."""
    if not isinstance(payload, dict):
        raise bad(None, f"The body must be a JSON object like {{\"inputs\": [...]}}, not a {kind(payload)}.")
    unknown = sorted(set(payload) - {"inputs", "top_k"})
    if unknown:
        raise bad(unknown[0], f"Unknown field {unknown[0]!r}: a request has 'inputs' and, optionally, 'top_k'.")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list):
        raise bad("inputs", f"'inputs' must be a list of items (texts, or base64 files), not a {kind(inputs)}.")
    check_count(len(inputs), "inputs", limits)
    return inputs, top_k_value(payload.get("top_k"))


def check_count(count: int, field: str, limits: Limits) -> None:
    """At least one item and at most ``limits.max_items``."""
    if count == 0:
        raise bad(field, f"'{field}' is empty: send at least one item.")
    if count > limits.max_items:
        raise bad(field, f"'{field}' holds {count} items, over the limit of {limits.max_items} per request "
                         "(--max-items): split them over several requests.", 413)


def top_k_value(value: Any) -> int | None:
    """``top_k`` as a positive whole number, or None when absent."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():  # a multipart form field is text
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad("top_k", f"'top_k' must be a whole number of at least 1, not {value!r}.")
    return value


def text_item(value: Any, field: str, limits: Limits) -> str:
    """One text: a non-blank string within ``limits.max_text_chars``."""
    if not isinstance(value, str):
        raise bad(field, f"'{field}' must be a string (this run reads texts), not a {kind(value)}.")
    if not value.strip():
        raise bad(field, f"'{field}' is blank: send the text to classify.")
    if len(value) > limits.max_text_chars:
        raise bad(field, f"'{field}' has {len(value)} characters, over the limit of {limits.max_text_chars} "
                         "(--max-text-chars): shorten it (the model reads only its first tokens anyway).", 413)
    return value


def base64_bytes(value: Any, field: str, modality: str) -> bytes:
    """The bytes of a base64 string (a ``data:...;base64,`` prefix allowed)."""
    if not isinstance(value, str):
        raise bad(field, f"'{field}' must be a base64 string of {modality} file bytes (this run reads "
                         f"{modality}s), not a {kind(value)}.")
    encoded = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise bad(field, f"'{field}' is not valid base64: this run reads {modality}s, so send each file's bytes "
                         "base64-encoded (base64 -w0 FILE), or upload the files as multipart 'files'.") from None
    if not data:
        raise bad(field, f"'{field}' is empty: send the {modality} file's bytes.")
    return data


def image_item(data: bytes, field: str, limits: Limits) -> Image.Image:
    """An RGB image from file bytes; its size is read from the header and checked before it is decoded."""
    try:
        with quiet_pillow(), Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise bad(field, f"'{field}' is a {width}x{height} image ({width * height} pixels), over the limit "
                                 f"of {limits.max_pixels} (--max-pixels): resize it before sending.", 413)
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))  # as `predict` reads a file
    except Image.DecompressionBombError:  # Pillow refuses twice its own limit before we can read the size
        raise bad(field, f"'{field}' is an image of over {2 * Image.MAX_IMAGE_PIXELS} pixels, far over the limit of "
                         f"{limits.max_pixels} (--max-pixels): resize it before sending.", 413) from None
    except DECODE_ERRORS as exc:
        raise bad(field, f"'{field}' cannot be decoded as an image ({' '.join(str(exc).split())[:120]}): send a "
                         "PNG or JPEG file's bytes.") from None


def sound_item(data: bytes, field: str, limits: Limits, rate: int) -> np.ndarray:
    """Mono float32 samples at ``rate`` Hz from file bytes; the duration is read from the header first."""
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(data))
        if info.duration > limits.max_audio_seconds:
            raise bad(field, f"'{field}' lasts {info.duration:.1f} s, over the limit of {limits.max_audio_seconds:g} s "
                             "(--max-audio-seconds): cut it into shorter clips.", 413)
        samples, native = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
        raise bad(field, f"'{field}' cannot be decoded as audio ({' '.join(str(exc).split())[:120]}): send a "
                         ".wav, .flac, .ogg or .mp3 file's bytes.") from None
    if samples.size == 0 or not np.isfinite(samples).all():
        raise bad(field, f"'{field}' holds no samples, or NaN or infinite ones: send a recorded clip.")
    return resample(samples.mean(axis=1), int(native), rate)


def kind(value: Any) -> str:
    """A JSON value's type in JSON's words."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
