"""headstart: give a small labelled data set the head start of a pretrained model.

    import headstart
    result = headstart.fit("reviews.csv", model="minilm-l6", strategy="linear", out="runs/reviews")
    result.metrics["test"]["accuracy"], result.predict(["great phone, terrible battery"])
"""

from headstart.api import FitResult, evaluate, fit, load_run, models, predict
from headstart.backbones import Backbone, Family, ImageFamily, load_backbone, register_backbone, register_family
from headstart.config import FitConfig
from headstart.data import load_data, load_items
from headstart.errors import ConfigError, DataError, HeadstartError, ModelNotFoundError, RunError
from headstart.strategies import STRATEGIES, register_strategy

__version__ = "0.1.0"

__all__ = [
    "STRATEGIES",
    "Backbone",
    "ConfigError",
    "DataError",
    "FitConfig",
    "Family",
    "FitResult",
    "HeadstartError",
    "ImageFamily",
    "ModelNotFoundError",
    "RunError",
    "evaluate",
    "fit",
    "load_backbone",
    "load_data",
    "load_items",
    "load_run",
    "models",
    "predict",
    "register_backbone",
    "register_family",
    "register_strategy",
]
