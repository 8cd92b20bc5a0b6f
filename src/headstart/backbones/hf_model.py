"""A transformers model class for exported headstart text models: mean-pooled encoder + linear head.

headstart averages an encoder's token states over the attention mask and applies its own linear head.
No transformers ``*ForSequenceClassification`` for BERT-family encoders computes that: BERT's uses the
[CLS] token through its pooler (dense + tanh), ModernBERT/UltraBERT/EuroBERT's mean pooling is
followed by a dense + activation/LayerNorm head and wraps other encoders. So ``headstart export --format
hf`` writes a directory of model type ``headstart_text`` whose class is defined here, in the installed
package (never as remote code: no ``trust_remote_code``). Importing this module registers it with
``AutoConfig`` and ``AutoModelForSequenceClassification``::

    import headstart.backbones.hf_model  # noqa: F401  (registers the architecture)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    model = AutoModelForSequenceClassification.from_pretrained("exported/")

Without headstart installed, transformers refuses the directory (unknown model type) instead of
silently building a [CLS]-pooled model that would predict something else. ``config.problem_type`` names the
task (single_label_classification, multi_label_classification, regression): transformers' text-classification
pipeline applies softmax, sigmoid or nothing by it, and the loss follows it.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from headstart.backbones.bert_like import has_pooler

MODEL_TYPE = "headstart_text"


class HeadstartTextConfig(PreTrainedConfig):
    """``encoder``: the wrapped encoder's config as a dict (with its ``model_type``); ``max_length``: truncation."""

    model_type = MODEL_TYPE

    encoder: dict | None = None
    max_length: int = 128
    initializer_range: float = 0.02

    def encoder_config(self):
        """The encoder's own transformers config."""
        fields = dict(self.encoder or {})
        return AutoConfig.for_model(fields.pop("model_type"), **fields)


class HeadstartTextClassifier(PreTrainedModel):
    """``logits = classifier(masked_mean(encoder(...).last_hidden_state))``, exactly as headstart predicts."""

    config_class = HeadstartTextConfig
    base_model_prefix = "encoder"
    _supports_sdpa = True

    def __init__(self, config: HeadstartTextConfig):
        super().__init__(config)
        encoder_config = config.encoder_config()
        kwargs = {"add_pooling_layer": False} if has_pooler(encoder_config) else {}
        self.encoder = AutoModel.from_config(encoder_config, trust_remote_code=False, **kwargs)
        self.classifier = nn.Linear(encoder_config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.classifier:
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **kwargs) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        hidden = self.encoder(**batch).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.classifier(pooled)
        loss = None if labels is None else self._loss(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss headstart trained with, by ``config.problem_type``: BCE on 0/1 rows (multi-label), squared
        error on values in the target's units (regression), else cross-entropy on class indices."""
        if self.config.problem_type == "multi_label_classification":
            return nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
        if self.config.problem_type == "regression":
            return nn.functional.mse_loss(logits.view(-1), labels.float().view(-1))
        return nn.functional.cross_entropy(logits, labels.view(-1))


AutoConfig.register(MODEL_TYPE, HeadstartTextConfig, exist_ok=True)
AutoModelForSequenceClassification.register(HeadstartTextConfig, HeadstartTextClassifier, exist_ok=True)
