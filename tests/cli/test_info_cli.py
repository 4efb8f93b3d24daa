"""`lsegrt info`: table and JSON."""

from __future__ import annotations

import json
from importlib import metadata


def test_info_table(run_cli):
    code, out, err = run_cli("info")
    assert code == 0, err
    assert metadata.version("torch") in out
    for item in ("OS", "Python", "CPU", "RAM", "NVIDIA driver", "CUDA", "onnxruntime", "tensorrt_rtx", "lsegrt"):
        assert item in out


def test_info_json(run_cli):
    code, out, err = run_cli("info", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["packages"]["torch"] == metadata.version("torch")
    assert info["packages"]["lsegrt"] == metadata.version("lsegrt")
    assert set(info["packages"]) >= {"torch", "torchvision", "timm", "open_clip", "onnx", "onnxruntime",
                                     "tensorrt", "tensorrt_rtx", "numpy", "lsegrt"}
    assert info["cpu_cores"]["logical"] >= 1 and isinstance(info["gpus"], list)
    assert info["nvidia_driver"]  # a version, or "none" without nvidia-smi


def test_not_installed(monkeypatch):
    from lsegrt.environment import NOT_INSTALLED, package_version

    assert package_version(("surely_not_a_module_xyz",), {}) == NOT_INSTALLED
