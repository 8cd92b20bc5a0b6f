"""Device and numeric precision choices: CUDA when present, bf16 autocast where the hardware has it."""

from __future__ import annotations

import contextlib
import os

import torch

from headstart.training.distributed import launched, local_rank
from headstart.core.choices import PRECISIONS
from headstart.core.errors import ConfigError
from headstart.data.dataset import modality as data_modality



def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else must be a valid torch device.

    Under a multi-process launch (headstart.training.distributed) ``auto`` and ``cuda`` mean this process's own
    GPU, ``cuda:LOCAL_RANK`` (modulo the GPUs visible), as accelerate assigns them.
    """
    if device in ("auto", "cuda") and torch.cuda.is_available() and launched():
        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu.")
    return resolved


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 matrix work runs natively (Ampere+ GPUs, CPUs with AVX-512 bf16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, device: torch.device, training: bool = False,
                      depthwise: bool = False) -> str:
    """``auto`` -> ``bf16`` where supported, except CPU training of depthwise CNNs (no gain there)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        if precision == "bf16" and not bf16_supported(device):
            raise ConfigError(f"--precision bf16 is not supported on this {device.type}; use fp32.")
        return precision
    if not bf16_supported(device):
        return "fp32"
    if training and depthwise and device.type == "cpu":
        return "fp32"
    return "bf16"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``precision`` is bf16, else a no-op."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def extraction_batch(device: torch.device) -> int:
    """Batch size for inference: large on GPUs; on CPUs 32, which kept activations in cache and measured
    fastest here (bench: MobileNetV2 at 96 px, MiniLM-L6 at 128 tokens)."""
    return 256 if device.type == "cuda" else 32


def resolve_workers(num_workers: int | None, device: torch.device, modality: str) -> int:
    """DataLoader workers: as asked, else decode images or sounds in parallel where cores are free to do it."""
    if num_workers is not None:
        return num_workers
    cpus = os.cpu_count() or 1
    if data_modality(modality).texts or cpus <= 2:
        return 0  # tokenising is cheap; on 2 cores workers only compete with the model for them
    return min(8, cpus - 1) if device.type == "cuda" else min(4, cpus // 2)


def reset_peak_memory() -> None:
    """Start a new peak-memory window: the process's peak RSS (Linux) and CUDA's peak allocation."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak then covers the whole process
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float:
    """Peak resident memory of this process since the last reset, in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
