"""Which transformers encoders are BERT-like: shared by their family (backbones.families.bert) and by the
exported text classifier (headstart.backbones.hf_model), which must not import the family."""

from __future__ import annotations

BERT_LIKE = frozenset({"bert", "roberta", "xlm-roberta", "electra", "camembert", "ernie"})


def has_pooler(config) -> bool:
    """True for BERT-like configs whose models accept ``add_pooling_layer``."""
    return config.model_type in BERT_LIKE
