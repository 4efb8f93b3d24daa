"""Typed backend options: every backend declares them; unknown names and bad values are one-line errors
naming the valid choices, through the API and the CLI (exit 2), before any model is built."""

from __future__ import annotations

import inspect

import pytest
import torch

import lsegrt
from lsegrt.backends.base import REGISTRY, Encoder, backend_class
from lsegrt.errors import LsegError

BACKENDS = list(REGISTRY)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_option_is_refused_naming_the_valid_ones(backend):
    with pytest.raises(LsegError) as exc:
        Encoder.open(backend, variant="vit_tiny", foo="bar")
    msg = str(exc.value)
    assert f"{backend} backend: unknown option foo; its options are: " in msg and "\n" not in msg
    assert all(name in msg for name in backend_class(backend).options)


@pytest.mark.parametrize("backend", BACKENDS)
def test_declared_options_are_what_create_takes(backend):
    """A declaration without an implementation (or the reverse) cannot slip in."""
    from lsegrt.backends.base import Option

    klass = backend_class(backend)
    params = inspect.signature(klass.create).parameters
    taken = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD} - {"checkpoint", "engine", "device",
                                                                             "precision"}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):  # compile: the fields of one typed dataclass
        from lsegrt.backends.compiled import CompileOptions

        assert backend == "compile"
        taken |= set(CompileOptions.names())
    assert taken == set(klass.options)
    assert all(isinstance(o, Option) and o.help for o in klass.options.values())


@pytest.mark.parametrize("backend, options, message", [
    ("compile", {"dynamic": "maybe"}, "option dynamic='maybe': expected true or false"),
    ("compile", {"mode": "bogus"}, "option mode='bogus': expected one of default, reduce-overhead, max-autotune, "
                                   "max-autotune-no-cudagraphs"),
    ("compile", {"tf32": 3}, "option tf32=3: expected true or false"),
    ("torch", {"cuda_graph": "sometimes"}, "option cuda_graph='sometimes': expected true or false"),
    ("onnxruntime", {"providers": "BogusExecutionProvider"}, "expected one of .*CPUExecutionProvider"),
    ("onnxruntime", {"threads": -1}, "option threads=-1: expected an integer ≥ 0"),
    ("onnxruntime", {"opset": "eleven"}, "option opset='eleven': expected an integer ≥ 14"),
    ("aoti", {"max_batch": 0}, "option max_batch=0: expected an integer ≥ 1"),
    ("torch", {"variant": "vit_huge"}, "option variant='vit_huge': expected one of vit_l16, "),
])
def test_bad_values_are_refused_naming_the_choices(backend, options, message):
    with pytest.raises(LsegError, match=message):
        Encoder.open(backend, **{"variant": "vit_tiny", **options})


def test_values_from_the_command_line_are_typed():
    from lsegrt.backends.compiled import CompiledEncoder
    from lsegrt.backends.onnxruntime import OnnxRuntimeEncoder

    got = CompiledEncoder.check_options({"dynamic": "true", "tf32": "off", "mode": "max-autotune"})
    assert got == {"variant": None, "cuda_graph": False, "mode": "max-autotune", "dynamic": True, "tf32": False,
                   "freezing": None, "autotune": None, "coordinate_descent": None, "channels_last": None,
                   "sdpa": None, "overlap": None, "branch_priority": None, "weights_channels_last": None, "readout_split": None,
                   "patch_gemm": None, "gelu_epilogue": None, "fold": None,
                   "cls_key_apart": None, "upsample_norm": None, "pos_cache": None, "shape_padding": None,
                   "pdl": None, "deconv_gemm": None, "cudnn_benchmark": None, "flash4": None, "quack_qkv": None,
                   "dynamo_cache": None, "fast": False}
    got = OnnxRuntimeEncoder.check_options({"providers": "CPUExecutionProvider", "threads": "2"})
    assert got["providers"] == ["CPUExecutionProvider"] and got["threads"] == 2 and got["opset"] == 17


def test_bad_precision_fails_before_a_model_is_built(monkeypatch):
    import lsegrt.api

    monkeypatch.setattr(lsegrt.api, "random_model", lambda *a, **k: pytest.fail("built a model"))
    with pytest.raises(LsegError, match="unknown precision"):
        Encoder.open("torch", precision="fp8")
    with pytest.raises(LsegError, match="unknown option"):
        Encoder.open("torch", bogus=1)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_cuda_graph_without_a_graph_mode_is_accepted_and_reported(backend, tiny_vit, cache_dir):
    """Documented policy: so one option set opens every backend in a sweep; describe() tells the truth."""
    with lsegrt.Encoder.open(backend, checkpoint=tiny_vit, cuda_graph=True) as enc:
        assert enc.describe()["cuda_graph"] is False


