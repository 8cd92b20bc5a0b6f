"""Preprocessing that belongs to a backbone's weights: image transforms, tokenizer and collation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as F
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
        tail = [T.ToDtype(torch.float32, scale=True), T.Normalize(self.mean, self.std)]
        return T.Compose([self.geometry(augment, hflip), *tail])

    def geometry(self, augment: bool = False, hflip: bool = True) -> Callable:
        """PIL image -> resized, cropped uint8 tensor ``[3, size, size]`` (``transform`` before scaling)."""
        interp = _INTERPOLATION[self.interpolation]
        if not augment:
            return _CentreCrop(int(round(self.size / self.crop_pct)), self.size, interp)
        steps = [T.RandomResizedCrop(self.size, scale=(0.7, 1.0), interpolation=interp, antialias=True)]
        if hflip:
            steps.append(T.RandomHorizontalFlip())
        return T.Compose([*steps, T.ToImage()])

    def collate(self, augment: bool = False, hflip: bool = True):
        """A DataLoader collate_fn over ``(item, label)`` pairs: per image only decoding and geometry, then
        one scaling and normalisation for the whole batch (as ``transform``, in a fraction of the time)."""
        return _ImageCollate(self.geometry(augment, hflip), self.mean, self.std)

    def neutral_item(self) -> Image.Image:
        """An input that says nothing (a grey image; the transform brings it to ``size``): serving's warm-up."""
        return Image.new("RGB", (64, 64), (128, 128, 128))

    def with_size(self, size: int) -> "ImagePreprocessing":
        """The same preprocessing at another input size."""
        return ImagePreprocessing(size, self.mean, self.std, self.interpolation, self.crop_pct)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings."""
        return {"kind": "image", **asdict(self)}

    def save(self, folder: Path, for_export: bool = False) -> None:
        """Files the preprocessing needs beside a model: none for images."""

    def export_record(self, input_names: list[str]) -> dict[str, Any]:
        """What an exported model expects as input, for people and other tools (preprocessing.json)."""
        return {"kind": "image", "inputs": input_names, "layout": "NCHW", "dtype": "float32", "color": "RGB",
                "size": self.size, "resize_shorter_side_to": int(round(self.size / self.crop_pct)), "crop": "center",
                "crop_pct": self.crop_pct, "interpolation": self.interpolation, "antialias": True,
                "scale": "pixel / 255", "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class TextPreprocessing:
    """Tokenise with the backbone's tokenizer, truncate to ``max_length``, pad per batch."""

    max_length: int = 128
    tokenizer: Any = field(default=None, compare=False, repr=False)

    def collate(self, augment: bool = False, hflip: bool = True):
        """A DataLoader collate_fn over ``(text, label)`` pairs (dynamic padding)."""
        return _TextCollate(self.tokenizer, self.max_length)

    def neutral_item(self) -> str:
        """An input that says nothing, as long as the model takes (``max_length`` words): serving's warm-up."""
        return " ".join(["warm"] * self.max_length)

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts after truncation, used to bucket texts of similar length."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings."""
        return {"kind": "text", "max_length": self.max_length}

    def save(self, folder: Path, for_export: bool = False) -> None:
        """The tokenizer files; ``for_export`` also makes ``truncation=True`` stop at ``max_length``."""
        if for_export:
            self.tokenizer.model_max_length = self.max_length
        self.tokenizer.save_pretrained(str(folder))

    def export_record(self, input_names: list[str]) -> dict[str, Any]:
        """What an exported model expects as input, for people and other tools (preprocessing.json)."""
        return {"kind": "text", "inputs": input_names, "max_length": self.max_length, "truncation": True,
                "padding": "longest in batch (attention_mask 0 on padding)", "dtype": "int64",
                "tokenizer": "the tokenizer files in this folder: AutoTokenizer.from_pretrained(folder)",
                "pooling": "mean of the last hidden states over attention_mask, then the linear head"}


class _CentreCrop:
    """Resize the shorter side, centre-crop, to uint8 tensor: torchvision's Resize + CenterCrop + ToImage,
    called as functions (the Transform classes' dispatch costs more than the work on small images)."""

    def __init__(self, resize: int, size: int, interpolation: InterpolationMode):
        self.resize, self.size, self.interpolation = resize, size, interpolation

    def __call__(self, image) -> torch.Tensor:
        image = F.resize(image, [self.resize], interpolation=self.interpolation, antialias=True)
        return F.pil_to_tensor(F.center_crop(image, [self.size]))


class _ImageCollate:
    """Picklable collate for DataLoader workers: decode, transform, stack."""

    def __init__(self, geometry, mean: Sequence[float], std: Sequence[float]):
        self.geometry = geometry
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, pairs: list) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([self.geometry(load_image(item)) for item, _ in pairs])
        images = images.float().div_(255).sub_(self.mean).div_(self.std)
        return images, target_tensor([y for _, y in pairs])


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
        return batch, target_tensor([y for _, y in pairs])


def target_tensor(targets: Sequence) -> torch.Tensor:
    """A batch's targets: class codes as int64; a task's label rows (multi-label) or values (regression) as
    float32."""
    if not len(targets) or isinstance(targets[0], (int, np.integer)):
        return torch.tensor([int(t) for t in targets], dtype=torch.long)
    return torch.from_numpy(np.asarray(targets, dtype=np.float32))
