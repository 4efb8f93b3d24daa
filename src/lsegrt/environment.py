"""The machine and software a result came from: OS, Python, CPU, RAM, GPUs (name, memory, compute
capability), NVIDIA driver, CUDA, and the versions of the packages lsegrt can use ("not installed" when
absent). Versions come from package metadata, so optional packages are not imported (onnxruntime only to
list its execution providers). Used by `lsegrt info` and recorded with every benchmark and comparison.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Any

NOT_INSTALLED = "not installed"

# row name → import names that provide it (the distribution is found from the import name)
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "timm": ("timm",),
    "open_clip": ("open_clip",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime",),
    "tensorrt": ("tensorrt",),
    "tensorrt_rtx": ("tensorrt_rtx", "tensorrt_rtx_bindings"),
    "numpy": ("numpy",),
    "lsegrt": ("lsegrt",),
}


# -- collection --------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                    value = line.split(":", 1)[1].strip()
                    if value and not value.isdigit():
                        return value
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _nvidia_smi(fields: str) -> list[list[str]] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=15, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [[v.strip() for v in line.split(",")] for line in out.splitlines() if line.strip()]


def gpus_and_driver() -> tuple[list[dict[str, Any]], str]:
    """GPUs from nvidia-smi (else torch.cuda) and the NVIDIA driver version ("none" without nvidia-smi)."""
    rows = _nvidia_smi("index,name,memory.total,compute_cap,driver_version")
    if rows is None:
        rows = [r[:3] + ["", r[3]] for r in (_nvidia_smi("index,name,memory.total,driver_version") or [])]
    gpus = [{"index": int(r[0]), "name": r[1], "memory_gib": round(float(r[2]) / 1024, 1),
             "compute_capability": r[3] or None} for r in rows if len(r) == 5 and r[0].isdigit()]
    driver = rows[0][4] if rows else ("none" if shutil.which("nvidia-smi") is None else "unknown")
    try:
        import torch

        if torch.cuda.is_available():
            torch_gpus = []
            for i in range(torch.cuda.device_count()):
                prop = torch.cuda.get_device_properties(i)
                torch_gpus.append({"index": i, "name": prop.name, "memory_gib": round(prop.total_memory / 2**30, 1),
                                   "compute_capability": f"{prop.major}.{prop.minor}"})
            if not gpus:
                gpus = torch_gpus
            for g in gpus:  # old drivers cannot report compute_cap
                if not g["compute_capability"] and g["index"] < len(torch_gpus):
                    g["compute_capability"] = torch_gpus[g["index"]]["compute_capability"]
    except Exception:  # a broken CUDA setup must not break `info`, whose job is to diagnose it
        pass
    return gpus, driver


def package_version(modules: tuple[str, ...], dists: dict[str, list[str]]) -> str:
    from importlib import metadata
    from importlib.util import find_spec

    if modules == ("lsegrt",):  # also right when run from a source tree (PYTHONPATH=src), not installed
        from . import __version__

        return __version__

    for module in modules:
        for dist in [*dists.get(module, []), module, module.replace("_", "-")]:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            return version if dist.replace("-", "_").lower() == modules[0].lower() else f"{version} ({dist})"
    for module in modules:
        try:
            if find_spec(module) is not None:
                return "installed (version unknown)"
        except (ImportError, ValueError):
            continue
    return NOT_INSTALLED


def collect() -> dict[str, Any]:
    """Everything `lsegrt info` shows, as JSON-able data."""
    from importlib import metadata

    dists = metadata.packages_distributions()
    packages = {name: package_version(mods, dists) for name, mods in PACKAGES.items()}
    gpus, driver = gpus_and_driver()
    cuda = cudnn = "none"
    try:
        import torch

        cuda = torch.version.cuda or "none (CPU-only torch build)"
        if torch.backends.cudnn.is_available():
            v = torch.backends.cudnn.version()  # cuDNN ≥ 9: major·10000 + minor·100 + patch
            cudnn = f"{v // 10000}.{v // 100 % 100}.{v % 100}" if v >= 90000 else str(v)
    except ImportError:
        pass
    providers: list[str] | None = None
    if packages["onnxruntime"] != NOT_INSTALLED:
        try:
            import onnxruntime

            providers = list(onnxruntime.get_available_providers())
        except Exception:
            providers = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ram = ram_bytes()
    return {
        "os": platform.platform(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "cpu": cpu_model(),
        "cpu_cores": {"logical": os.cpu_count(), "usable": usable},
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "gpus": gpus,
        "nvidia_driver": driver,
        "cuda": cuda,
        "cudnn": cudnn,
        "packages": packages,
        "onnxruntime_providers": providers,
    }


def measurement_environment(device: Any) -> dict[str, Any]:
    """What numbers were measured on: :func:`collect` plus the device used, its dense peak and the
    settings that change fp32 speed (torch threads, TF32 flags)."""
    import torch

    from .flops import gpu_peak, gpu_peak_key
    from .sidecar import gpu_info

    device = torch.device(device)
    gpu = gpu_info(str(device))["gpu"] if device.type == "cuda" else None
    return {
        "device": str(device),
        "gpu": gpu,
        **collect(),
        "torch_threads": torch.get_num_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "peak_tflops_key": gpu_peak_key(gpu),
        "peak_tflops": gpu_peak(gpu),
    }