@pytest.mark.parametrize("option, message", [
    ("foo=bar", "torch backend: unknown option foo; its options are: cuda_graph, tf32, variant"),
    ("dynamic=true", "torch backend: unknown option dynamic"),
    ("tf32=maybe", "option tf32='maybe': expected true or false"),
])
def test_cli_option_errors_exit_2(tmp_path, run_cli, option, message):
    code, out, err = run_cli("encode", "--variant", "vit_tiny", "--size", "64", "--option", option,
                             "--out", tmp_path / "f.npy")
    assert code == 2 and err.startswith("lsegrt: error:") and err.count("\n") == 1, (out, err)
    assert message in err
    assert not list(tmp_path.iterdir())


def test_cli_bad_mode_names_the_choices(tmp_path, run_cli):
    code, _, err = run_cli("encode", "--variant", "vit_tiny", "--backend", "compile", "--option", "mode=bogus",
                           "--out", tmp_path / "f.npy")
    assert code == 2 and "expected one of default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs" in err


def test_a_shared_option_set_goes_to_the_backends_that_declare_it():
    """bench/compare open several backends with one --option set: each gets what it declares."""
    from lsegrt.backends.base import options_for

    given = {"dynamic": True, "cuda_graph": True, "tf32": False}
    sweep = ["torch", "compile", "tensorrt"]
    assert options_for("torch", given, sweep) == {"cuda_graph": True, "tf32": False}
    assert options_for("compile", given, sweep) == given
    assert options_for("tensorrt", given, sweep) == {"cuda_graph": True, "tf32": False}
    with pytest.raises(LsegError, match="unknown option foo for torch, compile; their options are: autotune, "
                                        "branch_priority, channels_last, cls_key_apart, coordinate_descent, cuda_graph, "
                                        "cudnn_benchmark, deconv_gemm, dynamic, dynamo_cache, fast, flash4, fold, freezing, gelu_epilogue, mode, overlap, patch_gemm, pdl, "
                                        "pos_cache, quack_qkv, readout_split, sdpa, shape_padding, tf32, "
                                        "upsample_norm, variant, weights_channels_last"):
        options_for("torch", {"foo": 1}, ["torch", "compile"])
    with pytest.raises(LsegError, match="unknown option dynamic for torch; their options are: cuda_graph, tf32"):
        options_for("torch", {"dynamic": True}, ["torch"])
    with pytest.raises(LsegError, match="compile backend: option dynamic='maybe'"):
        options_for("torch", {"dynamic": "maybe"}, ["torch", "compile"])


def test_bench_sweep_refuses_an_unknown_option_before_any_work(tiny_vit):
    from lsegrt.bench import sweep

    with pytest.raises(LsegError, match="unknown option foo for torch"):
        next(sweep([tiny_vit], ["torch"], ["fp32"], [(64, 64)], [1], options={"foo": "bar"}))


def test_compare_gives_each_side_its_own_options(tiny_vit, chelsea, cache_dir):
    """The torch reference beside an onnxruntime candidate: `threads` is only the candidate's."""
    from lsegrt import compare as cmp

    report = cmp.compare(tiny_vit, [cmp.Side("onnxruntime")], [("chelsea", chelsea)], [64], options={"threads": 1})
    assert report["passed"], report["pairs"][0]["error"]
    with pytest.raises(LsegError, match="unknown option foo"):
        cmp.compare(tiny_vit, [cmp.Side("onnxruntime")], [("chelsea", chelsea)], [64], options={"foo": 1})


def test_pdl_is_inductors_programmatic_dependent_launch_and_compiles_on_the_cpu(tiny_vit):
    from lsegrt.backends.compiled import CompileOptions

    opts = CompileOptions.parse({"pdl": True})
    assert opts.inductor_options()["triton.enable_pdl"] is True
    assert CompileOptions.parse({}).inductor_options() is None  # stock: mode only
    x = torch.randn(1, 3, 64, 64)
    ref = Encoder.open("torch", checkpoint=tiny_vit)(x)
    with Encoder.open("compile", checkpoint=tiny_vit, pdl=True) as enc:  # PDL code is for CUDA (sm90+) only
        assert enc.describe()["options"]["pdl"] is True
        torch.testing.assert_close(enc(x), ref, rtol=1e-5, atol=1e-5)


def test_pdl_is_refused_where_inductor_cannot_generate_it(monkeypatch):
    import lsegrt.backends.compiled as compiled

    monkeypatch.setattr(compiled, "pdl_supported", lambda: False)
    with pytest.raises(LsegError, match=r"option pdl=true: torch .* has no PDL support"):
        compiled.CompileOptions.parse({"pdl": True, "fast": True})
    assert not compiled.CompileOptions.parse({"fast": True}).pdl  # the bundle asks for it only where it exists


def test_shape_padding_off_reaches_inductor_and_on_stays_stock():
    from lsegrt.backends.compiled import CompileOptions

    off = CompileOptions.parse({"shape_padding": False, "fast": True})
    assert off.inductor_options()["shape_padding"] is False and off.record()["shape_padding"] is False
    assert CompileOptions.parse({}).shape_padding is True  # Inductor's own default, recorded as such
    assert CompileOptions.parse({}).inductor_options() is None  # stock: mode= alone
    assert CompileOptions.parse({"fast": True}, "resnet").inductor_options()["shape_padding"] is False
    assert "shape_padding" not in CompileOptions.parse({"fast": True, "shape_padding": True}).inductor_options()


