"""The compile backend's typed options, and saved builds: built once (CLI, its own Inductor cache), then
opened in a fresh process whose Inductor graph caches are empty, so every hit comes from the file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import lsegrt
from lsegrt.backends.compiled import CompileOptions, build_request, saved_build_intact
from lsegrt.errors import LsegError


# -- options ---------------------------------------------------------------------------------------
def test_unknown_options_and_bad_values_are_refused():
    with pytest.raises(LsegError, match="unknown option.*foo.*valid: cuda_graph"):
        CompileOptions.parse({"foo": 1})
    for key, value, expect in [("dynamic", "maybe", "true or false"), ("mode", "bogus", "reduce-overhead"),
                               ("autotune", "all", "off, gemm"),
                               ("sdpa", "fa3", "cudnn"), ("tf32", "yes", "true or false")]:
        with pytest.raises(LsegError, match=f"{key}=.*{expect}"):
            CompileOptions.parse({key: value})
    with pytest.raises(LsegError, match="unknown option"):
        lsegrt.Encoder.open("compile", variant="vit_tiny", freezin=True)


def test_options_default_to_stock_and_map_to_inductor_settings():
    stock = CompileOptions.parse({})
    assert (stock.freezing, stock.autotune, stock.sdpa, stock.inductor_options()) == (False, "off", "auto", None)
    tuned = CompileOptions.parse({"freezing": True, "autotune": "gemm", "cuda_graph": True})
    opts = tuned.inductor_options()
    assert opts["freezing"] and opts["max_autotune_gemm"] and opts["triton.cudagraphs"]  # the mode survives
    assert opts["max_autotune_conv_backends"] == "ATEN" and "coordinate_descent_tuning" not in opts
    assert opts["test_configs.autotune_choice_desc_regex"].startswith("^$|")  # cuBLAS + the six tiles
    assert "test_configs.autotune_choice_desc_regex" not in CompileOptions.parse(
        {"autotune": "gemm-full"}).inductor_options()
    assert CompileOptions.parse({"channels_last": True}).inductor_options() == {"force_layout_optimization": True}
    assert tuned.record()["mode"] == "reduce-overhead" and tuned.record()["autotune"] == "gemm"


def test_gemm_tile_filter_matches_inductors_descriptions():
    import re

    from lsegrt.backends.compiled import gemm_tiles_regex

    # descriptions as torch 2.11's Inductor printed them on the H200 (tools/issue9_probe.py, probe 2)
    kept = ("ACC_TYPE='tl.float32', ALLOW_TF32=False, BLOCK_K=64, BLOCK_M=64, BLOCK_N=128, EVEN_K=True, GROUP_M=8, "
            "USE_FAST_ACCUM=False, num_stages=3, num_warps=4")
    assert re.search(gemm_tiles_regex(), kept) and re.search(gemm_tiles_regex(), "")  # "" = cuBLAS choices
    assert not re.search(gemm_tiles_regex(), kept.replace("num_warps=4", "num_warps=8"))
    assert not re.search(gemm_tiles_regex(), kept.replace("BLOCK_N=128", "BLOCK_N=256"))


def test_one_process_serves_more_shapes_than_dynamos_default_limit():
    """Every distinct static shape is one Dynamo entry of the model's forward, shared by all compile
    encoders of a process: at Dynamo's limit the next shape was a hard failure (FailOnRecompileLimitHit).
    Here the limit is 1 and an encoder still compiles two new shapes."""
    import torch._dynamo

    # Dynamo's own patch (pytest's monkeypatch deletes a config entry when it undoes)
    with torch._dynamo.config.patch(recompile_limit=1):
        enc = lsegrt.Encoder.open("compile", variant="vit_tiny", device="cpu", precision="fp32")
        for h, w in ((32, 160), (160, 32)):  # sizes no other test compiles
            assert enc(torch.randn(1, 3, h, w)).shape == (1, 512, h // 2, w // 2)
    assert torch._dynamo.config.recompile_limit == 8


# -- saved builds ----------------------------------------------------------------------------------
def _build(root: Path, *extra: str) -> Path:
    """`lsegrt build --backend compile` of vit_tiny (CPU, fp32, 1x64x64) in a subprocess with its own
    Inductor cache → the file."""
    out, cache = root / "tiny.compiled", root / "inductor-build"
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "LSEGRT_CACHE": str(root / "lsegrt")}
    cmd = [sys.executable, "-m", "lsegrt", "build", "--backend", "compile", "--variant", "vit_tiny", "--device", "cpu",
           "--precision", "fp32", "--shape", "1x64x64", *extra, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "built in" in proc.stdout
    return out


@pytest.fixture(scope="module")
def saved_build(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("compiled"))


def _first_call_in_a_fresh_process(out: Path, tmp: Path, options: dict, tol: float = 1e-4,
                                   other_shape: bool = False) -> dict:
    """Open the saved build in a new process with an empty Inductor cache, so that graphs and C++ kernels
    can only come from the saved files; run one call; its counters, error and first-call seconds. Every
    kernel library in that cache after it must be one the build saved: no kernel was compiled.
    ``other_shape``: then a shape the build does not hold, compiled in that process (its error checked)."""
    import zipfile

    fresh = tmp / "inductor-load"
    fresh.mkdir()
    code = textwrap.dedent(f"""
        import json, time, torch, lsegrt
        from torch._dynamo.utils import counters
        t = time.perf_counter()
        model = lsegrt.random_model("vit_tiny")
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        enc = lsegrt.Encoder.open("compile", checkpoint=model, engine={str(out)!r}, **{options!r})
        y = enc(x)
        first_s = time.perf_counter() - t
        err = float((y - model.encode_image(x)).abs().max())
        first = {{"first_s": first_s, "err": err, "inductor": dict(counters["inductor"]),
                 "aot": dict(counters["aot_autograd"]), "dynamo_cache": dict(counters["dynamo_cache"]),
                 "engine": enc.describe().get("engine")}}
        first["libs"] = [p.relative_to({str(fresh)!r}).as_posix() for p in __import__("pathlib").Path({str(fresh)!r}).rglob("*.so")]
        if {other_shape!r}:  # not in the build: traced and compiled here, after the build's code was installed
            x2 = torch.randn(1, 3, 96, 64, generator=torch.Generator().manual_seed(2))
            first["err_other_shape"] = float((enc(x2) - model.encode_image(x2)).abs().max())
        print(json.dumps(first))
    """)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(fresh)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["err"] < tol and result["engine"] == str(out)
    assert result.get("err_other_shape", 0) < tol
    assert (fresh / "aotautograd").exists() or (fresh / "fxgraph").exists()  # populated from the file
    with zipfile.ZipFile(out.with_name(out.name + ".cpp-kernels.zip")) as zf:
        saved = set(zf.namelist())
    libs = set(result["libs"])
    # the only libraries built here: Inductor's probes of which vector ISA this CPU runs (marked
    # `.load_ok`), which must be this machine's own, never a build's
    probes = {p.relative_to(fresh).as_posix().removesuffix(".load_ok") for p in fresh.rglob("*.so.load_ok")}
    assert saved <= libs and libs - saved == probes, (sorted(libs - saved - probes), sorted(saved - libs))
    return result


@pytest.mark.slow
def test_saved_build_records_what_it_was_built_for(saved_build):
    out = saved_build
    side = json.loads(Path(str(out) + ".json").read_text())
    req, info = side["request"], side["info"]
    assert req["backend"] == "compile" and req["precision"] == "fp32" and req["variant"] == "vit_tiny"
    assert req["torch"] == torch.__version__ and req["device_type"] == "cpu" and req["shapes"] == [[1, 64, 64]]
    assert req["checkpoint_sha256"] == lsegrt.random_model("vit_tiny").sha256
    assert req["options"]["freezing"] is False and req["options"]["mode"] == "default"
    assert req["options"]["dynamo_cache"] is True and side["info"]["artifacts"]["precompile"] == 1
    assert info["artifact_bytes"] == out.stat().st_size and saved_build_intact(out)
    kernels = out.with_name(out.name + ".cpp-kernels.zip")  # the CPU's C++ kernels, bound like the file
    assert info["cpp_kernels"] >= 1 and side["contents"]["data_files"][kernels.name]["bytes"] == kernels.stat().st_size
    assert info["artifacts"]["inductor"] >= 1 and info["compile"][0]["compile_seconds"] > 0


@pytest.mark.slow
def test_saved_build_runs_in_a_fresh_process_without_tracing_or_recompiling(saved_build, tmp_path):
    """Dynamo's traced code comes from the file (dynamo_cache, a saved build's default): the first call neither
    traces (no AOTAutograd lookup at all) nor compiles; a shape the build lacks still compiles there."""
    result = _first_call_in_a_fresh_process(saved_build, tmp_path, {}, other_shape=True)
    assert result["dynamo_cache"] == {"dynamo_cache_hit": 1}, result
    assert result["aot"].get("total", 0) == 0 and not result["inductor"].get("fxgraph_cache_miss"), result


@pytest.mark.slow
def test_saved_build_without_dynamo_cache_loads_the_compiler_caches(tmp_path):
    """dynamo_cache=false: Dynamo traces in the new process, and every graph comes from the file's caches."""
    (tmp_path / "build").mkdir()
    out = _build(tmp_path / "build", "--option", "dynamo_cache=false")
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["request"]["options"]["dynamo_cache"] is False and side["info"]["artifacts"]["precompile"] == 0
    result = _first_call_in_a_fresh_process(out, tmp_path, {"dynamo_cache": False})
    assert not result["dynamo_cache"] and result["aot"].get("autograd_cache_miss", 0) == 0, result
    assert result["aot"].get("autograd_cache_hit", 0) + result["inductor"].get("fxgraph_cache_hit", 0) >= 1, result


