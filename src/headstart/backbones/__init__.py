"""Pretrained backbones behind one surface: pooled features, layer groups, preprocessing."""

from headstart.backbones.base import Backbone, batch_to
from headstart.backbones.build import build_module
from headstart.backbones.catalog import BUILTIN, available_models, load_backbone
from headstart.backbones.preprocessing import ImagePreprocessing, TextPreprocessing

__all__ = [
    "BUILTIN",
    "Backbone",
    "ImagePreprocessing",
    "TextPreprocessing",
    "available_models",
    "batch_to",
    "build_module",
    "load_backbone",
]
