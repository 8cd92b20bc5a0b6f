"""Hugging Face audio encoders (wav2vec2, HuBERT, WavLM, data2vec-audio, AST, Whisper's encoder), mean-pooled.

Architecture record: ``{"family": "hf-audio", "config": {...}}`` (the transformers config as a dict). The
module is ``AutoModel`` (for Whisper, its encoder alone) behind ``PooledAudioEncoder``, which averages the
last hidden states over the frames that cover real sound: the clip's ``lengths`` (samples before padding)
mapped onto the output frames. AST's tokens are patches across time and frequency, so they are averaged
whole. Preprocessing: the model's own ``AutoFeatureExtractor`` on clips made as for every audio model
(mono, resampled to its rate, cropped or padded). Layer groups: the input side (convolutional feature
encoder, projections, patch or position embeddings), then one per transformer block. LoRA: every
``nn.Linear`` inside the blocks. Export: ONNX, taking the feature extractor's output and ``lengths``.
Nothing here runs code shipped with a model: every load passes ``trust_remote_code=False``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from headstart.backbones.audio_preprocessing import AudioPreprocessing, lengths_to_mask
from headstart.backbones.base import Backbone, Batch, Preprocessing
from headstart.backbones.families.base import DictBatchGraph, Family, OnnxGraph, assemble
from headstart.backbones.families.sfx_cnn import audio_preprocessing_record
from headstart.backbones.registry import register_family
from headstart.backbones.sources import REMOTE_CODE_KEYS, hub_cached_file, hub_reachable, refuse_remote_code
from headstart.core.errors import ModelNotFoundError, RemoteCodeError, RunError, brief

AUDIO_TYPES = frozenset({"wav2vec2", "hubert", "wavlm", "data2vec-audio", "audio-spectrogram-transformer",
                         "whisper"})
WHISPER_HOP = 160  # samples per Whisper log-mel frame
AUDIO_GROUPS = dict(
    stem=r"^model\.(?:feature_extractor|feature_projection|masked_spec_embed|encoder\.pos_conv_embed|embeddings|"
         r"conv1|conv2|embed_positions)\.?",
    blocks=r"^model\.(?:encoder\.)?(?:layer|layers)\.(\d+)\.",
)
MODEL_INPUTS = ("input_values", "input_features", "attention_mask")


class PooledAudioEncoder(nn.Module):
    """A transformers audio encoder whose frame states are averaged over the frames of real sound."""

    def __init__(self, model: nn.Module, model_type: str):
        super().__init__()
        self.model, self.model_type = model, model_type

    def forward(self, batch: dict) -> torch.Tensor:
        hidden = self.model(**{k: batch[k] for k in MODEL_INPUTS if k in batch}).last_hidden_state
        if self.model_type == "audio-spectrogram-transformer":
            return hidden.mean(1)  # patches span time and frequency: all of them
        if "input_values" in batch:
            total = batch["input_values"].shape[1]
        else:
            total = batch["input_features"].shape[-1] * WHISPER_HOP
        mask = lengths_to_mask(batch["lengths"], hidden.shape[1], total).unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


@register_family
class HFAudioEncoder(Family):
    """Hugging Face audio encoders through ``AutoFeatureExtractor`` and ``AutoModel``, mean-pooled over time."""

    name: ClassVar[str] = "hf-audio"
    modality: ClassVar[str] = "audio"

    def build(self, arch: dict) -> nn.Module:
        from transformers import AutoConfig, AutoModel

        if any(key in arch["config"] for key in REMOTE_CODE_KEYS):
            raise RemoteCodeError("The architecture record asks to run Python code shipped with the model "
                                  "('auto_map'); headstart never runs code from model folders.")
        config = AutoConfig.for_model(**arch["config"])
        return _pooled(AutoModel.from_config(config, trust_remote_code=False), config.model_type)

    def surface(self, arch: dict, module: nn.Module) -> tuple[int, dict]:
        config = arch["config"]
        return config.get("d_model") or config["hidden_size"], AUDIO_GROUPS

    def preprocessing(self, module: nn.Module, tokenizer: Any, max_length: int | None) -> Preprocessing:
        extractor = tokenizer  # the loader passes the feature extractor where text models pass a tokenizer
        return AudioPreprocessing(int(extractor.sampling_rate), 1.0, extractor)

    def load_preprocessing(self, record: dict, folder: Path) -> Preprocessing:
        return audio_preprocessing_record(record, folder, _extractor(str(folder), True, RunError))

    def find(self, name: str, pretrained: bool, tried: list[str], max_length: int | None) -> Backbone | None:
        """A Hugging Face audio model id, from the local hub cache or (online) the hub; None for other ids."""
        try:
            cached = hub_cached_file(name, "config.json")
        except ValueError:  # not a valid hub id (huggingface_hub's HFValidationError)
            return None
        if cached is None and not hub_reachable():
            return None
        local_only = cached is not None
        try:
            config = _config(name, local_only)
        except (OSError, ValueError):
            return None
        if config.model_type not in AUDIO_TYPES:
            return None
        if cached is not None:
            refuse_remote_code(cached.parent)
        label = "the local Hugging Face cache" if local_only else "the Hugging Face Hub"
        return _load(name, pretrained, local_only, f"Hugging Face {name} ({label})")

    def from_local(self, path: Path, config: dict, pretrained: bool, max_length: int | None) -> Backbone | None:
        """A local transformers folder of an audio model (config.json ``model_type`` of AUDIO_TYPES)."""
        if config.get("model_type") not in AUDIO_TYPES:
            return None
        return _load(str(path), pretrained, True, f"local directory {path}")

    def weights_module(self, module: nn.Module) -> nn.Module:
        return module.model

    def lora_targets(self, backbone: Backbone, module: nn.Module) -> tuple[list[str], str]:
        blocks = re.compile(AUDIO_GROUPS["blocks"])
        return [n for n, m in module.named_modules()
                if n and isinstance(m, nn.Linear) and blocks.match(n + ".")], "hf-audio-linear"

    def onnx_graph(self, model: nn.Module, batch: Batch) -> OnnxGraph:
        names = list(batch)
        return OnnxGraph(DictBatchGraph(model, names), names, tuple(batch[n][:2] for n in names),
                         {n: {0: "batch"} for n in names})


def _pooled(model: nn.Module, model_type: str) -> PooledAudioEncoder:
    """The encoder to pool: Whisper's encoder alone (its decoder is not needed for features)."""
    if model_type == "whisper":
        model = model.get_encoder()
    return PooledAudioEncoder(model, model_type)


def _config(path_or_id: str, local_only: bool):
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return AutoConfig.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False)


def _extractor(path_or_id: str, local_only: bool, error: type = RunError):
    from transformers import AutoFeatureExtractor

    try:
        return AutoFeatureExtractor.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False)
    except Exception as exc:  # transformers raises OSError, ValueError or bare Exception
        raise error(f"{path_or_id} holds no usable audio feature extractor (preprocessor_config.json: "
                    f"{brief(exc)}). Copy the model folder whole.") from None


def _load(path_or_id: str, pretrained: bool, local_only: bool, source: str) -> Backbone:
    """A pooled audio encoder with its feature extractor, assembled as a Backbone."""
    from transformers import AutoModel

    config = _config(path_or_id, local_only)
    if pretrained:
        model = AutoModel.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False)
    else:
        model = AutoModel.from_config(config, trust_remote_code=False)
        source = "random initialisation"
    arch_config = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    arch_config.pop("transformers_version", None)
    extractor = _extractor(path_or_id, local_only, ModelNotFoundError)
    arch = {"family": "hf-audio", "config": arch_config}
    return assemble(path_or_id, _pooled(model, config.model_type), arch, source, extractor, None)
