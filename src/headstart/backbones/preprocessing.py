"""Preprocessing that belongs to a backbone's weights: image transforms, tokenizer and collation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torchvision.transforms import v2 as T
from torchvision.transforms.functional import InterpolationMode

from headstart.data import load_image

_INTERPOLATION = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize, crop and normalise as the weights were trained; light augmentation for fine-tuning."""

    size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    def transform(self, augment: bool = False, hflip: bool = True) -> T.Compose:
        """PIL image -> normalised float tensor; ``augment`` adds a random resized crop and flip."""
        interp = _INTERPOLATION[self.interpolation]
        if augment:
            steps = [T.RandomResizedCrop(self.size, scale=(0.7, 1.0), interpolation=interp, antialias=True)]
            if hflip:
                steps.append(T.RandomHorizontalFlip())
        else:
            resize = int(round(self.size / self.crop_pct))
            steps = [T.Resize(resize, interpolation=interp, antialias=True), T.CenterCrop(self.size)]
        tail = [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(self.mean, self.std)]
        return T.Compose(steps + tail)

    def collate(self, augment: bool = False, hflip: bool = True):
        """A DataLoader collate_fn over ``(item, label)`` pairs."""
        return _ImageCollate(self.transform(augment, hflip))

    def with_size(self, size: int) -> "ImagePreprocessing":
        """The same preprocessing at another input size."""
        return ImagePreprocessing(size, self.mean, self.std, self.interpolation, self.crop_pct)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings."""
        return {"kind": "image", **asdict(self)}


@dataclass(frozen=True)
class TextPreprocessing:
    """Tokenise with the backbone's tokenizer, truncate to ``max_length``, pad per batch."""

    max_length: int = 128
    tokenizer: Any = field(default=None, compare=False, repr=False)

    def collate(self, augment: bool = False, hflip: bool = True):
        """A DataLoader collate_fn over ``(text, label)`` pairs (dynamic padding)."""
        return _TextCollate(self.tokenizer, self.max_length)

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts after truncation, used to bucket texts of similar length."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings."""
        return {"kind": "text", "max_length": self.max_length}


class _ImageCollate:
    """Picklable collate for DataLoader workers: decode, transform, stack."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, pairs: list) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([self.transform(load_image(item)) for item, _ in pairs])
        return images, torch.tensor([y for _, y in pairs], dtype=torch.long)


class _TextCollate:
    """Picklable collate for DataLoader workers: tokenize a batch, padded to its longest text."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, pairs: list) -> tuple[dict, torch.Tensor]:
        enc = self.tokenizer(
            [t for t, _ in pairs], truncation=True, max_length=self.max_length,
            padding=True, return_tensors="pt",
        )
        batch = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        return batch, torch.tensor([y for _, y in pairs], dtype=torch.long)
