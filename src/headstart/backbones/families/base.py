"""What a model family knows, as one class: the contract, its image defaults, and the helpers families share.

A family builds its module from an architecture record, gives its feature size, layer groups and
preprocessing, finds models by name or local folder, chooses LoRA's default layers, cuts the module at a
freeze boundary for partial fine-tuning, and exports itself. Callers ask ``backbone.family`` instead of
branching on the kind of model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, Sequence

import torch
from torch import nn

from headstart.backbones.base import Backbone, Batch, Preprocessing
from headstart.backbones.preprocessing import ImagePreprocessing
from headstart.backbones.registry import family_of
from headstart.backbones.sources import state_identity
from headstart.core.errors import ConfigError, ExportError, RunError, brief

CNN_KERNELS = {(1, 1), (3, 3)}
SQUEEZE_EXCITE = re.compile(r"squeezeexcit|^(?:effective)?semodule$", re.IGNORECASE)


class Fitted(Protocol):
    """What a family's export reads of a fitted model (a loaded run's ``Predictor`` is one): the module, whose
    ``backbone.`` and ``head.`` parameters it writes, the backbone, the head's outputs by name and the task."""

    model: nn.Module
    backbone: Backbone
    classes: list[str]
    task: Any  # headstart.tasks.Task: its ``name`` is what an exported config records


@dataclass
class BoundaryCut:
    """Where a module can be cut for partial fine-tuning: ``blocks[i:]`` run after the frozen part.

    ``prefix`` is the parameter-name prefix of ``blocks`` in the module (``features.``); ``top(blocks)``
    builds the trainable top (sharing those blocks) that maps the boundary activation to pooled features;
    ``tokens`` says the activation is ``[B, tokens, hidden]`` with an attention mask (texts), not a map.
    """

    blocks: Sequence[nn.Module]
    prefix: str
    top: Callable[[list[nn.Module]], nn.Module]
    tokens: bool = False


@dataclass
class OnnxGraph:
    """What torch.onnx.export takes for a classifier: the module, input names, example inputs, dynamic axes."""

    module: nn.Module
    names: list[str]
    example: tuple
    axes: dict[str, dict[int, str]]


class DictBatchGraph(nn.Module):
    """Positional tensors in (what ONNX needs), the classifier's dict batch (``names`` as keys) inside."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors)))


@dataclass
class NativeExport:
    """A classifier written in its own library's format: ``logits(batch)`` runs the reloaded copy."""

    logits: Callable[[Batch], torch.Tensor]
    what: str  # for messages: "timm/torchvision"
    checked_with: str
    notes: list[str]


