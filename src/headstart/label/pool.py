"""The pool: unlabelled items read with headstart's own readers, and which of them a run has already labelled."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headstart.backbones import Backbone, ImagePreprocessing
from headstart.backbones.audio_preprocessing import AudioPreprocessing
from headstart.core.config import FitConfig
from headstart.data import DataSplits, Dataset, load_data, load_items
from headstart.data.audio import choose_clip_seconds
from headstart.data.dataset import modality
from headstart.data.load import HASH_CHARS
from headstart.data.resolution import choose_image_size, native_size
from headstart.data.shots import keep_shots
from headstart.core.errors import DataError, HeadstartError
from headstart.runs.folder import read_json


@dataclass(frozen=True)
class Known:
    """The items a run was fitted or validated on: content hashes (split.json's) and file paths."""

    hashes: frozenset[str]
    paths: frozenset[str]
    count: int

    def holds(self, data: Dataset, index: int) -> bool:
        """Whether item ``index`` of ``data`` is one of them, by content or by path."""
        item = data.items[index]
        if isinstance(item, (str, os.PathLike)) and not modality(data.modality).texts and _real(item) in self.paths:
            return True
        return data.item_hashes()[index][:HASH_CHARS] in self.hashes


def read_pool(pool: Any, modality: str, text_col: str | None = None, image_col: str | None = None,
              columns: dict[str, str] | None = None, skip_bad: bool = False) -> Dataset:
    """The pool's items (a folder of files, a table of texts or paths, a list, a Dataset) for a ``modality``
    model; with ``skip_bad`` unreadable items are left out (``Dataset.skipped``) rather than an error."""
    if isinstance(pool, Dataset) and pool.modality != modality:
        raise DataError(f"The pool holds {pool.modality} items but the model takes {modality} inputs. Pass a pool "
                        f"of {modality} items, or choose a {pool.modality} model.")
    if isinstance(pool, Dataset):
        return pool
    if isinstance(pool, (str, os.PathLike)) and Path(pool).is_dir() and not any(Path(pool).iterdir()):
        raise DataError(f"The pool {pool} is an empty folder. Put the unlabelled files (images or sounds, no "
                        "class folders needed) in it, or pass a table of texts or paths.")
    return load_items(pool, text_col=text_col, image_col=image_col, modality=modality, run_columns=columns,
                      skip_bad=skip_bad)


def fit_preprocessing(backbone: Backbone, data: Dataset, image_size: int | None) -> Backbone:
    """``backbone`` with the image size (from the pool's images, unless given) or clip length (from its sounds)
    that ``fit`` would choose for this data (``read_pool`` made sure it is of the backbone's modality)."""
    if isinstance(backbone.preprocessing, ImagePreprocessing) and image_size is None:
        size = choose_image_size(native_size(data), backbone.preprocessing.size)
        backbone.preprocessing = backbone.preprocessing.with_size(size)
    if isinstance(backbone.preprocessing, AudioPreprocessing):
        backbone.preprocessing = backbone.preprocessing.with_clip(choose_clip_seconds(list(data.items)))
    return backbone


def known_items(run: Path) -> Known:
    """The training and validation items of ``run`` (its split.json), by content hash and by path."""
    split = read_json(run, "split.json")
    hashes = [h for role in ("train", "val") for h in split.get(f"{role}_hashes") or ()]
    origins = [o for role in ("train", "val") for o in split.get(f"{role}_origins") or ()]
    sizes = split.get("sizes") or {}
    count = int(sizes.get("train", 0)) + int(sizes.get("val", 0))
    return Known(frozenset(hashes), frozenset(_real(o) for o in origins), count)


def run_splits(run: Path) -> tuple[DataSplits | None, str]:
    """The run's train/val data read again from where its config.json says it came from (with the run's
    options, so the split is the run's), or None and why it could not be read."""
    record = read_json(run, "config.json")
    try:
        cfg = FitConfig.from_dict(record["config"])
        sources = {role: _source(record.get("data", {}).get(role)) for role in ("train", "val", "test")}
        if sources["train"] is None:
            return None, f"{run}/config.json does not say where its training data is"
        splits = load_data(sources["train"], val=sources["val"], test=sources["test"], text_col=cfg.text_col,
                           label_col=cfg.label_col, image_col=cfg.image_col, val_fraction=cfg.val_fraction,
                           test_fraction=cfg.test_fraction, seed=cfg.seed, skip_bad=cfg.skip_bad, task=cfg.task,
                           label_sep=cfg.label_sep)
    except (HeadstartError, KeyError, TypeError, ValueError, OSError) as exc:
        return None, f"the run's training data could not be read again ({exc})"
    return (keep_shots(splits, cfg.shots, cfg.seed) if cfg.shots else splits), ""


def _source(record: Any) -> str | None:
    """A data source of config.json: its absolute path when that still exists, else the path as given."""
    if not isinstance(record, dict) or "path" not in record:
        return None
    absolute = record.get("absolute")
    return absolute if absolute and os.path.exists(absolute) else record["path"]


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))

