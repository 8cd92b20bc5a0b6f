"""Low-rank adapters kept beside a merged model, so a run holds both the weights that predict and the adapter.

The ``lora`` strategy merges its adapters into the backbone (the run's ``model.safetensors`` is a plain
Classifier that loads like any other) and attaches what it trained as ``Classifier.adapter``; the run
directory then also holds

    RUN/model/adapter.safetensors    LoRA A/B matrices (peft's key format, without the adapter name) and the
                                     head (``head.weight``, ``head.bias``); keys are relative to the Classifier
    RUN/model/adapter_config.json    peft's ``LoraConfig`` as a dict; ``target_modules`` are Classifier paths

``Adapter.apply`` puts them back on a Classifier holding the *pretrained* backbone and merges them, which
reproduces the saved model. peft is imported only there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class Adapter:
    """A trained adapter: peft's config (JSON-safe dict) and its tensors (LoRA A/B and the head), on the CPU."""

    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def adapter_params(self) -> int:
        """Elements of the low-rank matrices (the head not counted)."""
        return sum(t.numel() for k, t in self.tensors.items() if not k.startswith("head."))

    def save(self, folder: Path) -> None:
        """Write ``adapter.safetensors`` and ``adapter_config.json`` into ``folder``."""
        folder = Path(folder)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}, str(folder / ADAPTER_WEIGHTS),
                  metadata={"format": "pt", "method": "lora"})
        (folder / ADAPTER_CONFIG).write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "Adapter | None":
        """The adapter saved in ``folder``, or None when there is none."""
        folder = Path(folder)
        if not (folder / ADAPTER_WEIGHTS).exists() or not (folder / ADAPTER_CONFIG).exists():
            return None
        return cls(json.loads((folder / ADAPTER_CONFIG).read_text()), load_file(str(folder / ADAPTER_WEIGHTS)))

    def apply(self, model: nn.Module) -> nn.Module:
        """Inject the adapter into ``model`` (a Classifier around the pretrained backbone), load its weights
        and the head, merge, and return the plain merged model (changed in place)."""
        from peft import LoraConfig, LoraModel, set_peft_model_state_dict

        lora = {k: v for k, v in self.tensors.items() if not k.startswith("head.")}
        head = {k.removeprefix("head."): v for k, v in self.tensors.items() if k.startswith("head.")}
        tuner = LoraModel(model, LoraConfig.from_peft_type(**self.config), "default")
        result = set_peft_model_state_dict(model, lora, adapter_name="default")
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            raise ValueError(f"Adapter does not fit this model: missing {missing[:5]}, "
                             f"unexpected {list(result.unexpected_keys)[:5]}.")
        merged = tuner.merge_and_unload(safe_merge=True)
        if head:
            merged.head.load_state_dict(head)
        return merged


def config_to_json(config: Any) -> dict[str, Any]:
    """peft's ``LoraConfig.to_dict()`` made JSON-safe (sets become sorted lists, enums their values)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (set, frozenset)):
            return sorted(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if hasattr(value, "value") and isinstance(value.value, str):  # enums such as PeftType
            return value.value
        return value

    return json.loads(json.dumps(plain(config.to_dict())))
