"""Pretrained backbones behind one surface: pooled features, layer groups, preprocessing.

Each kind of model is a family (``families/``) registered with ``register_family``; short model names
are registered with ``register_backbone`` (see README, "Adding a model family").
"""

from headstart.backbones.base import Backbone, batch_to
from headstart.backbones.catalog import available_models, load_backbone
from headstart.backbones.families import Family, ImageFamily
from headstart.backbones.preprocessing import ImagePreprocessing, TextPreprocessing
from headstart.backbones.registry import BACKBONES, build_module, family_of, register_backbone, register_family

__all__ = [
    "BACKBONES",
    "Backbone",
    "Family",
    "ImageFamily",
    "ImagePreprocessing",
    "TextPreprocessing",
    "available_models",
    "batch_to",
    "build_module",
    "family_of",
    "load_backbone",
    "register_backbone",
    "register_family",
]
