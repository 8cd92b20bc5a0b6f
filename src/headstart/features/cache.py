"""FeatureCache: frozen-backbone features computed once per item content, kept on disk.

Entries are content-addressed: a key directory per (weights, preprocessing, precision) holds shards of
(item hash, feature row). Any subset, split, fold or shot count of data seen before is a cache hit, and
only items never seen are forwarded through the backbone. Shards are written atomically with a checksum;
a shard that fails its checksum is deleted and recomputed, never read. A long extraction writes a shard
every ``shard_items`` items, so one that is killed keeps what it finished and a rerun forwards the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file
from torch.utils.data import DataLoader

from headstart.core import locks
from headstart.training import distributed
from headstart.backbones import Backbone, TextPreprocessing, batch_to
from headstart.data import Dataset
from headstart.training.devices import autocast
from headstart.core.errors import RunError
from headstart.core.fileio import write_bytes, write_with
from headstart.core.progress import progress_task

FORMAT_VERSION = "1"
SHARD_ITEMS = 2048  # items per shard while extracting: a killed extraction loses at most this many
# The only files the cache writes: features/KEY/NAME.safetensors and NAME.json, and (while writing) their temporary
# siblings (see headstart.core.fileio). ``clear`` deletes these and nothing else.
KEY = re.compile(r"[0-9a-f]{24}")
OWN_FILE = re.compile(r"[0-9a-f]{16}\.(safetensors|json)|\.[0-9a-f]{16}\.(safetensors|json)\.tmp-[0-9]+-[0-9a-f]{8}")


def default_cache_dir() -> Path:
    """``$HEADSTART_CACHE``, else ``$XDG_CACHE_HOME/headstart``, else ``~/.cache/headstart``."""
    if os.environ.get("HEADSTART_CACHE"):
        return Path(os.environ["HEADSTART_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "headstart"


@dataclass
class Cleared:
    """What ``FeatureCache.clear`` did: how many of its files it deleted, and the files it left (not its own)."""

    removed: int = 0
    kept: list[Path] = field(default_factory=list)


@dataclass
class Extraction:
    """How to run the backbone: device, precision, batch size, loader workers, progress."""

    device: torch.device
    precision: str = "fp32"
    batch_size: int = 64
    num_workers: int = 0
    progress: bool = True


class FeatureCache:
    """Features of a frozen backbone, keyed by weights identity, preprocessing, precision and item content."""

    def __init__(self, root: Path | None = None, shard_items: int = SHARD_ITEMS):
        self.root = Path(root) if root else default_cache_dir()
        self.shard_items = shard_items
        self.forwarded = 0  # items that went through the backbone in this cache object's lifetime

    def key(self, backbone: Backbone, precision: str) -> str:
        """The cache key of everything that determines a feature row, except the item itself."""
        parts = {"version": FORMAT_VERSION, "weights": backbone.weights_id, "arch": backbone.arch,
                 "preprocessing": backbone.preprocessing.to_dict(), "precision": precision}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def features(self, backbone: Backbone, data: Dataset, run: Extraction) -> np.ndarray:
        """``[len(data), feature_dim]`` float32 features, forwarding only items not cached before.

        Only the shards that hold this data's items are read (each checked against its checksum), one at a
        time, straight into the returned array: memory is that array and one shard, whatever else the cache
        holds. Under a launch (see headstart.training.distributed) the missing items are split across the ranks: each
        forwards and writes only its share, once, then every rank reads the others' shards back. Shards are
        written every ``shard_items`` items, so an interrupted extraction keeps the items it finished.
        """
        folder = self.root / "features" / self.key(backbone, run.precision)
        hashes = data.item_hashes()
        out = np.empty((len(data), backbone.feature_dim), dtype=np.float32)
        missing = self._fill(folder, hashes, out, np.ones(len(hashes), dtype=bool))
        distributed.barrier()  # every rank has read the same cache before any rank writes to it
        if missing.any():
            first: dict[str, int] = {}
            for i in np.flatnonzero(missing):
                first.setdefault(hashes[i], int(i))
            mine = distributed.shard(list(first.values()))  # one process: all of them
            if mine:
                def keep(positions: np.ndarray, rows: np.ndarray) -> None:
                    self._write_shard(folder, {hashes[mine[k]]: row for k, row in zip(positions, rows)})

                whole = len(mine) == len(data)  # every item new and distinct: extract straight into ``out``
                rows = extract(backbone, data.subset(mine), run, keep, self.shard_items, out if whole else None)
                if not whole:
                    out[mine] = rows
                done = {hashes[i]: i for i in mine}
                for i in np.flatnonzero(missing):  # copies of an item forwarded once
                    if hashes[i] in done:
                        out[i] = out[done[hashes[i]]]
                        missing[i] = False
            self.forwarded += len(first)
            if distributed.world_size() > 1:
                self._read_back(folder, hashes, out, missing)
        return out

    def _read_back(self, folder: Path, hashes: list[str], out: np.ndarray, missing: np.ndarray) -> None:
        """After every rank wrote its shard: the other ranks' rows, which the cache must now hold."""
        distributed.barrier()
        if self._fill(folder, hashes, out, missing).any():
            raise RunError(f"Feature shards written by the other processes are not in {folder}: the feature "
                           "cache must be on a file system every process sees. Set --cache-dir (or "
                           "HEADSTART_CACHE) to a shared folder.")

    def _fill(self, folder: Path, hashes: list[str], out: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Copy the cached rows of the ``wanted`` positions into ``out``; returns which are still missing.

        The shards' item hashes are read first (a few bytes an item); then each shard that holds a wanted
        item is read whole once, verified, and dropped. A shard that cannot be read or fails its checksum is
        deleted (its items count as missing, to be forwarded again), never used.
        """
        where: dict[str, list[int]] = {}
        for i in np.flatnonzero(wanted):
            where.setdefault(hashes[i], []).append(int(i))
        missing = wanted.copy()
        for shard in sorted(folder.glob("*.safetensors")):
            if not where:
                break
            try:
                with safe_open(str(shard), framework="np") as handle:
                    held = [bytes(h).hex() for h in handle.get_tensor("hashes")]
                if not any(h in where for h in held):
                    continue
                tensors = load_file(str(shard))
                meta = json.loads(shard.with_suffix(".json").read_text())
                if meta["checksum"] != _checksum(tensors["features"], tensors["hashes"]):
                    raise ValueError("checksum mismatch")
            except (OSError, ValueError, KeyError, SafetensorError):
                shard.unlink(missing_ok=True)  # corrupt or truncated: recompute, never read
                shard.with_suffix(".json").unlink(missing_ok=True)
                continue
            for h, row in zip(held, tensors["features"]):
                for i in where.pop(h, ()):
                    out[i] = row
                    missing[i] = False
        return missing

    def _write_shard(self, folder: Path, rows: dict[str, np.ndarray]) -> None:
        """One shard, under the cache's lock: its checksum (NAME.json) first, then its tensors (NAME.safetensors),
        so a reader that finds the tensors always finds the checksum beside them."""
        hashes = np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.uint8) for h in rows])
        feats = np.ascontiguousarray(np.stack(list(rows.values())).astype(np.float32))
        name = hashlib.sha256(hashes.tobytes()).hexdigest()[:16]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with locks.wait(folder.parent, "the feature cache"):
                meta = {"checksum": _checksum(feats, hashes), "rows": len(rows)}
                write_bytes(folder / f"{name}.json", json.dumps(meta).encode())
                write_with(folder / f"{name}.safetensors",
                           lambda tmp: save_file({"features": feats, "hashes": hashes}, str(tmp)))
        except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
            why = getattr(exc, "strerror", None) or exc
            raise RunError(f"Cannot write the feature cache in {self.root}: {why}. Choose a writable folder on a "
                           "disk with space with --cache-dir (or HEADSTART_CACHE).") from None

    def clear(self) -> Cleared:
        """Delete the cache's own files (``OWN_FILE`` in a ``KEY`` folder under ``features/``: its shards, and the
        temporary files of writes that were killed); anything else there is left, and listed in ``kept``."""
        features = self.root / "features"
        done = Cleared()
        if not features.is_dir():
            return done
        with locks.wait(features, "the feature cache"):  # no write is under way: every temporary file is stale
            for parent, _, names in os.walk(features):
                for path in (Path(parent) / name for name in sorted(names)):
                    if self.is_own(path):
                        path.unlink()
                        done.removed += 1
                    else:
                        done.kept.append(path)
            for key in features.iterdir():
                if KEY.fullmatch(key.name) and key.is_dir() and not key.is_symlink() and not any(key.iterdir()):
                    key.rmdir()
        return done

    def shards(self) -> list[Path]:
        """The cache's shard files (``features/KEY/NAME.safetensors``)."""
        return [p for p in sorted((self.root / "features").glob("*/*.safetensors")) if self.is_own(p)]

    def is_own(self, path: Path) -> bool:
        """Whether ``path`` is a file this cache wrote: a name it gives, in a key folder of ``features/``."""
        key = path.parent
        return (key.parent == self.root / "features" and KEY.fullmatch(key.name) is not None
                and OWN_FILE.fullmatch(path.name) is not None and not key.is_symlink() and not path.is_symlink()
                and path.is_file())


