"""Model families: one module per kind of model, each registering its Family class and named backbones.

    bert.py             Hugging Face BERT-family text encoders ("hf"): minilm-l6
    torchvision_cnn.py  torchvision CNNs with a ``features`` Sequential ("torchvision"): mobilenetv2
    timm_models.py      timm CNNs and ViTs ("timm"): efficientnet-lite0, any timm name
    hf_audio.py         Hugging Face audio encoders ("hf-audio"): wav2vec2, HuBERT, AST, Whisper's encoder
    sfx_cnn.py          aiSFX's sound-effects CNN ("sfx-cnn"): aisfx-cnn

Importing this package registers them, in this order; names are looked up in the reverse order (the
family registered last first), so timm names are tried before Hugging Face ids, and a family a user
registers is tried before the built-in ones.
"""

from headstart.backbones.families import bert, torchvision_cnn, timm_models  # noqa: F401  (registers them)
from headstart.backbones.families import hf_audio, sfx_cnn  # noqa: F401  (audio; tried before the others)
from headstart.backbones.families.base import BoundaryCut, Family, ImageFamily, NativeExport, OnnxGraph, assemble

__all__ = ["BoundaryCut", "Family", "ImageFamily", "NativeExport", "OnnxGraph", "assemble"]
