"""`lsegrt.compare`: metrics, thresholds, pass/fail, pictures, report schema, cross-checkpoint mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lsegrt import compare as cmp
from lsegrt.backends.base import Encoder
from lsegrt.errors import LsegError

SIZES = [64, (96, 64)]
METRICS = {"mean_cosine", "p01_cosine", "min_cosine", "rel_l2", "max_abs", "agreement", "pixels"}


class Perturbed(Encoder):
    """Test-only candidate: the eager fp32 encoder plus ``scale``·noise, re-normalized (or NaN)."""

    name = "perturbed"

    def __init__(self, model, scale: float, nan: bool = False):
        super().__init__(model.device, "fp32")
        self.inner = Encoder.open("torch", checkpoint=model)
        self.scale, self.nan = scale, nan

    @classmethod
    def create(cls, **kw):  # pragma: no cover - constructed directly
        raise NotImplementedError

    def __call__(self, x):
        y = self.inner(x)
        if self.nan:
            return torch.full_like(y, float("nan"))
        gen = torch.Generator().manual_seed(0)
        y = y + self.scale * torch.randn(y.shape, generator=gen)
        return y / y.norm(dim=1, keepdim=True)


@pytest.fixture(scope="module")
def images(chelsea):
    return [("chelsea", chelsea), ("crop", np.ascontiguousarray(chelsea[:200, 100:300]))]


def test_self_comparison_passes_with_cosine_one(tiny_vit, images):
    report = cmp.compare(tiny_vit, [cmp.Side("torch")], images, SIZES)
    pair = report["pairs"][0]
    assert report["passed"] and pair["passed"] and pair["failures"] == []
    assert len(pair["items"]) == 4 and {it["input"] for it in pair["items"]} == {"32x64", "96x64", "64x64"}
    agg = pair["aggregate"]
    assert agg["mean_cosine"] == pytest.approx(1.0, abs=1e-9) and agg["mean_cosine"] <= 1 + 1e-6
    assert agg["min_cosine"] <= agg["p01_cosine"] <= agg["mean_cosine"] <= 1 + 1e-6
    assert agg["rel_l2"] == 0.0 and agg["max_abs"] == 0.0 and agg["agreement"] == 100.0


def test_half_precision_passes_its_defaults(tiny_vit, images):
    report = cmp.compare(tiny_vit, [cmp.Side("torch", "bf16")], images[:1], [64])
    pair = report["pairs"][0]
    assert pair["thresholds"] == {"min_cosine": 0.999, "min_p01": 0.99, "min_agreement": 99.0}
    assert pair["passed"], pair["failures"]
    assert 0.999 < pair["aggregate"]["mean_cosine"] < 1.0 and pair["aggregate"]["rel_l2"] > 0


def test_a_perturbed_candidate_fails(tiny_vit, images):
    report = cmp.compare(tiny_vit, [Perturbed(tiny_vit, 0.05)], images[:1], [64, (64, 96)])
    pair = report["pairs"][0]
    assert not report["passed"] and not pair["passed"]
    assert pair["candidate"] == "perturbed:fp32"
    assert any("mean cosine" in f for f in pair["failures"])
    assert all(not it["passed"] and it["failures"] for it in pair["items"])
    assert pair["aggregate"]["mean_cosine"] < 0.99999 and pair["aggregate"]["mean_cosine"] <= 1 + 1e-6


def test_nan_never_passes(tiny_vit, images):
    pair = cmp.compare(tiny_vit, [Perturbed(tiny_vit, 0.0, nan=True)], images[:1], [64])["pairs"][0]
    assert not pair["passed"] and np.isnan(pair["aggregate"]["mean_cosine"])


def test_a_backend_that_cannot_open_fails_the_pair_only(tiny_vit, images):
    report = cmp.compare(tiny_vit, [cmp.Side("tensorrt", "fp16"), cmp.Side("torch")], images[:1], [64])
    bad, good = report["pairs"]
    assert not bad["passed"] and bad["error"] and bad["aggregate"] is None and bad["items"] == []
    assert good["passed"] and not report["passed"]


def test_cosine_is_one_minus_half_squared_l2_for_unit_vectors():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(1, 512, 6, 7, generator=gen)
    b = a + 0.3 * torch.randn(1, 512, 6, 7, generator=gen)
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    lab = torch.zeros(12, 14, dtype=torch.long)
    m = cmp.map_metrics(a, b, lab, lab)
    expected = 1 - ((a - b).double() ** 2).sum(1)[0].numpy() / 2
    assert np.allclose(m["cos_map"], expected, atol=1e-6)
    s = cmp.summarize([m])
    assert s["rel_l2"] == pytest.approx(float((a - b).norm() / a.norm()), rel=1e-5)
    assert s["agreement"] == 100.0 and s["pixels"] == 42
    with pytest.raises(LsegError, match="shapes differ"):
        cmp.map_metrics(a, b[..., :5], lab, lab)


def test_thresholds_and_sides():
    assert cmp.thresholds_for(["fp32", "fp32"]) == {"min_cosine": 0.99999, "min_p01": None, "min_agreement": None}
    assert cmp.thresholds_for(["fp32", "fp16"])["min_p01"] == 0.99
    assert cmp.thresholds_for(["fp32", "bf16"], {"min_cosine": 0.5, "min_p01": None})["min_cosine"] == 0.5
    assert cmp.parse_side("tensorrt:fp16@dir/x.engine") == cmp.Side("tensorrt", "fp16", engine="dir/x.engine")
    assert cmp.parse_side("onnxruntime") == cmp.Side("onnxruntime", "fp32")
    assert cmp.Side("tensorrt", "fp16", engine="dir/x.engine").label == "tensorrt:fp16@x.engine"
    with pytest.raises(LsegError, match="unknown backend"):
        cmp.parse_side("tensorflow:fp16")
    with pytest.raises(LsegError, match="precision"):
        cmp.parse_side("torch:fp8")


def test_a_side_carries_its_own_options():
    side = cmp.parse_side("compile:fp16:fast=true,cuda_graph=true@dir/x.compiled")
    assert side == cmp.Side("compile", "fp16", {"fast": True, "cuda_graph": True}, engine="dir/x.compiled")
    assert side.label == "compile:fp16:cuda_graph=true,fast=true@x.compiled"
    assert cmp.parse_side("compile:fp16").label != cmp.parse_side("compile:fp16:fast=true").label
    with pytest.raises(LsegError, match="unknown option bogus"):
        cmp.parse_side("compile:fp16:bogus=1")
    with pytest.raises(LsegError, match="fast='maybe'"):
        cmp.parse_side("compile:fp16:fast=maybe")
    with pytest.raises(LsegError, match="not KEY=VALUE"):
        cmp.parse_side("compile:fp16:fast")


def test_stock_and_fast_compile_side_by_side(tiny_vit, images):
    """Per-side options override the shared set: each pair's encoder reports its own."""
    report = cmp.compare(tiny_vit, [cmp.parse_side("compile:fp32"), cmp.parse_side("compile:fp32:fast=true")],
                         images[:1], [64], options={"fast": False})
    stock, fast = report["pairs"]
    assert stock["encoder"]["options"]["overlap"] is False and fast["encoder"]["options"]["overlap"] is True
    assert stock["candidate"] == "compile:fp32" and fast["candidate"] == "compile:fp32:fast=true"
    assert report["passed"], [p["failures"] for p in report["pairs"]]
    assert cmp.failures({"mean_cosine": 0.5, "p01_cosine": 0.1, "agreement": 50.0},
                        {"min_cosine": 0.9, "min_p01": None, "min_agreement": 99.0}) == [
        "mean cosine 0.5000000 < 0.9", "label agreement % 50.000 < 99.0"]