def extract(backbone: Backbone, data: Dataset, run: Extraction,
            keep: Callable[[np.ndarray, np.ndarray], None] | None = None, every: int = 0,
            out: np.ndarray | None = None) -> np.ndarray:
    """Forward ``data`` through the frozen backbone in inference mode; rows in ``data`` order.

    With ``keep``, ``keep(positions, rows)`` receives the finished rows each time ``every`` more items are
    done, and the last ones at the end: a caller can save them before the extraction goes on. ``out``, a
    ``[len(data), feature_dim]`` float32 array, receives the rows instead of a new array.
    """
    order = length_order(backbone, data)
    pairs = [(data.items[i], 0) for i in order]
    collate = backbone.preprocessing.collate(augment=False)
    loader = DataLoader(pairs, batch_size=run.batch_size, collate_fn=collate, num_workers=run.num_workers)
    module = backbone.module.to(run.device).eval()
    channels_last = backbone.channels_last
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    if out is None:
        out = np.empty((len(data), backbone.feature_dim), dtype=np.float32)
    start = kept = 0
    with torch.inference_mode(), progress_task(f"features ({backbone.name})", len(data), run.progress) as advance:
        for inputs, _ in loader:
            with autocast(run.device, run.precision):
                feats = module(batch_to(inputs, run.device, channels_last))
            n = feats.shape[0]
            out[order[start:start + n]] = feats.float().cpu().numpy()
            start += n
            advance(n)
            if keep is not None and (start - kept >= every or start == len(data)):
                keep(order[kept:start], out[order[kept:start]])
                kept = start
    return out


def length_order(backbone: Backbone, data: Dataset) -> np.ndarray:
    """Texts sorted by length, so each batch pads little; images in their own order.

    Characters stand in for tokens: they order texts almost as token counts do, and cost no tokenizer
    pass (on long texts that pass alone is a tenth of the forward pass).
    """
    if isinstance(backbone.preprocessing, TextPreprocessing):
        return np.argsort([len(text) for text in data.items], kind="stable")
    return np.arange(len(data))


def _checksum(features: np.ndarray, hashes: np.ndarray) -> str:
    return hashlib.sha256(features.tobytes() + hashes.tobytes()).hexdigest()


