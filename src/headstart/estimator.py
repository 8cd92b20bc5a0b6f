"""scikit-learn estimators over headstart: ``headstart.Classifier`` fits, predicts and embeds texts or images.

    from sklearn.model_selection import GridSearchCV, cross_val_score
    clf = headstart.Classifier(model="minilm-l6", strategy="linear")
    cross_val_score(clf, texts, labels, cv=5)
    GridSearchCV(headstart.Classifier(model="mobilenetv2", strategy="partial", epochs=5),
                 {"unfreeze": [1, 2, 3]}).fit(image_paths, labels)

``X`` is one item per sample, never a feature matrix: a list (or pandas Series, numpy array of strings,
datasets Column) of texts, image paths, PIL images or numpy images; a numpy stack ``N x H x W`` or
``N x H x W x C``; or a one-column DataFrame (or one with the ``text_col``/``image_col`` option's column).
Numpy images may be uint8, other integers in 0-255, or floats: a float array whose values all lie in
[0, 1] is scaled by 255, any other (up to 255) is taken as 0-255; a stack is scaled as a whole.

Every FitConfig option (``epochs``, ``unfreeze``, ``lr``, ``image_size``, ``seed``, ``cache_dir``...) is an
estimator parameter, so ``get_params``, ``set_params``, ``clone`` and grid searches see it. ``fit`` carves
its own validation split from the data it is given (``val_fraction``) to choose the head's strength and
the best epoch. It writes no run folder unless ``out=`` is given; frozen features go to headstart's
feature cache as in every fit (``cache_dir=`` moves it), so the folds of a cross-validation forward each
item once. A fitted estimator pickles as its run's safetensors weights and JSON records, never as
pickled tensors or modules.

The task-specific parts (labels in, predictions out) live in the subclasses: ``Classifier`` here; a
regressor or multi-label classifier adds its own ``fit`` target handling and ``predict`` on the same base.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from headstart.api import FitResult, fit
from headstart.core.config import FitConfig
from headstart.data import Dataset, load_items
from headstart.data.hf import is_hf_column, is_hf_dataset
from headstart.data.items import normalize_label
from headstart.data.targets import as_number
from headstart.data.sources import as_items
from headstart.training.devices import resolve_device
from headstart.core.errors import DataError
from headstart.features.cache import Extraction, extract
from headstart.runs.folder import load_predictor, save_run



class HeadstartEstimator(BaseEstimator):
    """What every headstart estimator shares: parameters (FitConfig options among them), inputs, embeddings,
    pickling. Subclasses add the task: how targets become labels and how predictions come back."""

    def __init__(self, model: str = "minilm-l6", strategy: str = "linear", *, out: str | os.PathLike | None = None,
                 overwrite: bool = False, progress: bool = False, **options: Any) -> None:
        self.model = model
        self.strategy = strategy
        self.out = out
        self.overwrite = overwrite
        self.progress = progress
        for name, value in options.items():  # checked by fit, as scikit-learn asks: an unknown name fails there
            setattr(self, name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters plus every option given (``epochs=3``...)."""
        params = super().get_params(deep)
        params.update({name: value for name, value in vars(self).items()
                       if not name.startswith("_") and not name.endswith("_")})
        return params

    def set_params(self, **params: Any) -> "HeadstartEstimator":
        """Set parameters, FitConfig options included (``set_params(epochs=3)``); returns the estimator."""
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        from sklearn.utils import TransformerTags  # scikit-learn >= 1.6, the first to call this method

        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags(preserves_dtype=[])  # transform gives float32 embeddings
        tags.input_tags.two_d_array = False  # one text or image per sample, never a feature matrix
        tags.input_tags.three_d_array = True  # N x H x W image stacks (and N x H x W x C)
        tags.input_tags.string = True
        tags.target_tags.required = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"X_types": ["string", "3darray"], "requires_y": True, "poor_score": True}

    def _options(self) -> dict[str, Any]:
        """The fit options among the parameters (FitConfig's and the strategy's own); ``fit`` names any it does
        not take in a ConfigError."""
        named = set(BaseEstimator.get_params(self, deep=False))
        return {k: v for k, v in self.get_params(deep=False).items() if k not in named}

    def _fit_labels(self, X: Any, labels: list, task: str) -> None:
        """Fit headstart's ``task`` on ``X`` with ``labels`` (class names or numbers); kept as ``result_``. The
        estimator's kind decides the task: integer classes never become a regression."""
        items = self._items(X)
        if len(items) != len(labels):
            raise DataError(f"X has {len(items)} samples but y has {len(labels)}; give one target per sample.")
        self.result_ = fit((items, labels), self.model, self.strategy, out=self.out,
                           overwrite=self.overwrite, progress=self.progress, **{**self._options(), "task": task})

    def _dataset(self, X: Any) -> Dataset:
        """X checked and loaded as the fitted model's inputs."""
        check_is_fitted(self, "result_")
        backbone = self.result_.predictor.backbone
        return load_items(self._items(X), modality=backbone.modality)

    def _device(self) -> str:
        return self._options().get("device", "auto")

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings ``[n_samples, feature_dim]`` (float32) from the fitted backbone, fine-tuned or frozen."""
        data = self._dataset(X)
        predictor = self.result_.predictor
        device = resolve_device(self._device())
        return extract(predictor.backbone, data, Extraction(device, "fp32", progress=False))

    def _items(self, X: Any) -> list:
        """One item per sample from the accepted forms of ``X`` (see the module docstring)."""
        if hasattr(X, "tocsr") or hasattr(X, "todense"):
            raise DataError("X is a sparse matrix: sparse input is not supported; headstart takes one text or "
                            "image per sample.")
        if isinstance(X, (str, bytes, os.PathLike)):
            raise DataError(f"X is a single {type(X).__name__}; pass a list of texts or images, one per sample.")
        if is_hf_dataset(X):
            raise DataError("X is a datasets.Dataset; pass one of its columns, e.g. X=ds['text'], y=ds['label'].")
        if isinstance(X, pd.DataFrame):
            return self._frame_items(X)
        if isinstance(X, np.ndarray):
            return _array_items(X)
        if isinstance(X, (list, tuple, pd.Series)) or is_hf_column(X):
            items = as_items(X)
            if not items:
                raise DataError("X is empty; give at least one sample.")
            return items
        raise DataError(f"X is a {type(X).__name__}; pass a list of texts, image paths, PIL images or numpy "
                        "images, a numpy image stack, a pandas Series, or a datasets Column.")

    def _frame_items(self, X: pd.DataFrame) -> list:
        """The items of a DataFrame: its only column, or the ``text_col`` / ``image_col`` option's column."""
        options = self._options()
        wanted = options.get("text_col") or options.get("image_col")
        if wanted is None and X.shape[1] == 1:
            wanted = X.columns[0]
        if wanted is None or wanted not in X.columns:
            raise DataError(f"X is a DataFrame with columns {list(X.columns)}; pass one column (X['text']) or "
                            "set text_col= or image_col= to the column holding the items.")
        return as_items(X[wanted])

    def __getstate__(self) -> dict[str, Any]:
        """The estimator's state with a fitted run as its files' bytes (safetensors and JSON, no pickles)."""
        state = dict(self.__dict__)
        result = state.pop("result_", None)
        if result is not None:
            state["_run_files"] = _pack_run(result)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        files = state.pop("_run_files", None)
        self.__dict__.update(state)
        if files is not None:
            self.result_ = _unpack_run(files)


