"""Preprocessing of sound for audio backbones: decode, mono, resample, crop or pad to a fixed clip, augment.

A batch is either the waveforms themselves (``[B, samples]`` float32, for models whose spectrogram front
end is part of the module, like the sound-effects CNN) or what a Hugging Face feature extractor makes of
them (``input_values`` or ``input_features``) plus ``lengths``, the real samples of each clip before
padding, which the pooling uses as its attention mask.

Augmentation (fine-tuning, unless ``--no-augment``) works on the waveform, so that it serves every family:
a random time shift (where the clip sits in its window), a random gain, Gaussian noise at a random
signal-to-noise ratio, and SpecAugment-style masking: one zeroed span of time and one zeroed band of
frequencies (through the FFT of the clip).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.backbones.preprocessing import target_tensor
from headstart.data.audio import read_audio

GAIN_DB = 6.0  # augmentation: gain drawn from +-6 dB
SNR_DB = (15.0, 40.0)  # augmentation: noise this far below the clip's RMS
MASK_FRACTION = 0.1  # augmentation: at most this share of the time and of the frequencies is masked


@dataclass(frozen=True)
class AudioPreprocessing:
    """Mono at ``sample_rate`` Hz, cropped or zero-padded to ``clip_seconds``; ``feature_extractor`` (Hugging
    Face models) turns the waveforms into the model's inputs, else the waveform is the input."""

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    feature_extractor: Any = field(default=None, compare=False, repr=False)

    @property
    def clip_samples(self) -> int:
        """The clip length in samples."""
        return max(1, int(round(self.clip_seconds * self.sample_rate)))

    def collate(self, augment: bool = False, hflip: bool = True):
        """A DataLoader collate_fn over ``(item, label)`` pairs (``hflip`` means nothing for sound)."""
        return _AudioCollate(self, augment)

    def neutral_item(self) -> np.ndarray:
        """An input that says nothing much (a quiet 440 Hz tone, one second): serving's warm-up."""
        return (0.1 * np.sin(np.linspace(0, 2 * np.pi * 440, self.sample_rate))).astype(np.float32)

    def with_clip(self, seconds: float) -> "AudioPreprocessing":
        """The same preprocessing with clips of ``seconds``."""
        return replace(self, clip_seconds=float(seconds))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings (the feature extractor by its class; its files are saved with the run)."""
        extractor = type(self.feature_extractor).__name__ if self.feature_extractor is not None else None
        return {"kind": "audio", "sample_rate": self.sample_rate, "clip_seconds": self.clip_seconds,
                "feature_extractor": extractor}

    def save(self, folder: Path, for_export: bool = False) -> None:
        """The feature extractor's files (preprocessor_config.json), if the model has one."""
        if self.feature_extractor is not None:
            self.feature_extractor.save_pretrained(str(folder))

    def export_record(self, input_names: list[str]) -> dict[str, Any]:
        """What an exported model expects as input, for people and other tools (preprocessing.json)."""
        record = {"kind": "audio", "inputs": input_names, "sample_rate": self.sample_rate,
                  "clip_seconds": self.clip_seconds, "clip_samples": self.clip_samples, "channels": "mono (mean)",
                  "crop": "centre, when longer", "pad": "zeros at the end, when shorter", "dtype": "float32"}
        if self.feature_extractor is None:
            record["input"] = "waveform [batch, clip_samples] in [-1, 1]; the log-mel front end is in the graph"
        else:
            record["input"] = ("the feature extractor's output (preprocessor_config.json in this folder: "
                               "AutoFeatureExtractor.from_pretrained(folder)) on the clipped waveform; "
                               "lengths = real samples per clip (before padding), for the pooling mask")
        return record