@pytest.mark.slow
def test_saved_fast_build_loads_every_piece_in_a_fresh_process(tmp_path):
    """fast=true compiles the encoder as pieces (4 segments, 4 branches, a tail): all come from the file."""
    (tmp_path / "build").mkdir()
    out = _build(tmp_path / "build", "--option", "fast=true")
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["request"]["options"]["overlap"] is True and side["info"]["artifacts"]["inductor"] >= 5
    assert side["info"]["artifacts"]["precompile"] == 10  # each piece's traced code, under its own name
    result = _first_call_in_a_fresh_process(out, tmp_path, {"fast": True}, other_shape=True)
    assert result["dynamo_cache"] == {"dynamo_cache_hit": 10} and result["aot"].get("total", 0) == 0, result


@pytest.mark.slow
def test_saved_flash4_build_loads_in_a_fresh_process(tmp_path):
    """flash4 in bf16 (the CPU runs its op's reference route): the custom op is in the saved graphs and a new
    process runs them from the file."""
    (tmp_path / "build").mkdir()
    out = _build(tmp_path / "build", "--precision", "bf16", "--option", "flash4=true")
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["request"]["options"]["flash4"] is True and side["request"]["precision"] == "bf16"
    result = _first_call_in_a_fresh_process(out, tmp_path, {"flash4": True, "precision": "bf16"}, tol=0.1)
    assert result["dynamo_cache"] == {"dynamo_cache_hit": 1} and result["aot"].get("total", 0) == 0, result


