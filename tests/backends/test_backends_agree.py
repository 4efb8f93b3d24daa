"""Every CPU-runnable backend agrees with fp32 eager (cosine ≥ 0.9999 in fp32), and AOTInductor
packages reload in a fresh process without recompiling."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import lsegrt
from lsegrt.errors import LsegError


def _inputs():
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(1, 3, 64, 96, generator=gen), torch.randn(2, 3, 96, 64, generator=gen)]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_fast_backends_agree_with_eager(backend, tiny_model, cache_dir):
    with lsegrt.Encoder.open(backend, checkpoint=tiny_model) as enc:
        for x in _inputs():
            ref, out = tiny_model.encode_image(x), enc(x)
            assert out.shape == ref.shape and out.dtype == torch.float32 and out.device == x.device
            assert float((ref * out).sum(1).min()) >= 0.9999


@pytest.mark.slow
def test_compile_agrees_with_eager(tiny_rn):
    with lsegrt.Encoder.open("compile", checkpoint=tiny_rn) as enc:
        x = _inputs()[0]
        assert float((tiny_rn.encode_image(x) * enc(x)).sum(1).min()) >= 0.9999
        assert enc.describe()["backend"] == "compile"


@pytest.mark.slow
def test_aoti_package_builds_and_reloads_in_a_fresh_process(tmp_path, tiny_rn):
    from lsegrt.backends.aoti import build_aoti

    pkg = tmp_path / "rn.pt2"
    info = build_aoti(tiny_rn, pkg, max_batch=4, max_side=256)
    assert pkg.is_file() and info["package_bytes"] > 0
    x = _inputs()
    torch.save({"x": x, "ref": [tiny_rn.encode_image(t) for t in x]}, tmp_path / "io.pt")
    code = textwrap.dedent(f"""
        import json, time, torch, lsegrt
        import torch._inductor
        d = torch.load({str(tmp_path / 'io.pt')!r})
        t = time.perf_counter()
        enc = lsegrt.Encoder.open("aoti", engine={str(pkg)!r})
        load_s = time.perf_counter() - t
        cos = [float((enc(x) * r).sum(1).min()) for x, r in zip(d["x"], d["ref"])]
        print(json.dumps({{"cos": cos, "load_s": load_s}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert min(result["cos"]) >= 0.9999
    assert result["load_s"] < 20  # a load, not a recompile (the build above took far longer)
    with pytest.raises(LsegError, match="precision"):
        lsegrt.Encoder.open("aoti", engine=pkg, precision="fp16")


def test_backend_errors_are_one_line():
    with pytest.raises(LsegError, match="unknown backend"):
        lsegrt.Encoder.open("nope")
    with pytest.raises(LsegError, match="unknown precision"):
        lsegrt.Encoder.open("torch", precision="fp8")
    with pytest.raises(LsegError, match="engine"):
        lsegrt.Encoder.open("torch", engine="x.engine")
