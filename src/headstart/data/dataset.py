"""The records every loader returns: Dataset, Skipped and DataSplits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from headstart.core.errors import DataError

@dataclass(frozen=True)
class Modality:
    """What the code outside the readers and the model families may ask of a kind of item, instead of comparing
    its name: what it is called, and whether an item is a text held in memory or a file that a path names."""

    name: str  # image | text | audio: Dataset.modality and Backbone.modality
    article: str  # "an image": "is an audio model"
    plural: str  # "images": "takes sounds"
    texts: bool  # items are strings in memory (a text), not files a path names (and previews, rows, serving follow)


MODALITY = {m.name: m for m in (Modality("image", "an image", "images", texts=False),
                                 Modality("text", "a text", "texts", texts=True),
                                 Modality("audio", "an audio", "sounds", texts=False))}
MODALITIES = tuple(MODALITY)


def modality(name: str) -> Modality:
    """The modality called ``name`` (one of ``MODALITIES``)."""
    return MODALITY[name]


def modality_article(modality: str) -> str:
    """The modality with its article, for "is an audio model": ``an image``, ``a text``, ``an audio``."""
    return MODALITY[modality].article if modality in MODALITY else f"a {modality}"


def modality_plural(modality: str) -> str:
    """What items of the modality are called, for "takes sounds": ``images``, ``texts``, ``sounds``."""
    return MODALITY[modality].plural if modality in MODALITY else f"{modality} items"


@dataclass(frozen=True)
class Skipped:
    """One input item that was left out, and why: a bad item with skip_bad set, or (always) an empty class
    folder or a file of another kind among the inputs of a folder."""

    origin: str
    reason: str


@dataclass(frozen=True)
class Dataset:
    """Items (image paths or PIL images, or texts), their labels and where each came from.

    A label is a class name, a sorted tuple of names (multi-label) or a float (regression).

    ``skipped`` lists what ``load_items`` left out while building it (see Skipped).
    """

    items: tuple
    labels: tuple[str, ...] | None
    modality: str
    origins: tuple[str, ...]
    skipped: tuple[Skipped, ...] = field(default=(), compare=False, repr=False)
    _hashes: tuple[str, ...] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "origins", tuple(self.origins))
        object.__setattr__(self, "skipped", tuple(self.skipped))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
        if self.modality not in MODALITIES:
            raise DataError(f"Dataset modality {self.modality!r} is not one of {MODALITIES}.")
        sizes = {len(self.items), len(self.origins)}
        if self.labels is not None:
            sizes.add(len(self.labels))
        if len(sizes) != 1:
            raise DataError(
                f"Dataset has {len(self.items)} items, {len(self.origins)} origins and "
                f"{'no' if self.labels is None else len(self.labels)} labels; they must match."
            )

    def __len__(self) -> int:
        """Number of items."""
        return len(self.items)

    @property
    def classes(self) -> list[str]:
        """Sorted unique class names: of the labels, or of the label sets (multi-label); empty for unlabelled
        data and for numeric targets (regression)."""
        if not self.labels or isinstance(self.labels[0], float):
            return []
        if isinstance(self.labels[0], tuple):
            return sorted({name for names in self.labels for name in names})
        return sorted(set(self.labels))

    def subset(self, indices: Sequence[int]) -> Dataset:
        """A new Dataset with the items at ``indices``, in that order."""
        picked = [int(i) for i in indices]
        labels = None if self.labels is None else [self.labels[i] for i in picked]
        result = Dataset(
            items=[self.items[i] for i in picked],
            labels=labels,
            modality=self.modality,
            origins=[self.origins[i] for i in picked],
        )
        if self._hashes is not None:
            object.__setattr__(result, "_hashes", tuple(self._hashes[i] for i in picked))
        return result

    def item_hashes(self) -> list[str]:
        """One SHA-256 hex digest per item, of its content only (labels excluded); memoised."""
        if self._hashes is None:
            hashes = tuple(
                _content_hash(item, origin, self.modality)
                for item, origin in zip(self.items, self.origins)
            )
            object.__setattr__(self, "_hashes", hashes)
        return list(self._hashes)

    def fingerprint(self) -> str:
        """SHA-256 hex digest over the item hashes, in order."""
        return hashlib.sha256("\n".join(self.item_hashes()).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class DataSplits:
    """Train/val(/test) datasets, the training classes and a JSON record of how they were made."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    classes: list[str]  # the training classes (multi-label: label names; regression: none)
    split: dict
    skipped: list[Skipped]
    task: str = "single-label"  # see headstart.data.targets


def _content_hash(item: Any, origin: str, modality: str) -> str:
    """Hex digest of file bytes (path), mode+size+pixels (PIL image) or UTF-8 text."""
    digest = hashlib.sha256()
    if isinstance(item, Image.Image):
        digest.update(f"pil:{item.mode}:{item.size[0]}x{item.size[1]}:".encode())
        digest.update(item.tobytes())
    elif modality in ("image", "audio"):
        digest.update(b"file:")
        try:
            with open(item, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise DataError(
                f"{origin}: cannot read {item} to hash it ({exc.strerror or exc}). "
                "Was it moved or deleted after loading? Restore it or load the data again."
            ) from exc
    else:
        digest.update(b"text:")
        digest.update(str(item).encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()