class Classifier(ClassifierMixin, HeadstartEstimator):
    """A scikit-learn classifier that adapts a pretrained backbone (``model``) with ``strategy``.

    ``y`` holds one label per sample, all strings or all numbers (scikit-learn refuses a mix too); a missing
    label or a list of labels is a DataError naming its position (several labels per sample: ``headstart.fit``
    with ``task="multi-label"``). ``fit(X, y)`` keeps ``classes_`` in the type of ``y`` (integer labels come
    back as integers); ``predict`` returns labels of that type, ``predict_proba`` one column per ``classes_``
    entry, ``transform`` the backbone's embeddings; ``result_`` is the headstart FitResult (metrics, report, save).
    """

    def fit(self, X: Any, y: Any) -> "Classifier":
        """Adapt the backbone to ``X`` (texts or images) labelled ``y``; returns the estimator."""
        y = _class_targets(_targets(y, type(self).__name__, ONE_CLASS))
        classes, codes = np.unique(y, return_inverse=True)
        names = [normalize_label(c) for c in classes]
        if None in names or len(set(names)) != len(names):
            raise DataError(f"The labels {list(classes)[:10]} include an empty label or labels that differ only in "
                            "surrounding spaces; give each class a distinct, non-empty label.")
        self._fit_labels(X, [names[code] for code in codes], "single-label")
        self.classes_ = classes
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``[n_samples, n_classes]``, columns in ``classes_`` order."""
        data = self._dataset(X)
        predictor = self.result_.predictor
        probs = predictor.probabilities(data, self._device())
        column = {normalize_label(c): i for i, c in enumerate(self.classes_)}
        out = np.zeros((len(data), len(self.classes_)), dtype=np.float64)
        out[:, [column[name] for name in predictor.classes]] = probs  # a class skipped in fit keeps 0
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, as an element of ``classes_``."""
        probs = self.predict_proba(X)
        return self.classes_[probs.argmax(axis=1)]