class _AudioCollate:
    """Picklable collate: decode and resample each item, place it in a fixed clip, augment, batch."""

    def __init__(self, prep: AudioPreprocessing, augment: bool):
        self.prep, self.augment = prep, augment

    def __call__(self, pairs: list) -> tuple[torch.Tensor | dict, torch.Tensor]:
        clips, lengths = zip(*(self._clip(item) for item, _ in pairs))
        labels = target_tensor([y for _, y in pairs])
        waves = torch.from_numpy(np.stack(clips))
        if self.prep.feature_extractor is None:
            return waves, labels
        return extract(self.prep, waves, torch.tensor(lengths, dtype=torch.long)), labels

    def _clip(self, item: Any) -> tuple[np.ndarray, int]:
        samples = item if isinstance(item, np.ndarray) else read_audio(str(item), self.prep.sample_rate)
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        size = self.prep.clip_samples
        clip = np.zeros(size, dtype=np.float32)
        if len(samples) >= size:
            start = _draw(len(samples) - size) if self.augment else (len(samples) - size) // 2
            clip[:] = samples[start:start + size]
            length = size
        else:
            offset = _draw(size - len(samples)) if self.augment else 0
            clip[offset:offset + len(samples)] = samples
            length = offset + len(samples)  # the mask covers the leading silence of a shifted clip
        if self.augment:
            clip = augment_wave(clip)
        return clip, length


def _draw(high: int) -> int:
    """A random integer in [0, high] from torch's generator (seeded by the fit)."""
    return int(torch.randint(0, high + 1, ()).item()) if high > 0 else 0


def augment_wave(clip: np.ndarray) -> np.ndarray:
    """Random gain, noise at a random SNR, one time mask and one frequency mask (torch's RNG)."""
    rand = torch.rand(5).numpy()
    clip = clip * np.float32(10 ** ((rand[0] * 2 - 1) * GAIN_DB / 20))
    rms = float(np.sqrt(np.mean(clip ** 2))) or 1e-4
    snr = SNR_DB[0] + rand[1] * (SNR_DB[1] - SNR_DB[0])
    clip = clip + torch.randn(len(clip)).numpy() * np.float32(rms * 10 ** (-snr / 20))
    span = int(rand[2] * MASK_FRACTION * len(clip))
    start = _draw(len(clip) - span)
    clip[start:start + span] = 0.0
    spectrum = np.fft.rfft(clip)
    band = int(rand[3] * MASK_FRACTION * len(spectrum))
    low = _draw(len(spectrum) - band)
    spectrum[low:low + band] = 0.0
    return np.fft.irfft(spectrum, n=len(clip)).astype(np.float32)


def extract(prep: AudioPreprocessing, waves: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """A Hugging Face feature extractor's inputs for clipped waveforms, plus ``lengths`` for pooling."""
    fe = prep.feature_extractor
    arrays = [w.numpy() for w in waves]
    out = fe(arrays, sampling_rate=prep.sample_rate, return_tensors="pt", **_extractor_options(fe))
    batch = {name: out[name] for name in ("input_values", "input_features") if name in out}
    if getattr(fe, "return_attention_mask", False) and "input_values" in batch:
        frames = torch.arange(waves.shape[1])[None, :] < lengths[:, None]
        batch["attention_mask"] = frames.long()  # the model's own mask over samples (wav2vec2 large, HuBERT)
    batch["lengths"] = lengths
    return batch


def _extractor_options(fe: Any) -> dict[str, Any]:
    """Per-extractor call options: Whisper pads to its own window; the others take the clips as they are."""
    name = type(fe).__name__
    if name.startswith("Whisper"):
        return {"padding": "max_length"}
    if name.startswith("ASTFeature"):
        return {}
    return {"padding": True}


def lengths_to_mask(lengths: torch.Tensor, frames: int, total: int) -> torch.Tensor:
    """A ``[B, frames]`` float mask of the frames that cover real samples, for ``total`` samples per clip."""
    real = torch.ceil(lengths.to(torch.float32) * frames / total).clamp(min=1)
    return (torch.arange(frames, device=lengths.device)[None, :] < real[:, None]).to(torch.float32)

