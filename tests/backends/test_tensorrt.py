"""TensorRT backend: real builds from tiny ONNX graphs with lsegrt's I/O contract (CPU-only with TensorRT-RTX).

The graphs stand in for the LSeg encoder: input ``image`` (B,3,H,W) float32, dynamic; output ``features``
(B,512,H/2,W/2) float32 unit vectors. The runtime needs a GPU, so here only its refusals are tested.
"""

from __future__ import annotations

import importlib
import os
import shutil
import types
import warnings

import pytest
import torch
import torch.nn.functional as F

try:
    trt = importlib.import_module("tensorrt")
except ImportError:
    trt = pytest.importorskip("tensorrt_rtx_bindings", reason="neither tensorrt nor tensorrt_rtx_bindings is installed")

import lsegrt  # noqa: E402
from lsegrt import Encoder  # noqa: E402
from lsegrt.backends import tensorrt as T  # noqa: E402
from lsegrt.backends import tensorrt_build as TB  # noqa: E402
from lsegrt.errors import LsegError  # noqa: E402
from lsegrt.sidecar import (check_sidecar, engine_name, read_sidecar, sha256_file, sidecar_path,  # noqa: E402
                            write_sidecar)

FLAVOR, VERSION = T.flavor(trt)
RTX = FLAVOR == "tensorrt_rtx"
if not RTX and not torch.cuda.is_available():
    pytest.skip("full tensorrt builds need a CUDA GPU", allow_module_level=True)


class Tiny(torch.nn.Module):
    """conv/4 → 1x1 conv to 512 → ×2 bilinear → fp32 L2 norm: (B,3,H,W) → (B,512,H/2,W/2)."""

    def __init__(self, dtype=torch.float32, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.dtype = dtype
        self.conv = torch.nn.Conv2d(3, 16, 3, stride=4, padding=1).to(dtype)
        self.head = torch.nn.Conv2d(16, 512, 1).to(dtype)

    def forward(self, image):
        y = self.head(torch.relu(self.conv(image.to(self.dtype))))
        y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=True).float()
        return y / y.norm(dim=1, keepdim=True).clamp_min(1e-12)


def export(path, dtype=torch.float32, names=("image", "features"), seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Tiny(dtype, seed).eval(), (torch.randn(1, 3, 64, 64),), str(path), input_names=[names[0]],
            output_names=[names[1]], opset_version=17, dynamo=False,
            dynamic_axes={names[0]: {0: "B", 2: "H", 3: "W"}, names[1]: {0: "B", 2: "H2", 3: "W2"}},
        )
    return path