ONE_CLASS = ("headstart.Classifier takes one class per sample; for several labels per sample fit a multi-label "
             "run with headstart.fit((X, label_lists), model=..., task='multi-label')")
ONE_NUMBER = "headstart.Regressor fits one number per sample"


def _targets(y: Any, owner: str, one: str) -> list:
    """``y`` as a list of one target per sample; DataError when ``y`` is missing, not 1-D, or one of its
    targets is missing (None, NaN) or a list, naming the first such position. ``one`` says what a sample takes."""
    if y is None:
        raise DataError(f"{owner} requires y to be passed, but the target y is None; give one target per sample.")
    values = as_items(y) if is_hf_column(y) else y
    shape = np.shape(values) if isinstance(values, (np.ndarray, pd.Series, pd.DataFrame)) else None
    if shape is not None and len(shape) != 1:
        raise DataError(f"y has shape {shape}; give a 1-D array or list. {one}.")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise DataError(f"y is a single {type(values).__name__}; give a list or 1-D array, one target per sample.")
    values = list(values)
    for position, value in enumerate(values):
        if isinstance(value, (list, tuple, set, dict, np.ndarray, pd.Series)):
            raise DataError(f"y[{position}] is a {type(value).__name__} ({str(value)[:60]}), not one target. "
                            f"{one}.")
        if pd.isna(value):
            raise DataError(f"y[{position}] is {_shown(value)}: that sample has no target. Give every sample one, or "
                            "leave the unlabelled samples out of X and y.")
    return values


def _class_targets(values: list) -> np.ndarray:
    """Class labels of one kind (all numbers or all strings, as scikit-learn's ``unique_labels`` asks) as a
    1-D array of that kind; DataError naming the first label of another kind."""
    kinds = [_label_kind(value) for value in values]
    for position, kind in enumerate(kinds):
        if kind is None:
            raise DataError(f"y[{position}] is a {type(values[position]).__name__} ({str(values[position])[:60]}); "
                            "a class label is a string or a number.")
        if kind != kinds[0]:
            raise DataError(f"y mixes numbers and strings: y[0] is {_shown(values[0])} but y[{position}] is "
                            f"{_shown(values[position])}. Give every label as a string, or every label as a number "
                            "(scikit-learn refuses mixed label types too).")
    y = np.asarray(values)
    check_classification_targets(y)
    return y


