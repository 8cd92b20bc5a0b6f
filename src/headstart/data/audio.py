"""Recognising, checking and decoding sound files (.wav, .flac, .ogg, .mp3) with soundfile (libsndfile).

soundfile is used rather than torchaudio because torchaudio has no wheel for the torch headstart pins;
libsndfile (bundled in soundfile's wheel, 1.1+) decodes all four formats. Sound is read as mono float32
(channels averaged) and resampled with a polyphase filter (scipy's ``resample_poly``) to the rate a
backbone's weights were trained at.
"""

from __future__ import annotations

import os
from functools import lru_cache
from math import gcd

import numpy as np

AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".mp3"})
MAX_SECONDS = 600.0  # one item longer than this is a recording to cut into clips, not a clip
SILENT_PEAK = 10 ** (-80 / 20)  # below -80 dBFS everywhere: nothing to hear
MIN_CLIP, MAX_CLIP = 0.5, 30.0  # seconds: the range a clip length chosen from the data is kept in


def is_audio_name(name: str | os.PathLike) -> bool:
    """True if the file name ends in one of AUDIO_EXTENSIONS (any case)."""
    return os.path.splitext(os.fspath(name))[1].lower() in AUDIO_EXTENSIONS


def _decode(path: str) -> tuple[np.ndarray, int]:
    """``(samples [frames, channels] float32, rate)`` of a sound file; soundfile's errors pass through."""
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return data, int(rate)


def audio_file_problem(path: str, max_seconds: float = MAX_SECONDS) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) if the sound file is missing, undecodable, empty, too long, silent or
    holds non-finite samples; else None."""
    import soundfile

    name = os.path.basename(path)
    if not os.path.isfile(path):
        return f"the audio file '{path}' does not exist", "Correct the path or add the file"
    if os.path.getsize(path) == 0:
        return f"the audio file '{name}' is empty (0 bytes)", "Remove it or record it again"
    try:
        info = soundfile.info(path)
        if info.duration > max_seconds:
            return (f"the audio file '{name}' is {info.duration:.1f} s long, over the limit of {max_seconds:.0f} s "
                    "for one item", "Cut it into clips of a few seconds (e.g. sox in.wav out.wav trim 0 10)")
        data, _ = _decode(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        return (f"the audio file '{name}' cannot be decoded as audio ({_decode_detail(exc, path)})",
                "Re-save it as 16-bit .wav or .flac, or remove it")
    if data.size == 0:
        return f"the audio file '{name}' is empty (no samples)", "Remove it or record it again"
    if not np.isfinite(data).all():
        return f"the audio file '{name}' holds NaN or infinite samples", "Re-save it as 16-bit .wav or remove it"
    peak = float(np.abs(data).max())
    if peak < SILENT_PEAK:
        level = "digital silence" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        return (f"the audio file '{name}' is silent ({level})",
                "Check the recording (a muted microphone?) or remove it")
    return None


def _decode_detail(exc: Exception, path: str) -> str:
    """libsndfile's reason without the path. Of an .mp3 holding no audio frames it says "File does not exist";
    the file is there (checked first), so that is said as what it means: the bytes are not that format."""
    detail = str(exc).replace(f"'{path}'", "").replace(path, "").strip(" :")
    if "does not exist" in detail:
        return f"format not recognised: its bytes are not {os.path.splitext(path)[1].lower()} audio"
    return detail or type(exc).__name__


def read_audio(path: str, rate: int) -> np.ndarray:
    """Mono float32 samples of a sound file at ``rate`` Hz."""
    data, native = _decode(path)
    return resample(data.mean(axis=1), native, rate)


def resample(samples: np.ndarray, native: int, rate: int) -> np.ndarray:
    """``samples`` (1-D) from ``native`` Hz to ``rate`` Hz by polyphase filtering (unchanged when equal)."""
    samples = np.asarray(samples, dtype=np.float32)
    if native == rate:
        return samples
    from scipy.signal import resample_poly

    up, down = _ratio(native, rate)
    return resample_poly(samples, up, down).astype(np.float32)


@lru_cache(maxsize=32)
def _ratio(native: int, rate: int) -> tuple[int, int]:
    common = gcd(native, rate)
    return rate // common, native // common


def duration(path: str) -> float:
    """Length in seconds from the file's header."""
    import soundfile

    return float(soundfile.info(path).duration)


def choose_clip_seconds(paths: list[str]) -> float:
    """A clip length from the data: the 95th percentile of the durations rounded up to 0.25 s, kept within
    0.5-30 s, so that nearly every item fits whole and short ones are not mostly padding."""
    durations = [duration(p) for p in paths if isinstance(p, str)]
    if not durations:
        return 1.0
    longest = float(np.percentile(durations, 95))
    return float(min(MAX_CLIP, max(MIN_CLIP, np.ceil(longest * 4) / 4)))