@pytest.mark.slow
@pytest.mark.parametrize("change, expect", [
    ({"precision": "bf16"}, "different request.*precision: 'fp32' → 'bf16'"),
    ({"checkpoint": "seed1"}, "built from random-vit_tiny-seed0 .*not from the given checkpoint"),
    ({"freezing": True}, "different request.*options"),
])
def test_saved_build_refuses_another_request(saved_build, change, expect):
    out = saved_build
    seed = 1 if change.pop("checkpoint", None) else 0
    model = lsegrt.random_model("vit_tiny", seed=seed)
    with pytest.raises(LsegError, match=expect):
        lsegrt.Encoder.open("compile", checkpoint=model, engine=out, **change)


@pytest.mark.slow
def test_saved_build_refuses_other_torch_and_replaced_bytes(saved_build, tmp_path):
    out = saved_build
    model = lsegrt.random_model("vit_tiny")
    other = tmp_path / "other.compiled"
    shutil.copy(out, other)
    kernels = out.with_name(out.name + ".cpp-kernels.zip")  # the sidecar names it; it must come along
    shutil.copy(kernels, tmp_path / kernels.name)
    side = json.loads(Path(str(out) + ".json").read_text())
    side["request"]["torch"] = "1.0.0"
    Path(str(other) + ".json").write_text(json.dumps(side))
    with pytest.raises(LsegError, match="torch: '1.0.0'"):
        lsegrt.Encoder.open("compile", checkpoint=model, engine=other)
    shutil.copy(Path(str(out) + ".json"), Path(str(other) + ".json"))
    other.write_bytes(out.read_bytes()[:-1] + b"\0")
    assert saved_build_intact(out) and not saved_build_intact(other)  # `lsegrt build` then rebuilds it
    with pytest.raises(LsegError, match="is not the file its sidecar"):
        lsegrt.Encoder.open("compile", checkpoint=model, engine=other)
    shutil.copy(out, other)
    (tmp_path / kernels.name).write_bytes(kernels.read_bytes() + b"\0")  # C++ kernels are code: bound too
    with pytest.raises(LsegError, match="cpp-kernels.zip is not the file its sidecar"):
        lsegrt.Encoder.open("compile", checkpoint=model, engine=other)
    Path(str(other) + ".json").unlink()
    with pytest.raises(LsegError, match="no sidecar"):
        lsegrt.Encoder.open("compile", checkpoint=model, engine=other)