def test_branch_priority_needs_overlap_and_stays_off_the_pieces(tiny_vit):
    from lsegrt.backends.compiled import CompileOptions

    with pytest.raises(LsegError, match="branch_priority=true .* needs overlap=true"):
        CompileOptions.parse({"branch_priority": True})
    with pytest.raises(LsegError, match="branch_priority=true .* needs overlap=true"):
        CompileOptions.parse({"branch_priority": True, "fast": True, "overlap": False})
    assert CompileOptions.parse({}).branch_priority is False
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ref = lsegrt.Encoder.open("torch", checkpoint=tiny_vit)(x)
    with lsegrt.Encoder.open("compile", checkpoint=tiny_vit, overlap=True, branch_priority=True) as enc:
        assert enc.describe()["options"]["branch_priority"] is True
        torch.testing.assert_close(enc(x), ref, rtol=1e-4, atol=1e-4)


def test_fast_turns_flash4_on_for_fp16_or_bf16_on_a_hopper_gpu_that_imports_it(monkeypatch):
    import lsegrt.backends.compiled as compiled

    gpu = {"capability": (9, 0), "package": True}
    monkeypatch.setattr(compiled.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(compiled.torch.cuda, "get_device_capability", lambda device=None: gpu["capability"])
    monkeypatch.setattr(compiled, "flash4_available", lambda: gpu["package"])

    def flash4(backbone="vit", device="cuda", precision="fp16", **given):
        return compiled.CompileOptions.parse({"fast": True, **given}, backbone, device, precision).flash4

    assert flash4() is True and flash4(precision="bf16") is True and flash4(device="cuda:0") is True
    assert flash4(precision="fp32") is False  # its kernel is fp16/bf16
    assert flash4(device="cpu") is False and flash4(device=None) is False
    assert flash4(backbone="resnet") is False  # no attention
    assert flash4(flash4=False) is False  # the caller's value wins
    assert flash4(device="cpu", flash4=True) is True

    def apart(device="cuda", **given):
        return compiled.CompileOptions.parse({"fast": True, **given}, "vit", device, "fp16").cls_key_apart

    # with FA4 the class key is not taken apart (its merge cost more than FA4's extra key tile)
    assert apart() is False and apart(device="cpu") is True and apart(device="cpu", flash4=True) is False
    assert apart(cls_key_apart=True) is True and apart(flash4=False) is True
    gpu["capability"] = (8, 0)
    assert flash4() is False  # measured on Hopper only
    gpu["capability"] = (10, 0)
    assert flash4() is False
    gpu["capability"], gpu["package"] = (9, 0), False
    assert flash4() is False
    assert compiled.CompileOptions.parse({"flash4": None}, "vit", "cuda", "fp16").flash4 is False  # not fast


def test_fast_caches_the_position_embedding_for_a_vit_only():
    from lsegrt.backends.compiled import FAST, FAST_VIT_ONLY, CompileOptions, pdl_supported

    vit, rn = CompileOptions.parse({"fast": True}, "vit"), CompileOptions.parse({"fast": True}, "resnet")
    stock = CompileOptions.parse({})
    assert FAST_VIT_ONLY == ("pos_cache", "flash4", "deconv_gemm")  # a ResNet: no position embedding, attention
    assert rn.pos_cache == stock.pos_cache is False and vit.pos_cache is True  # or reassemble
    assert rn.deconv_gemm == stock.deconv_gemm is False and vit.deconv_gemm is True
    assert rn.flash4 is vit.flash4 is False  # no device given: not filled (test below)
    for name in set(FAST) - set(FAST_VIT_ONLY):
        want = FAST[name] if name != "pdl" else pdl_supported()
        assert getattr(vit, name) == getattr(rn, name) == want, name
    assert not rn.shape_padding and rn.branch_priority
    assert not vit.shape_padding and vit.pos_cache and vit.branch_priority
    assert vit.inductor_options()["shape_padding"] is False
    # where another option rules one out, the bundle leaves it stock instead of failing
    assert not CompileOptions.parse({"fast": True, "overlap": False}, "vit").branch_priority
    assert not CompileOptions.parse({"fast": True, "overlap": False, "dynamic": True}, "vit").pos_cache
    # the caller's own value wins over the bundle's, for either backbone
    assert CompileOptions.parse({"fast": True, "shape_padding": True}, "vit").shape_padding
    assert CompileOptions.parse({"fast": True, "pos_cache": True}, "resnet").pos_cache


def test_the_compile_backend_fills_fast_for_its_models_backbone(tiny_vit, tiny_rn):
    with lsegrt.Encoder.open("compile", checkpoint=tiny_vit, fast=True) as enc:
        assert enc.describe()["options"]["pos_cache"] is True and enc.pos_trunks
    with lsegrt.Encoder.open("compile", checkpoint=tiny_rn, fast=True) as enc:
        assert enc.describe()["options"]["pos_cache"] is False and not enc.describe()["options"]["shape_padding"]