def _label_kind(value: Any) -> str | None:
    """'string' or 'number' for a class label, None for anything else."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, (numbers.Number, np.bool_)):
        return "number"
    return None


def _numeric_targets(values: list) -> np.ndarray:
    """Regression targets as finite float64; DataError naming the first one that is not a finite number."""
    for position, value in enumerate(values):
        if as_number(value) is None:
            what = "not finite" if isinstance(value, numbers.Number) else "not a number"
            raise DataError(f"y[{position}] is {_shown(value)}, {what}: a Regressor needs a finite number for every "
                            "sample. Fix or drop that sample (use headstart.Classifier for classes).")
    return np.asarray(values, dtype=np.float64)


def _shown(value: Any) -> str:
    """A target as a message shows it: numpy scalars as the Python value they hold."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _array_items(X: np.ndarray) -> list:
    """Items from a numpy array: 1-D strings or objects, or an image stack N x H x W[ x C]."""
    if X.ndim == 1 and X.dtype.kind in "OUS":
        return _nonempty(list(X))
    if X.ndim in (3, 4) and X.dtype.kind in "uif":
        return _nonempty(as_items(X))
    raise DataError(f"X is a {X.ndim}-D {X.dtype} array of shape {X.shape}: headstart takes one text or image per "
                    "sample, not a feature matrix. Pass texts, image paths, or images as an N x H x W or "
                    "N x H x W x C stack (for precomputed features use a scikit-learn model).")


def _nonempty(items: list) -> list:
    if not items:
        raise DataError("X is empty; give at least one sample.")
    return items


def _pack_run(result: FitResult) -> dict[str, bytes]:
    """A FitResult as the files of its run folder (no report), read into memory; the temporary folder is removed."""
    folder = Path(tempfile.mkdtemp(prefix="headstart-estimator-"))
    try:
        config = {"config": result.config.to_dict(), **({"data": result.data} if result.data is not None else {})}
        records = {"config.json": config, "split.json": result.split, "metrics.json": result.metrics}
        save_run(folder / "run", result.predictor, records, result.history, report=False)
        return {str(p.relative_to(folder / "run")): p.read_bytes()
                for p in sorted((folder / "run").rglob("*")) if p.is_file()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _unpack_run(files: dict[str, bytes]) -> FitResult:
    """A FitResult rebuilt from ``_pack_run``'s files (the temporary folder is removed once loaded)."""
    folder = Path(tempfile.mkdtemp(prefix="headstart-estimator-"))
    try:
        for name, payload in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(payload)
        predictor = load_predictor(folder)
        predictor.run_dir = None  # the folder is gone once this returns
        record = json.loads(files["config.json"])
        metrics = json.loads(files["metrics.json"])
        history = [json.loads(line) for line in files["history.jsonl"].decode().splitlines() if line.strip()]
        config = FitConfig.from_dict(record["config"])
        return FitResult(config.strategy, config.model, list(predictor.classes), metrics, history,
                         metrics.get("strategy_info", {}), predictor, config, json.loads(files["split.json"]),
                         data=record.get("data"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Regressor(RegressorMixin, HeadstartEstimator):
    """A scikit-learn regressor that adapts a pretrained backbone (``model``) with ``strategy`` to a numeric target.

    ``predict`` returns values in ``y``'s own units; ``score`` is R² (scikit-learn's); ``transform`` the
    backbone's embeddings; ``result_`` is the headstart FitResult (metrics, report, save).
    """

    def fit(self, X: Any, y: Any) -> "Regressor":
        """Adapt the backbone to ``X`` (texts or images) with numeric targets ``y``; returns the estimator."""
        y = _numeric_targets(_targets(y, "Regressor", ONE_NUMBER))
        self._fit_labels(X, [float(v) for v in y], "regression")
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predicted value of each sample, in ``y``'s units."""
        data = self._dataset(X)
        return self.result_.predictor.outputs(data, self._device())[:, 0]
