"""Which devices lsegrt runs on: the CPU and CUDA GPUs, named and checked before any work."""

from __future__ import annotations

import torch

from .errors import LsegError

DEVICE_HELP = "cpu, cuda, cuda:N or auto (default: auto = cuda if available)"


def canonical_device(device: torch.device | str) -> torch.device:
    """'cuda' → 'cuda:<current>', so device equality checks compare like with like."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def check_device(device: torch.device | str | None) -> torch.device:
    """A usable device or a one-line :class:`LsegError`: 'auto'/None → cuda if visible, else cpu.

    Only the CPU and CUDA are supported: the backends, the FLOP/peak tables and the tests cover those;
    'meta' holds no data, and 'mps'/'xpu' are untested here, so they are refused rather than half-run.
    """
    if device is None or (isinstance(device, str) and device.strip() in ("", "auto")):
        return canonical_device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        raise LsegError(f"unknown device {device!r}; use {DEVICE_HELP}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise LsegError(f"device {str(dev)!r} is not supported; use {DEVICE_HELP}")
    if not torch.cuda.is_available():
        raise LsegError(f"device {dev} requested but no CUDA GPU is available (use --device cpu)")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise LsegError(f"device {dev} requested but this machine has {count} CUDA GPU(s): "
                        f"{', '.join(f'cuda:{i}' for i in range(count))}")
    return canonical_device(dev)
