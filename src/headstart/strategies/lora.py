"""LoRA: low-rank adapters on chosen layers of a frozen backbone, trained with a fresh head, then merged.

Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models": a layer's weight ``W`` is used as
``W + (alpha / rank) * B @ A`` with ``A`` (rank x in) and ``B`` (out x rank, starting at zero) trained and
``W`` frozen. The adapters come from peft. After training they are merged into the weights, so the
returned model is a plain Classifier with the backbone's own architecture (it saves, loads and exports
like any other); the adapter itself rides along as ``model.adapter`` and is written next to the model
(see headstart.training.adapters).

Layers adapted by default are the backbone family's choice (``backbone.family.lora_targets``; see
headstart.backbones.families): every ``nn.Linear`` inside the blocks of Hugging Face encoders; ``qkv``,
``proj``, ``fc1`` and ``fc2`` of timm ViTs; 1x1 and 3x3 convolutions with ``groups == 1`` in the later half
of the layer groups of CNNs, outside squeeze-excitation modules. Depthwise/grouped convolutions are never
adapted: peft can adapt them only when rank is divisible by the groups and cannot merge them.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from headstart.training.adapters import Adapter, config_to_json
from headstart.backbones import Backbone
from headstart.data import DataSplits
from headstart.training.engine import freeze, param_groups, train
from headstart.core.errors import ConfigError
from headstart.training.heads import Classifier
from headstart.strategies.base import FitContext, StrategyResult
from headstart.strategies.declared import LORA_HEAD_LR, LORA_LR, LoRAOptions

ADAPTABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)  # what peft's LoRA can wrap and merge
ADAPTER_NAME = "default"


@dataclass(frozen=True)
class LoRA(LoRAOptions):
    """Train rank-``rank`` adapters on the backbone's main layers and a fresh head; merge at the end."""

    name: ClassVar[str] = "lora"

    def __post_init__(self):
        super().__post_init__()
        targets = self.target_modules
        if isinstance(targets, str):
            targets = (targets,)
        if targets is not None:
            targets = tuple(targets)
            object.__setattr__(self, "target_modules", targets)
        problems = []
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            problems.append(f"rank={self.rank!r}: must be a whole number of at least 1 (e.g. 8)")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            problems.append(f"alpha={self.alpha!r}: must be a number above 0 (e.g. 16; the update is scaled "
                            "by alpha / rank)")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            problems.append(f"dropout={self.dropout!r}: must be in [0, 1)")
        if targets is not None and (not targets or not all(isinstance(t, str) and t.strip() for t in targets)):
            problems.append(f"target_modules={targets!r}: must name at least one layer, as non-empty strings "
                            "(full module names or name endings such as 'query')")
        if problems:
            raise ConfigError("Invalid LoRA options: " + "; ".join(problems) + ".")

    def fit(self, backbone: Backbone, splits: DataSplits, ctx: FitContext) -> StrategyResult:
        """Inject adapters into a copy of ``backbone``, train them with a fresh head, merge them."""
        from peft import LoraConfig, LoraModel, get_peft_model_state_dict

        module = copy.deepcopy(backbone.module)
        targets, rule, skipped = self.resolve_targets(backbone, module)
        config = LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout, bias="none",
                            target_modules=[f"backbone.{t}" for t in targets], base_model_name_or_path=backbone.name)
        with torch.random.fork_rng(devices=[]):  # head and A matrices drawn from the fit's seed, not global state
            torch.manual_seed(ctx.settings.seed)
            model = Classifier(module, ctx.task.fresh_head(backbone.feature_dim, ctx.targets["train"]))
            tuner = LoraModel(model, config, ADAPTER_NAME)
        adapter_names = [n for n, _ in model.named_parameters() if ".lora_" in n]
        head_names = [n for n, _ in model.named_parameters() if n.startswith("head.")]
        count = freeze(model, set(adapter_names) | set(head_names))
        lr = self.lr if self.lr is not None else LORA_LR[backbone.modality]
        head_lr = self.head_lr if self.head_lr is not None else LORA_HEAD_LR
        settings = dataclasses.replace(ctx.settings, lr=lr, head_lr=head_lr, lr_decay=1.0)
        optimizer_groups = param_groups(model, [adapter_names], "", settings)
        outcome = train(model, backbone, splits.train, splits.val, ctx.targets, optimizer_groups, settings,
                        ctx.device, ctx.train_precision, ctx.progress)
        model.cpu()
        state = get_peft_model_state_dict(model, adapter_name=ADAPTER_NAME, save_embedding_layers=False)
        tensors = {k: v.detach().clone() for k, v in state.items()}
        tensors.update({f"head.{k}": v.detach().clone() for k, v in model.head.state_dict().items()})
        merged = tuner.merge_and_unload(safe_merge=True)
        adapter = Adapter(config_to_json(config), tensors)
        merged.adapter = adapter  # written as model/adapter.safetensors + adapter_config.json by runs.save_model_dir
        info = {"best_epoch": outcome.best_epoch, "stopped_early": outcome.stopped_early,
                "stopped": "budget" if getattr(outcome, "out_of_time", False) else None,
                "lr": lr, "head_lr": head_lr,
                "adapter": {"method": "lora", "rank": self.rank, "alpha": self.alpha, "dropout": self.dropout,
                            "targets": rule, "target_modules": len(targets), "layers": _patterns(targets),
                            "skipped_grouped_convs": skipped, "adapter_params": adapter.adapter_params,
                            "head_params": sum(p.numel() for p in merged.head.parameters()),
                            "files": ["model/adapter.safetensors", "model/adapter_config.json"]}}
        return StrategyResult(merged, count, outcome.history, info)

    def resolve_targets(self, backbone: Backbone, module: nn.Module) -> tuple[list[str], str, list[str]]:
        """``(module names to adapt, the rule that chose them, grouped convolutions skipped)``; names are
        relative to ``module`` (a copy of ``backbone.module``). ConfigError when nothing can be adapted."""
        named = {n: m for n, m in module.named_modules() if n}
        if self.target_modules is None:
            targets, rule = backbone.family.lora_targets(backbone, module)
            if not targets:
                raise ConfigError(f"headstart has no default LoRA layers for {backbone.name} "
                                  f"(family {backbone.family.name!r}); pass target_modules. "
                                  + _available(named))
            return targets, rule, []
        matched, missing = {}, []
        for target in self.target_modules:
            hits = [n for n in named if n == target or n.endswith("." + target)]
            missing += [] if hits else [target]
            matched.update(dict.fromkeys(hits))
        if missing:
            raise ConfigError(f"Target modules {missing} not found in the backbone of {backbone.name}. "
                              + _available(named))
        grouped = [n for n in matched if _grouped_conv(named[n])]
        unsupported = [n for n in matched if n not in grouped and not isinstance(named[n], ADAPTABLE)]
        if unsupported:
            kinds = sorted({type(named[n]).__name__ for n in unsupported})
            raise ConfigError(f"Target modules {list(self.target_modules)} match layers LoRA cannot adapt "
                              f"({', '.join(kinds)}: {', '.join(unsupported[:5])}). " + _available(named))
        targets = [n for n in matched if n not in grouped]
        if not targets:
            raise ConfigError(f"Target modules {list(self.target_modules)} match only grouped (depthwise) "
                              "convolutions, whose adapters cannot be merged. " + _available(named))
        return targets, "user", grouped


def _grouped_conv(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.groups > 1


def _patterns(names: list[str]) -> list[str]:
    """Module names with block numbers as ``*``, deduplicated: a short account of what was adapted."""
    return list(dict.fromkeys(re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)", "*", n) for n in names))


def _available(named: dict[str, nn.Module]) -> str:
    """The layers LoRA could adapt, for error messages: name endings, then full names."""
    names = [n for n, m in named.items() if isinstance(m, ADAPTABLE) and not _grouped_conv(m)]
    if not names:
        return "This backbone has no layers LoRA can adapt (Linear, Conv, Embedding)."
    endings = list(dict.fromkeys(n.rpartition(".")[2] for n in names if not n.rpartition(".")[2].isdigit()))
    shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
    hint = f"name endings such as {', '.join(endings[:12])}, or " if endings else ""
    return f"Layers LoRA can adapt (give {hint}full names): {shown}."