def test_report_json_and_pictures(tiny_vit, images, tmp_path):
    report = cmp.compare(tiny_vit, [Perturbed(tiny_vit, 0.01)], images, [64], out_dir=tmp_path)
    path = cmp.write_report(report, tmp_path / "compare.json", {"device": "cpu"})
    data = json.loads(path.read_text())
    assert {"lsegrt_version", "created", "environment", "mode", "reference", "model", "labels", "images", "sizes",
            "pairs", "passed"} <= set(data)
    assert data["mode"] == "backends" and data["reference"]["side"] == "torch:fp32:tf32=false"
    # strict fp32 by default: PyTorch's own default would let cuDNN run the reference's convolutions in TF32
    assert data["reference"]["encoder"]["tf32_cudnn"] is False and data["reference"]["encoder"]["tf32_matmul"] is False
    assert data["labels"] == cmp.DEFAULT_LABELS.split(", ") and data["images"][0] == {
        "name": "chelsea", "height": 300, "width": 451}
    pair = data["pairs"][0]
    assert {"candidate", "precision", "encoder", "thresholds", "passed", "failures", "aggregate", "items",
            "pictures", "error"} <= set(pair)
    assert set(pair["aggregate"]) == METRICS
    for item in pair["items"]:
        assert METRICS | {"image", "size", "input", "passed", "failures"} <= set(item)
        assert item["mean_cosine"] <= 1 + 1e-6
    # one set of pictures (first image × size): heat-map, PCA, labels
    assert len(pair["pictures"]) == 3
    for name in pair["pictures"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    everything = cmp.compare(tiny_vit, [cmp.Side("torch")], images, [64], out_dir=tmp_path / "all", all_pictures=True)
    assert len(everything["pairs"][0]["pictures"]) == 6


def test_cross_checkpoint_mode(tiny_vit, tiny_rn, chelsea, tmp_path):
    import lsegrt

    other = lsegrt.random_model("vit_tiny", seed=1)
    report = cmp.compare_checkpoints([tiny_vit, other, tiny_vit], [("chelsea", chelsea)], [64], out_dir=tmp_path)
    assert report["mode"] == "checkpoints" and len(report["pairs"]) == 3
    by = {(p["a"], p["b"]): p for p in report["pairs"]}
    same = by[(f"{tiny_vit.name}#0", f"{tiny_vit.name}#2")]
    assert same["mean_cosine"] == pytest.approx(1.0, abs=1e-9) and same["agreement"] == 100.0
    diff = by[(f"{tiny_vit.name}#0", other.name)]
    assert diff["mean_cosine"] < 0.99 and diff["rel_l2"] > 0.01
    assert len(report["pictures"]) == 2
    with pytest.raises(LsegError, match="one variant"):
        cmp.compare_checkpoints([tiny_vit, tiny_rn], [("chelsea", chelsea)], [64])
    with pytest.raises(LsegError, match="at least two"):
        cmp.compare_checkpoints([tiny_vit], [("chelsea", chelsea)], [64])


class FailsFrom(Encoder):
    """Test-only reference: the eager fp32 encoder until its ``n``-th call, which raises as a dead CUDA context
    does (an asynchronous error a candidate caused, reported by the next call on the device)."""

    name = "failsfrom"

    def __init__(self, model, n: int):
        super().__init__(model.device, "fp32")
        self.inner = Encoder.open("torch", checkpoint=model)
        self.n, self.calls = n, 0

    @classmethod
    def create(cls, **kw):  # pragma: no cover - constructed directly
        raise NotImplementedError

    def __call__(self, x):
        self.calls += 1
        if self.calls >= self.n:
            raise RuntimeError("CUDA error: unspecified launch failure")
        return self.inner(x)


def test_a_failing_reference_stops_the_run_and_keeps_what_finished(tiny_vit, images):
    ref = FailsFrom(tiny_vit, 3)
    report = cmp.compare(tiny_vit, [cmp.Side("torch")], images, SIZES, reference=ref)
    pair = report["pairs"][0]
    assert report["stopped"] == "stopped at crop 64x64: reference failsfrom:fp32: RuntimeError: CUDA error: unspecified launch failure"
    assert [it["input"] for it in pair["items"]] == ["32x64", "96x64"]  # the first image, both sizes
    assert all(it["passed"] for it in pair["items"]) and pair["aggregate"]["mean_cosine"] == pytest.approx(1.0)
    assert not pair["passed"] and pair["failures"] == [report["stopped"]] and not report["passed"]
    assert ref.calls == 3  # nothing ran after the failure