@pytest.fixture(scope="module")
def onnx(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    return {"fp32": export(root / "tiny.onnx"), "fp16": export(root / "tiny_fp16.onnx", torch.float16)}


@pytest.fixture(scope="module")
def built(onnx, tmp_path_factory):
    path = tmp_path_factory.mktemp("engines") / "tiny_fp32.engine"
    events = []
    info = T.build_engine(onnx["fp32"], path, T.BuildOptions(), on_progress=lambda *e: events.append(e))
    return types.SimpleNamespace(path=path, info=info, events=events)


def test_build_writes_engine_and_sidecar(built, onnx):
    assert built.path.stat().st_size > 0
    assert built.info["engine_bytes"] == built.path.stat().st_size
    assert built.info["build_seconds"] > 0
    payload = read_sidecar(built.path)
    req = payload["request"]
    assert req["backend"] == "tensorrt"
    assert (req["backend_flavor"], req["backend_version"]) == (FLAVOR, VERSION)
    assert req["precision"] == "fp32" and req["typing"] == "strong"
    assert req["profile"] == {"min": [1, 256, 256], "opt": [1, 480, 480], "max": [1, 1024, 1024]}
    assert req["onnx_sha256"] == sha256_file(onnx["fp32"])
    assert req["checkpoint_name"] == "tiny"
    for key in ("gpu", "compute_capability", "sparse_weights", "debug", "optimization_level", "workspace", "tf32"):
        assert key in req
    if RTX:
        assert (req["gpu"], req["compute_capability"]) == ("rtx-portable", "portable")
    assert payload["info"]["onnx_float_types"] == ["fp32"]
    check_sidecar(built.path, T.request_for(onnx["fp32"], T.BuildOptions()))


def test_build_reports_progress(built):
    if not hasattr(trt, "IProgressMonitor"):
        pytest.skip("this TensorRT has no IProgressMonitor")
    phases = {phase for phase, _, _ in built.events}
    assert built.events and all(0 <= step <= total for _, step, total in built.events), phases


def test_other_precision_gets_other_engine(onnx, tmp_path):
    fp16 = T.BuildOptions(precision="fp16")
    req32 = T.request_for(onnx["fp32"], T.BuildOptions())
    req16 = T.request_for(onnx["fp16"], fp16)
    assert engine_name(req32, ".engine") != engine_name(req16, ".engine")
    path = tmp_path / engine_name(req16, ".engine")
    info = T.build_engine(onnx["fp16"], path, fp16, request=req16, on_progress=lambda *e: None)
    assert path.stat().st_size > 0 and "fp16" in info["onnx_float_types"]
    assert read_sidecar(path)["request"]["precision"] == "fp16"


@pytest.mark.parametrize("graph, precision", [("fp32", "fp16"), ("fp16", "fp32"), ("fp16", "bf16")])
def test_precision_must_match_the_graph(onnx, tmp_path, graph, precision):
    with pytest.raises(LsegError, match=f"precision '{precision}' was asked"):
        T.build_engine(onnx[graph], tmp_path / "x.engine", T.BuildOptions(precision=precision))
    assert not (tmp_path / "x.engine").exists()


def test_bad_onnx_reports_parser_message(onnx, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(onnx["fp32"].read_bytes()[:2000])  # truncated protobuf
    with pytest.raises(LsegError, match="could not parse bad.onnx: .+") as err:
        T.build_engine(bad, tmp_path / "bad.engine", T.BuildOptions(), on_progress=lambda *e: None)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "bad.engine").exists() and not sidecar_path(tmp_path / "bad.engine").exists()
    bad.write_bytes(b"")
    with pytest.raises(LsegError, match="holds no graph"):
        T.build_engine(bad, tmp_path / "bad.engine", T.BuildOptions(), on_progress=lambda *e: None)
    with pytest.raises(LsegError, match="ONNX file not found"):
        T.build_engine(tmp_path / "missing.onnx", tmp_path / "x.engine")


def test_unsupported_op_named(tmp_path):
    onnx_pkg = pytest.importorskip("onnx")
    TensorProto, helper, save = onnx_pkg.TensorProto, onnx_pkg.helper, onnx_pkg.save

    graph = helper.make_graph(
        [helper.make_node("FooBarOp", ["image"], ["features"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 3, "H", "W"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", 512, "H2", "W2"])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "op.onnx"))
    with pytest.raises(LsegError, match="could not parse op.onnx: .*FooBarOp"):
        T.build_engine(tmp_path / "op.onnx", tmp_path / "x.engine", T.BuildOptions())


def test_wrong_io_names_refused(tmp_path):
    path = export(tmp_path / "named.onnx", names=("input", "output"))
    with pytest.raises(LsegError, match="needs input 'image'"):
        T.build_engine(path, tmp_path / "x.engine", T.BuildOptions())


@pytest.mark.parametrize("kwargs, message", [
    ({"min_shape": (1, 250, 256)}, "multiples of 32"),
    ({"max_shape": (1, 1024, 1000)}, "multiples of 32"),
    ({"min_shape": (1, 512, 512), "opt_shape": (1, 512, 512), "max_shape": (1, 256, 256)}, "min <= opt <= max"),
    ({"opt_shape": (2, 480, 480)}, "min <= opt <= max"),
    ({"min_shape": (1, 256)}, r"expected \(B,H,W\)"),
    ({"optimization_level": 9}, "0..5"),
    ({"workspace": -1}, "positive number of bytes"),
    ({"precision": "int8"}, "unknown precision"),
])
def test_options_validated(kwargs, message):
    with pytest.raises(LsegError, match=message):
        T.BuildOptions(**kwargs)


def test_runtime_refuses_without_cuda(built):
    with pytest.raises(LsegError, match="needs a CUDA"):
        T.TensorRTEncoder.create(engine=built.path, device="cpu")
    with pytest.raises(LsegError, match="needs a CUDA"):
        Encoder.open("tensorrt", engine=str(built.path))  # Encoder.open defaults to the CPU
    if not torch.cuda.is_available():
        with pytest.raises(LsegError, match="needs a CUDA GPU"):
            T.TensorRTEncoder.create(engine=built.path, device="cuda")


def test_runtime_checks_the_sidecar(built):
    with pytest.raises(LsegError, match="precision: 'fp32' → 'fp16'"):
        T.check_engine(built.path, "fp16")
    with pytest.raises(LsegError, match=r"built from a graph that names no checkpoint \(tiny\), not from other.ckpt"):
        T.check_engine(built.path, "fp32", checkpoint_sha256="0" * 64, checkpoint="other.ckpt")


def test_weak_typing_only_where_supported(onnx, tmp_path):
    if hasattr(trt.BuilderFlag, "FP16"):
        pytest.skip("this TensorRT still has weak typing")
    with pytest.raises(LsegError, match="strongly typed only"):
        T.build_engine(onnx["fp32"], tmp_path / "x.engine", T.BuildOptions(precision="fp16", weak_typing=True))


def test_debug_build_warns(onnx, tmp_path):
    with pytest.warns(UserWarning, match="never use a debug engine for benchmarks"):
        T.build_engine(onnx["fp32"], tmp_path / "dbg.engine", T.BuildOptions(debug=True), on_progress=lambda *e: None)
    assert read_sidecar(tmp_path / "dbg.engine")["request"]["debug"] is True


@pytest.mark.skipif(not RTX, reason="compute-capability targets are a TensorRT-RTX option")
def test_rtx_compute_capability_targets(onnx, tmp_path):
    options = T.BuildOptions(compute_capability="8.9, 8.6")
    req = T.request_for(onnx["fp32"], options)
    assert (req["gpu"], req["compute_capability"]) == ("rtx-sm86-sm89", "8.6,8.9")
    assert engine_name(req, ".engine") != engine_name(T.request_for(onnx["fp32"], T.BuildOptions()), ".engine")
    T.build_engine(onnx["fp32"], tmp_path / "sm.engine", options, on_progress=lambda *e: None)
    assert read_sidecar(tmp_path / "sm.engine")["info"]["compute_capability"] == "8.6,8.9"
    with pytest.raises(LsegError, match="not a TensorRT-RTX .* target"):
        T.request_for(onnx["fp32"], T.BuildOptions(compute_capability="9.0"))


@pytest.mark.skipif(not RTX, reason="TensorRT-RTX ignores timing caches; full tensorrt writes them")
def test_rtx_ignores_timing_cache(onnx, tmp_path):
    cache = tmp_path / "timing.cache"
    with pytest.warns(UserWarning, match="no timing cache"):
        T.build_engine(onnx["fp32"], tmp_path / "x.engine", T.BuildOptions(timing_cache=str(cache)),
                       on_progress=lambda *e: None)
    assert not cache.exists()


def test_cache_builds_once_and_keys_by_request(onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("LSEGRT_CACHE", str(tmp_path))
    exported = {}
    for precision, src in onnx.items():  # as `lsegrt export` leaves them: with a sidecar naming the model
        exported[precision] = tmp_path / f"tiny_{precision}.onnx"
        shutil.copyfile(src, exported[precision])
        write_sidecar(exported[precision], {"backend": "onnx", "checkpoint_sha256": "ab" * 32, "checkpoint_name": "tiny",
                                            "variant": "vit_tiny", "precision": precision}, {})
    monkeypatch.setattr(TB, "_cached_onnx", lambda model, precision: exported[precision])
    model = types.SimpleNamespace(sha256="ab" * 32, name="tiny", variant="vit_tiny")
    first = T.cached_engine(model, T.BuildOptions())
    stamp = first.stat().st_mtime_ns
    assert first.parent == tmp_path / "engines" and read_sidecar(first)["request"]["checkpoint_sha256"] == "ab" * 32
    assert T.cached_engine(model, T.BuildOptions()) == first and first.stat().st_mtime_ns == stamp
    other = T.cached_engine(model, T.BuildOptions(precision="fp16"))
    assert other != first and sorted(os.listdir(first.parent)) == sorted(
        [first.name, first.name + ".json", other.name, other.name + ".json"])


def test_seed1_engine_beside_seed0_sidecar_is_refused(built, tmp_path):
    other = T.build_engine(export(tmp_path / "seed1.onnx", seed=1), tmp_path / "seed1.engine", T.BuildOptions(),
                           on_progress=lambda *e: None)
    assert other["engine_bytes"] > 0
    engine = tmp_path / "model.engine"
    shutil.copyfile(built.path, engine)
    shutil.copyfile(sidecar_path(built.path), sidecar_path(engine))
    T.check_engine(engine, "fp32")  # the genuine pair passes
    shutil.copyfile(tmp_path / "seed1.engine", engine)  # other weights, old sidecar kept
    with pytest.raises(LsegError, match="model.engine is not the file its sidecar model.engine.json describes"):
        T.check_engine(engine, "fp32")


def test_swapped_cache_engine_is_rebuilt(onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("LSEGRT_CACHE", str(tmp_path))
    src = tmp_path / "tiny_fp32.onnx"
    shutil.copyfile(onnx["fp32"], src)
    write_sidecar(src, {"backend": "onnx", "checkpoint_sha256": "ab" * 32, "checkpoint_name": "tiny",
                        "variant": "vit_tiny", "precision": "fp32"}, {})
    monkeypatch.setattr(TB, "_cached_onnx", lambda model, precision: src)
    model = types.SimpleNamespace(sha256="ab" * 32, name="tiny", variant="vit_tiny")
    first = T.cached_engine(model, T.BuildOptions())
    genuine = first.read_bytes()
    first.write_bytes(genuine[: len(genuine) // 2])  # truncated in place
    assert T.cached_engine(model, T.BuildOptions()) == first
    assert first.stat().st_size == read_sidecar(first)["info"]["engine_bytes"] > len(genuine) // 2  # rebuilt
    T.check_engine(first, "fp32")


def test_engine_bindings_checked_at_load():
    """Names, float32 and rank-4 (B,3,H,W) → (B,512,h,w) bindings, on a stand-in for a deserialized engine."""
    mode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    fake_trt = types.SimpleNamespace(float32="f32", TensorIOMode=mode)

    def engine(shapes):
        names = ["image", "features"]
        return types.SimpleNamespace(
            num_io_tensors=2, get_tensor_name=names.__getitem__,
            get_tensor_mode=lambda n: "in" if n == "image" else "out", get_tensor_dtype=lambda n: "f32",
            get_tensor_shape=lambda n: shapes[names.index(n)],
            get_tensor_profile_shape=lambda n, i: [(1, 3, 64, 64), (1, 3, 128, 128), (2, 3, 256, 256)])

    path = types.SimpleNamespace(name="x.engine")
    good = engine([(-1, 3, -1, -1), (-1, 512, -1, -1)])
    assert T._engine_profile(fake_trt, good, path)["max"] == (2, 256, 256)
    with pytest.raises(LsegError, match="'features' has shape \\[-1, 3, -1, -1\\]; expected \\(B,512,H,W\\)"):
        T._engine_profile(fake_trt, engine([(-1, 3, -1, -1), (-1, 3, -1, -1)]), path)  # an Identity engine
    with pytest.raises(LsegError, match="'image' has shape"):
        T._engine_profile(fake_trt, engine([(-1, 3, -1), (-1, 512, -1, -1)]), path)


def test_tf32_is_a_build_choice_checked_on_given_engines(built, onnx, tmp_path):
    T.check_engine(built.path, "fp32", tf32=False)  # built without TF32 (lsegrt's default)
    with pytest.raises(LsegError, match="tf32: False → True"):
        T.check_engine(built.path, "fp32", tf32=True)
    # accepted as a backend option (`compare --option tf32=false` must not break tensorrt candidates)
    assert T.TensorRTEncoder.check_options({"tf32": "false"})["tf32"] is False
    with pytest.raises(LsegError, match="needs a CUDA"):
        Encoder.open("tensorrt", engine=str(built.path), tf32=False)


def test_build_refuses_an_onnx_from_another_checkpoint(tmp_path, tiny_rn):
    """The engine's checkpoint fields come from the ONNX's sidecar; a contradicting model is refused."""
    from lsegrt.export import export_onnx

    onnx_path = tmp_path / "r.onnx"
    export_onnx(tiny_rn, onnx_path, trace_size=(64, 64), verify=False)
    options = T.BuildOptions(min_shape=(1, 64, 64), opt_shape=(1, 64, 64), max_shape=(1, 128, 128))
    req = T.request_for(onnx_path, options)  # no model: taken from the ONNX's sidecar
    assert req["checkpoint_sha256"] == tiny_rn.sha256 and req["checkpoint_name"] == tiny_rn.name
    other = lsegrt.random_model("rn_tiny", seed=1)
    with pytest.raises(LsegError, match="r.onnx was exported from random:rn_tiny:seed0 .*not from random:rn_tiny:seed1"):
        T.build_engine(onnx_path, tmp_path / "r.engine", options, model=other)
    assert not (tmp_path / "r.engine").exists()
    with pytest.raises(LsegError, match="has no sidecar, so nothing says"):
        T.request_for(export(tmp_path / "foreign.onnx"), options, model=other)
