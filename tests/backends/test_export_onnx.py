"""ONNX export + ONNX Runtime parity (tiny configs), sidecars and the cache's refusal to reuse."""

from __future__ import annotations

import json

import pytest
import torch

import lsegrt
from lsegrt.errors import LsegError

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("variant", ["vit_tiny", "rn_tiny"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_export_matches_pytorch_at_other_sizes_and_batch_2(tmp_path, variant, precision, tiny_vit, tiny_rn):
    from lsegrt.export import export_onnx

    model = {"vit_tiny": tiny_vit, "rn_tiny": tiny_rn}[variant]
    path = tmp_path / "enc.onnx"
    info = export_onnx(model, path, precision=precision, trace_size=(96, 128))
    checks = info["verification"]["checks"]
    assert {tuple(c["shape"]) for c in checks} == {(1, 3, 64, 96), (2, 3, 96, 64)}  # ≠ the trace size
    floor = 0.99999 if precision == "fp32" else 0.9999
    assert all(c["cosine_min"] >= floor for c in checks)
    sidecar = json.loads((tmp_path / "enc.onnx.json").read_text())
    assert sidecar["request"]["precision"] == precision and sidecar["request"]["opset"] == 17
    assert sidecar["request"]["checkpoint_sha256"] == model.sha256
    # and through the backend, at sizes/batches the graph never saw
    with lsegrt.Encoder.open("onnxruntime", engine=path, precision=precision, checkpoint=model) as enc:
        for shape in [(2, 3, 64, 64), (1, 3, 160, 224)]:
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
            ref, out = model.encode_image(x), enc(x)
            assert out.shape == (shape[0], 512, shape[2] // 2, shape[3] // 2) and out.dtype == torch.float32
            assert (ref * out).sum(1).min() >= floor


def test_engine_for_other_precision_is_refused(tmp_path, tiny_vit):
    from lsegrt.export import export_onnx

    path = tmp_path / "enc.onnx"
    export_onnx(tiny_vit, path, precision="fp16", trace_size=(64, 64), verify=False)
    with pytest.raises(LsegError, match="precision: 'fp16' → 'fp32'"):
        lsegrt.Encoder.open("onnxruntime", engine=path, precision="fp32")
    other = lsegrt.random_model("vit_tiny", seed=1)
    with pytest.raises(LsegError, match="checkpoint_sha256"):
        lsegrt.Encoder.open("onnxruntime", engine=path, precision="fp16", checkpoint=other)


def test_engine_without_sidecar_is_refused(tmp_path, tiny_vit):
    from lsegrt.export import export_onnx

    path = tmp_path / "enc.onnx"
    export_onnx(tiny_vit, path, trace_size=(64, 64), verify=False)
    (tmp_path / "enc.onnx.json").unlink()
    with pytest.raises(LsegError, match="no sidecar"):
        lsegrt.Encoder.open("onnxruntime", engine=path)


def test_cache_never_reuses_a_tampered_sidecar(cache_dir, tiny_vit):
    with lsegrt.Encoder.open("onnxruntime", checkpoint=tiny_vit) as enc:
        first = enc.path
    sidecar = first.with_name(first.name + ".json")
    payload = json.loads(sidecar.read_text())
    payload["request"]["checkpoint_sha256"] = "0" * 64  # as if built from other weights
    sidecar.write_text(json.dumps(payload))
    before = first.stat().st_mtime_ns
    with lsegrt.Encoder.open("onnxruntime", checkpoint=tiny_vit) as enc:
        assert enc.path == first
    assert first.stat().st_mtime_ns != before  # rebuilt, not reused
    assert json.loads(sidecar.read_text())["request"]["checkpoint_sha256"] == tiny_vit.sha256


def test_bad_export_requests(tmp_path, tiny_vit):
    from lsegrt.export import export_onnx

    with pytest.raises(LsegError, match="opset"):
        export_onnx(tiny_vit, tmp_path / "a.onnx", opset=11)
    with pytest.raises(LsegError, match="multiples of 32"):
        export_onnx(tiny_vit, tmp_path / "a.onnx", trace_size=(100, 64))
    with pytest.raises(LsegError, match="folder does not exist"):
        export_onnx(tiny_vit, tmp_path / "missing" / "a.onnx")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def trt():
    """The TensorRT builder module, skipping when neither tensorrt nor tensorrt_rtx is installed."""
    module = pytest.importorskip("lsegrt.backends.tensorrt_build")
    try:
        module.import_tensorrt()
    except LsegError:
        pytest.skip("no tensorrt / tensorrt_rtx installed")
    return module


def test_export_cli(tmp_path, run_cli):
    code, out, err = run_cli("export", "--variant", "rn_tiny", "--out", tmp_path / "r.onnx", "--trace-size", "64x64")
    assert code == 0, err
    assert "cosine mean" in out and (tmp_path / "r.onnx").is_file() and (tmp_path / "r.onnx.json").is_file()


def test_trt_rtx_builds_our_own_export(tmp_path, tiny_rn, trt):
    """A real TensorRT(-RTX) engine from lsegrt's exported graph (build path, CPU-only machine)."""
    from lsegrt.export import export_onnx

    onnx = tmp_path / "r.onnx"
    export_onnx(tiny_rn, onnx, precision="fp16", trace_size=(64, 64), verify=False)
    options = trt.BuildOptions(precision="fp16", min_shape=(1, 64, 64), opt_shape=(1, 128, 128), max_shape=(2, 256, 256))
    info = trt.build_engine(onnx, tmp_path / "r.engine", options, model=tiny_rn)
    assert info["engine_bytes"] > 0 and (tmp_path / "r.engine").stat().st_size == info["engine_bytes"]
    req = json.loads((tmp_path / "r.engine.json").read_text())["request"]
    assert req["checkpoint_sha256"] == tiny_rn.sha256 and req["profile"]["max"] == [2, 256, 256]


def test_trt_rtx_builds_a_bf16_vit(tmp_path, tiny_vit, trt):
    """bf16 ViT graphs keep the reassemble ConvTranspose in fp32, which TensorRT-RTX needs to build them."""
    from lsegrt.backends.common import encoder_module
    from lsegrt.export import export_onnx

    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = encoder_module(tiny_vit, "bf16", torch.device("cpu"))(x)
    assert float((out * tiny_vit.encode_image(x)).sum(1).mean()) > 0.999
    onnx = tmp_path / "v.onnx"
    export_onnx(tiny_vit, onnx, precision="bf16", trace_size=(64, 64))
    options = trt.BuildOptions(precision="bf16", min_shape=(1, 64, 64), opt_shape=(1, 128, 128), max_shape=(1, 256, 256))
    assert trt.build_engine(onnx, tmp_path / "v.engine", options, model=tiny_vit)["engine_bytes"] > 0