@pytest.mark.slow
def test_build_cli_keeps_an_up_to_date_build(saved_build, run_cli):
    out = saved_build
    before = out.stat().st_mtime_ns
    code, stdout, err = run_cli("build", "--backend", "compile", "--variant", "vit_tiny", "--device", "cpu",
                                "--precision", "fp32", "--shape", "1x64x64", "--out", out)
    assert code == 0, err
    assert "up to date" in stdout and out.stat().st_mtime_ns == before
    code, _, err = run_cli("build", "--backend", "compile", "--variant", "vit_tiny", "--device", "cpu",
                           "--option", "autotune=sometimes", "--out", out)
    assert code == 2 and "autotune='sometimes'" in err and len(err.strip().splitlines()) == 1


def test_build_request_names_shapes_only_when_given():
    model = lsegrt.random_model("vit_tiny")
    opts = CompileOptions.parse({})
    assert "shapes" not in build_request(model, "fp32", torch.device("cpu"), opts)
    assert build_request(model, "fp32", torch.device("cpu"), opts, [(2, 64, 96)])["shapes"] == [[2, 64, 96]]


def test_cudnn_benchmark_is_on_for_the_call_only(monkeypatch):
    from lsegrt.backends.compiled import call_scope

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    with call_scope(CompileOptions.parse({"cudnn_benchmark": True})):
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark is False  # restored
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    with call_scope(CompileOptions.parse({})):  # stock leaves the user's setting alone
        assert torch.backends.cudnn.benchmark is True
    assert CompileOptions.parse({"fast": True}).cudnn_benchmark is False  # opt-in, not in the bundle


@pytest.mark.slow
def test_a_build_carries_flash4s_kernels_and_opening_it_puts_them_back(fake_flash4, tmp_path, monkeypatch):
    """FlashAttention-4's compiled kernels (object files in its own cache) are bound by the sidecar like the
    build's other files and restored where FA4 looks before the first call, so a new process loads them."""
    from lsegrt.backends.compiled import build_compiled

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    kernel = fake_flash4.compile(("fwd", 64, 17), data=b"FA4 kernel")  # what the model's calls compiled
    model, out = lsegrt.random_model("vit_tiny"), tmp_path / "tiny.compiled"
    info = build_compiled(model, out, precision="fp32", device="cpu", shapes=((1, 32, 32),))
    carried = out.with_name(out.name + ".flash4-kernels.zip")
    side = json.loads(Path(str(out) + ".json").read_text())
    assert info["flash4_kernels"] == 1 and carried.name in side["contents"]["data_files"]
    kernel.unlink()  # a machine new to the build
    lsegrt.Encoder.open("compile", checkpoint=model, engine=out, precision="fp32").close()
    assert kernel.read_bytes() == b"FA4 kernel"
    kernel.unlink()
    carried.write_bytes(carried.read_bytes() + b"\0")  # native code: bound by the sidecar like the file
    with pytest.raises(LsegError, match="flash4-kernels.zip is not the file its sidecar"):
        lsegrt.Encoder.open("compile", checkpoint=model, engine=out, precision="fp32")
    assert not kernel.exists()


@pytest.mark.slow
def test_an_opened_build_keeps_other_encoders_of_its_code_out_until_closed(saved_build):
    """A build's installed code would run for any encoder of the same code objects: one with other options is
    refused while the build is open, and welcome once it is closed."""
    model = lsegrt.random_model("vit_tiny")
    enc = lsegrt.Encoder.open("compile", checkpoint=model, engine=saved_build)
    twin = lsegrt.Encoder.open("compile", checkpoint=model, engine=saved_build)  # the same request: allowed
    with pytest.raises(LsegError, match="runs a saved build's traced code"):
        lsegrt.Encoder.open("compile", checkpoint=model, fold=True)
    enc.close()
    with pytest.raises(LsegError, match="runs a saved build's traced code"):  # the twin still runs it
        lsegrt.Encoder.open("compile", checkpoint=model, fold=True)
    twin.close()
    lsegrt.Encoder.open("compile", checkpoint=model, fold=True).close()
