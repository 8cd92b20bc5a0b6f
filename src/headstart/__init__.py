"""headstart: give a small labelled data set the head start of a pretrained model.

    import headstart
    result = headstart.fit("reviews.csv", model="minilm-l6", strategy="linear", out="runs/reviews")
    result.metrics["test"]["accuracy"], result.predict(["great phone, terrible battery"])

    clf = headstart.Classifier(model="minilm-l6", strategy="linear")   # a scikit-learn estimator
    sklearn.model_selection.cross_val_score(clf, texts, labels, cv=5)
    reg = headstart.Regressor(model="minilm-l6")                        # numbers: predict in their units
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headstart.api import FitResult, advise, audit, compare, evaluate, export, fit, load_run, models, predict, suggest
    from headstart.backbones import Backbone, Family, ImageFamily, load_backbone, register_backbone, register_family
    from headstart.workflows.check import check_strategy
    from headstart.core.config import FitConfig
    from headstart.data import load_data, load_items
    from headstart.core.errors import ConfigError, DataError, HeadstartError, ModelNotFoundError, RunError
    from headstart.estimator import Classifier, Regressor
    from headstart.strategies import STRATEGIES, register_strategy
    from headstart.training.engine import Callback

__version__ = "0.1.0"

# The public names load on first use (PEP 562): the CLI imports this package, and `headstart --help` must not
# wait for torch (start-up time; no import cycle is involved).
_HOMES = {
    **dict.fromkeys(("FitResult", "advise", "audit", "compare", "evaluate", "export", "fit", "load_run", "models",
                     "predict", "suggest"), "headstart.api"),
    **dict.fromkeys(("Backbone", "Family", "ImageFamily", "load_backbone", "register_backbone", "register_family"),
                    "headstart.backbones"),
    "check_strategy": "headstart.workflows.check",
    "FitConfig": "headstart.core.config",
    "load_data": "headstart.data", "load_items": "headstart.data",
    "Classifier": "headstart.estimator", "Regressor": "headstart.estimator",
    **dict.fromkeys(("ConfigError", "DataError", "HeadstartError", "ModelNotFoundError", "RunError"),
                    "headstart.core.errors"),
    "STRATEGIES": "headstart.strategies", "register_strategy": "headstart.strategies",
    "Callback": "headstart.training.engine",
}

__all__ = [
    "STRATEGIES",
    "Backbone",
    "Callback",
    "Classifier",
    "ConfigError",
    "DataError",
    "FitConfig",
    "Family",
    "FitResult",
    "HeadstartError",
    "ImageFamily",
    "ModelNotFoundError",
    "Regressor",
    "RunError",
    "advise",
    "audit",
    "check_strategy",
    "compare",
    "evaluate",
    "export",
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
    "suggest",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(_HOMES[name]), name)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
