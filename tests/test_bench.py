"""`lsegrt.bench` and `lsegrt.flops`: record schema, statistics, outputs, FLOP counts (CPU, tiny models)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from lsegrt import bench
from lsegrt.errors import LsegError
from lsegrt.flops import encoder_flops, flops_by_op, gpu_peak

FAST = bench.Timing(warmup_iters=1, warmup_seconds=0.0, min_seconds=0.05, min_iters=2, max_iters=3, copy_iters=1)
TYPES = {"str": str, "int": int, "float": float, "bool": bool, "dict": dict}


def _check_type(name: str, value, spec: str) -> None:
    nullable = spec.endswith("?")
    if value is None:
        assert nullable, f"{name} is null but not nullable"
        return
    allowed = tuple(TYPES[t] for t in spec.rstrip("?").split("|"))
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return  # JSON has one number type
    assert isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed), (name, value, spec)


@pytest.fixture(scope="module")
def records(tiny_vit):
    return list(bench.sweep([tiny_vit], ["torch"], ["fp32"], [(64, 64), (64, 96)], [1, 2], "cpu", timing=FAST))


# -- FLOPs -------------------------------------------------------------------------------------------
def test_flops_match_the_vit_l16_reference_on_the_meta_device():
    # Reference FLOP counts of docs/ARCHITECTURE.md §10 (batch 1, 1 MAC = 2 FLOP); meta device: no weights.
    assert encoder_flops("vit_l16", 384, 384) == pytest.approx(494e9, abs=1e9)
    assert encoder_flops("vit_l16", 1024, 1024) == pytest.approx(4.92e12, rel=0.01)
    ops = flops_by_op("vit_l16", 384, 384)
    assert any("convolution" in k for k in ops) and any("mm" in k for k in ops)


def test_flops_scale_with_batch_and_size():
    one = encoder_flops("vit_tiny", 64, 64)
    assert encoder_flops("vit_tiny", 64, 64, batch=3) == 3 * one
    assert encoder_flops("vit_tiny", 128, 128) > 3.5 * one  # ≥ linear in pixels (attention is quadratic)
    assert encoder_flops("rn_tiny", 128, 128) == pytest.approx(4 * encoder_flops("rn_tiny", 64, 64), rel=0.01)


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 SXM5 80GB", 989.4), ("NVIDIA H200", 989.4),
    ("NVIDIA H100 PCIe", None), ("NVIDIA H100 NVL", None), ("NVIDIA H200 NVL", None), ("NVIDIA A100-SXM4-80GB", None),
    (None, None),
])
def test_gpu_peak_table(name, peak):
    got = gpu_peak(name)
    assert (got["fp16"] if got else None) == peak
    if got:
        assert got["bf16"] == 989.4 and got["tf32"] == 494.7 and got["fp32"] == 66.9


# -- records -----------------------------------------------------------------------------------------
def test_every_record_has_every_field_with_the_documented_type(records):
    assert len(records) == 4
    for record in records:
        rec = record.to_dict()
        assert list(rec) == list(bench.FIELDS)
        for name, spec in bench.FIELDS.items():
            _check_type(name, rec[name], spec)
        assert rec["status"] == "ok" and rec["error"] is None
        assert rec["timer"] == "perf_counter" and rec["device"] == "cpu" and rec["variant"] == "vit_tiny"
        assert rec["iters"] >= FAST.min_iters and rec["warmup_iters"] >= 1
        assert rec["host_ms_min"] <= rec["host_ms_p50"] <= rec["host_ms_p90"] <= rec["host_ms_p99"]
        assert rec["host_ms_mean"] > 0 and rec["host_ms_std"] >= 0
        # CPU: no GPU columns, no copies, no % of a GPU peak
        for key in ("gpu_ms_p50", "h2d_ms", "d2h_ms", "gpu_peak_mem_mb", "pct_fp16_peak"):
            assert rec[key] is None
        assert rec["images_per_s"] == pytest.approx(rec["batch"] * 1e3 / rec["host_ms_p50"])
        flops = encoder_flops("vit_tiny", rec["height"], rec["width"], rec["batch"])
        assert rec["gflops"] == pytest.approx(flops / 1e9)
        assert rec["tflops_per_s"] > 0
        assert rec["output_mb"] == pytest.approx(rec["batch"] * 512 * rec["height"] * rec["width"] / 4 * 4 / 2**20)
        assert rec["encoder"]["backend"] == "torch"
    assert [(r.size, r.batch) for r in records] == [(64, 1), (64, 2), ("64x96", 1), ("64x96", 2)]


def test_fields_document_the_record():
    assert bench.FIELDS["checkpoint"] == "str?" and bench.FIELDS["size"] == "int|str"
    assert bench.FIELDS["iters"] == "int?" and bench.FIELDS["encoder"] == "dict" and bench.FIELDS["input_mb"] == "float"


def test_never_a_percentile_of_one_call(tiny_vit):
    """min_seconds=0 used to stop after a single timed call, and p50/p90/p99 were that call."""
    from lsegrt.backends.base import Encoder

    timing = bench.Timing(warmup_iters=0, warmup_seconds=0.0, min_seconds=0.0, copy_iters=1)
    with Encoder.open("torch", checkpoint=tiny_vit) as enc:
        measured = bench.measure(enc, tiny_vit, 32, 32, 1, timing)
    assert timing.min_iters == 5 and measured["iters"] == 5
    for bad in ({"min_iters": 1}, {"min_iters": 5, "max_iters": 4}, {"warmup_seconds": float("inf")}):
        with pytest.raises(LsegError):
            bench.Timing(**bad)


def test_failures_are_recorded_and_the_sweep_goes_on(tiny_vit):
    recs = list(bench.sweep([tiny_vit], ["tensorrt", "torch"], ["fp32"], [(64, 64)], [1], "cpu", timing=FAST))
    assert [r.status for r in recs] == ["error", "ok"]
    failed = recs[0]
    assert failed.error and "\n" not in failed.error
    assert failed.iters is None and failed.host_ms is None and failed.input_mb > 0
    assert list(failed.to_dict()) == list(bench.FIELDS)


def test_inputs_are_distinct_normalized_random_images(tiny_vit):
    xs = bench.make_inputs(tiny_vit, 2, 64, 64, torch.device("cpu"), 3)
    assert len(xs) == 3 and all(x.shape == (2, 3, 64, 64) for x in xs)
    assert not torch.equal(xs[0], xs[1]) and not torch.equal(xs[0][0], xs[0][1])
    for x in xs:
        assert x.std() > 0.3 and x.min() >= -1.0 and x.max() <= 1.0  # ViT normalization: [-1, 1]


def test_sizes_and_bad_inputs():
    assert bench.square_sizes(["384", "480x640", "384"]) == [(384, 384), (480, 640)]
    with pytest.raises(LsegError, match="multiples of 32"):
        bench.square_sizes(["400"])
    with pytest.raises(LsegError, match="checkpoint not found"):
        bench.check_model_specs(["/nonexistent/x.ckpt"])
    with pytest.raises(LsegError, match="batch"):
        next(bench.sweep(["random:vit_tiny"], ["torch"], ["fp32"], [(64, 64)], [0], "cpu"))
    with pytest.raises(LsegError, match="random:VARIANT"):
        bench.check_model_specs(["random:vit_tiny:seedx"])
    with pytest.raises(LsegError, match="unknown variant"):
        bench.check_model_specs(["random:vit_huge"])


# -- outputs -----------------------------------------------------------------------------------------
def test_json_csv_and_plot(records, tmp_path):
    from lsegrt.environment import measurement_environment

    env = measurement_environment("cpu")
    paths = bench.write_outputs(records, env, {"note": "test"}, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["environment"]["device"] == "cpu" and "torch" in data["environment"]["packages"]
    assert data["fields"] == bench.FIELDS and len(data["records"]) == 4
    for rec in data["records"]:
        for name, spec in bench.FIELDS.items():
            _check_type(name, rec[name], spec)
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and list(rows[0]) == list(bench.FIELDS)
    assert float(rows[0]["host_ms_p50"]) == pytest.approx(records[0].host_ms.p50)
    assert rows[0]["gpu_ms_p50"] == "" and json.loads(rows[0]["encoder"])["backend"] == "torch"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_plot_when_everything_failed(tiny_vit, tmp_path):
    recs = list(bench.sweep([tiny_vit], ["tensorrt"], ["fp32"], [(64, 64)], [1], "cpu", timing=FAST))
    paths = bench.write_outputs(recs, {"device": "cpu"}, {}, tmp_path)
    assert paths["png"] is None and paths["json"].exists() and paths["csv"].exists()


def test_candidates_run_in_order_with_their_own_options_and_a_speedup_against_the_first(tiny_vit):
    from lsegrt.backends.base import parse_candidate

    cands = [parse_candidate("torch"), parse_candidate("compile:fp32:overlap=true"), parse_candidate("torch:fp32")]
    recs = list(bench.sweep([tiny_vit], [], [], [(64, 64)], [1, 2], "cpu", timing=FAST, candidates=cands))
    assert [(r.candidate, r.batch) for r in recs] == [
        ("torch:fp32", 1), ("torch:fp32", 2), ("compile:fp32:overlap=true", 1), ("compile:fp32:overlap=true", 2),
        ("torch:fp32", 1), ("torch:fp32", 2)]
    assert all(r.ok for r in recs), [r.error for r in recs]
    assert recs[2].encoder["options"]["overlap"] is True and recs[2].backend == "compile"
    base = {r.batch: r.latency_ms for r in recs[:2]}
    for r in recs:
        assert r.speedup_vs_first == pytest.approx(base[r.batch] / r.latency_ms)
    assert recs[0].speedup_vs_first == 1.0
    assert bench.count_configs([tiny_vit], [], [], [(64, 64)], [1, 2], cands) == 6
    assert "candidate" in bench.FIELDS and bench.FIELDS["speedup_vs_first"] == "float?"