class Family:
    """One kind of model. Subclass it (or ImageFamily), set ``name`` and ``modality``, and register it with
    ``headstart.register_family``; ``name`` is what architecture records of the family hold under ``family``.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    channels_last: ClassVar[bool] = False  # image batches in channels-last layout (faster convolutions)
    native_format: ClassVar[str | None] = None  # the export format besides onnx: "hf", "timm" or None
    # Fine-tuning defaults the family declares, used where the fit leaves them open (--bn auto; neither
    # --augment nor --no-augment): BatchNorm statistics "train" or "frozen" (None: engine.bn_policy), augmentation.
    bn_auto: ClassVar[str | None] = None
    augment: ClassVar[bool] = True

    def build(self, arch: dict) -> nn.Module:
        """A random-initialised module (pooled features out) for an architecture record of this family."""
        raise NotImplementedError

    def surface(self, arch: dict, module: nn.Module) -> tuple[int, dict]:
        """``(feature_dim, group_matcher)``: the feature size and timm-style layer-group regexes of ``module``."""
        raise NotImplementedError

    def preprocessing(self, module: nn.Module, tokenizer: Any, max_length: int | None) -> Preprocessing:
        """The preprocessing the weights expect."""
        raise NotImplementedError

    def load_preprocessing(self, record: dict, folder: Path) -> Preprocessing:
        """The preprocessing a run saved (``record``: ``preprocessing.to_dict()``; ``folder``: the model folder)."""
        raise NotImplementedError

    def find(self, name: str, pretrained: bool, tried: list[str], max_length: int | None) -> Backbone | None:
        """A backbone this family loads by ``name`` (None, with the reason appended to ``tried``, if none)."""
        return None

    def from_local(self, path: Path, config: dict, pretrained: bool, max_length: int | None) -> Backbone | None:
        """A backbone from a local model folder whose config.json holds ``config``, if it is of this family."""
        return None

    def weights_module(self, module: nn.Module) -> nn.Module:
        """The module a ``--weights`` checkpoint's names refer to (the library's own model inside a wrapper)."""
        return module

    def lora_targets(self, backbone: Backbone, module: nn.Module) -> tuple[list[str], str]:
        """``(module names LoRA adapts by default, the rule's name)``; names relative to ``module``."""
        return [], "none"

    def boundary(self, module: nn.Module) -> BoundaryCut | None:
        """Where partial fine-tuning can cut ``module`` and cache activations, or None (always recompute)."""
        return None

    def onnx_graph(self, model: nn.Module, batch: Batch) -> OnnxGraph:
        """The classifier ``model`` as torch.onnx.export takes it, traced on ``batch``."""
        raise NotImplementedError

    def write_native(self, predictor: Fitted, folder: Path) -> NativeExport:
        """Write the classifier into ``folder`` in ``native_format`` and load it back."""
        raise ConfigError(f"Backbones of family {self.name!r} export only as onnx.")


class ImageFamily(Family):
    """A family of image CNNs with pooled features: ImageNet preprocessing, LoRA on the later convolutions."""

    modality: ClassVar[str] = "image"
    channels_last: ClassVar[bool] = True

    def preprocessing(self, module: nn.Module, tokenizer: Any, max_length: int | None) -> Preprocessing:
        return ImagePreprocessing()

    def load_preprocessing(self, record: dict, folder: Path) -> Preprocessing:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k != "kind"}
        try:
            return ImagePreprocessing(**fields)
        except (TypeError, ValueError) as exc:
            raise RunError(f"{folder / 'headstart.json'}: its 'preprocessing' was edited or is damaged "
                           f"({brief(exc)}). Restore it from a copy of the run, or fit again.") from None

    def lora_targets(self, backbone: Backbone, module: nn.Module) -> tuple[list[str], str]:
        return cnn_lora_targets(backbone, module)

    def onnx_graph(self, model: nn.Module, batch: Batch) -> OnnxGraph:
        return OnnxGraph(model, ["pixel_values"], (batch[:2],), {"pixel_values": {0: "batch"}})


def assemble(name: str, module: nn.Module, arch: dict, source: str, tokenizer: Any = None,
             max_length: int | None = None) -> Backbone:
    """A Backbone around a module whose weights are loaded, with its family's surface and preprocessing."""
    family = family_of(arch)
    feature_dim, matcher = family.surface(arch, module)
    prep = family.preprocessing(module, tokenizer, max_length)
    module.eval()
    return Backbone(name, family.modality, module, feature_dim, matcher, prep, arch, source, state_identity(module))


def cnn_lora_targets(backbone: Backbone, module: nn.Module) -> tuple[list[str], str]:
    """``nn.Conv2d`` layers with 1x1 or 3x3 kernels and ``groups == 1`` in the later half of the layer groups,
    outside squeeze-excitation modules. Depthwise/grouped convolutions are skipped: peft can adapt them only
    when rank is divisible by the groups and cannot merge them."""
    named = [(n, m) for n, m in module.named_modules() if n]
    groups = backbone.layer_groups()
    later = {p.rpartition(".")[0] for group in groups[len(groups) // 2:] for p in group}
    excited = [n for n, m in named if SQUEEZE_EXCITE.search(type(m).__name__)]
    return [n for n, m in named
            if type(m) is nn.Conv2d and m.groups == 1 and tuple(m.kernel_size) in CNN_KERNELS and n in later
            and not any(n.startswith(e + ".") for e in excited)], "cnn-later-conv"


def load_strict(model: nn.Module, state: dict, what: str) -> None:
    """``model.load_state_dict(state, strict=True)``, as an ExportError naming ``what`` when it does not fit."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"The run's weights do not map onto {what}: {exc}") from exc


def backbone_state(predictor: Fitted) -> dict[str, torch.Tensor]:
    """The run's backbone weights under the backbone module's own names (``backbone.`` removed)."""
    return {k[len("backbone."):]: v for k, v in predictor.model.state_dict().items() if k.startswith("backbone.")}
