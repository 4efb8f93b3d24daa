"""`weights_channels_last`, `readout_split` and `deconv_gemm`: switches on the compile backend's private copy
that change where weights live and how the ViT readout and reassembly are computed, never the encoder's
output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lsegrt
from lsegrt.backends.compiled import CompileOptions, served_module
from lsegrt.errors import LsegError
from lsegrt.model.vit import PatchEmbed, ProjectReadout, Reassemble, deconv_as_gemm, gemm_shaped

CPU = torch.device("cpu")


def _convs(module):
    patch = {id(p) for m in module.modules() if isinstance(m, PatchEmbed) for p in m.parameters()}
    return [(m, id(m.weight) in patch) for m in module.modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


def test_weights_channels_last_stores_every_convolution_weight_so_but_the_patch_embeddings(tiny_model):
    opts = CompileOptions.parse({"channels_last": True, "weights_channels_last": True})
    served = served_module(tiny_model, "fp32", CPU, opts)
    convs = _convs(served)
    assert sum(not patch for _, patch in convs) >= 8  # the decoder's at least (and a ResNet's backbone)
    assert any(m.weight.shape[-2:] == (1, 1) for m, patch in convs if not patch)
    for m, patch in convs:
        o, i, kh, kw = m.weight.shape
        exact = m.weight.stride() == (i * kh * kw, 1, kw * i, i)  # 1×1 kernels too, size-1 dimensions included
        assert exact != patch, m
        assert patch or m.weight.is_contiguous(memory_format=torch.channels_last)
    # the caller's model is untouched: the switch works on the backend's private copy
    assert all(m.weight.is_contiguous() for m, _ in _convs(tiny_model.net))


def test_a_1x1_convolution_on_a_stride_0_batch_view_stays_channels_last_with_the_stored_weight():
    """Inductor hands the reassemble's 1×1 convolution the transposed token map as a view whose size-1 batch has
    stride 0. With the weight's NCHW strides (what contiguous(channels_last) leaves a 1×1 kernel) PyTorch picks
    NCHW for the convolution on CUDA (cuDNN then copies the input, and the output needs converting back); with
    exact channels-last strides it stays channels-last. Fake CUDA tensors: the same rule, no GPU needed."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from lsegrt.backends.compiled import channels_last_exactly

    with FakeTensorMode():
        taps = torch.empty_strided((1, 64, 8, 8), (0, 1, 512, 64), device="cuda", dtype=torch.float16)
        weight = torch.empty(16, 64, 1, 1, device="cuda", dtype=torch.float16)
        loose = weight.contiguous(memory_format=torch.channels_last)
        assert loose.stride() == weight.stride()  # unchanged: the layouts coincide for a 1×1 kernel
        assert F.conv2d(taps, loose).stride()[1] != 1  # NCHW
        exact = channels_last_exactly(weight)
        assert exact.stride() == (64, 1, 64, 64) and F.conv2d(taps, exact).stride()[1] == 1  # channels-last
    w = torch.randn(16, 64, 1, 1)
    assert torch.equal(channels_last_exactly(w), w) and channels_last_exactly(channels_last_exactly(w)).stride() == (
        64, 1, 64, 64)


def test_readout_split_matches_the_concatenated_readout():
    readout = ProjectReadout(32).eval()
    tokens = torch.randn(3, 1 + 20, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = readout(tokens)
        readout.split = True
        torch.testing.assert_close(readout(tokens), whole, rtol=1e-5, atol=1e-5)
    assert ProjectReadout.split is False


@pytest.mark.parametrize("stride, memory_format", [(4, torch.contiguous_format), (2, torch.channels_last)])
def test_deconv_as_gemm_is_the_transposed_convolution(stride, memory_format):
    g = torch.Generator().manual_seed(stride)
    deconv = torch.nn.ConvTranspose2d(6, 5, stride, stride=stride).double()
    deconv.weight.data = deconv.weight.data.contiguous(memory_format=memory_format)
    x = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.double).contiguous(memory_format=memory_format)
    y = deconv_as_gemm(x, deconv)
    assert y.shape == (2, 5, 3 * stride, 4 * stride) and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, deconv(x), rtol=1e-12, atol=1e-12)


def test_deconv_gemm_only_where_kernel_equals_stride():
    assert gemm_shaped(torch.nn.ConvTranspose2d(4, 4, 2, stride=2))
    assert not gemm_shaped(torch.nn.ConvTranspose2d(4, 4, 4, stride=2))  # overlapping blocks
    assert not gemm_shaped(torch.nn.ConvTranspose2d(4, 4, 2, stride=2, bias=False))
    assert not gemm_shaped(torch.nn.Conv2d(4, 4, 2, stride=2))  # level 4's strided convolution stays
    tokens = torch.randn(1, 1 + 16, 16, generator=torch.Generator().manual_seed(0))
    for level in (1, 2, 4):  # ×4 and ×2 transposed convolutions; level 4's strided convolution as it was
        post = Reassemble(16, 8, level).eval()
        with torch.inference_mode():
            before = post(tokens, 4, 4)
            post.deconv_gemm = True
            torch.testing.assert_close(post(tokens, 4, 4), before, rtol=1e-5, atol=1e-5)
    assert Reassemble.deconv_gemm is False


@pytest.mark.parametrize("options", [{"weights_channels_last": True, "channels_last": True},
                                     {"readout_split": True},
                                     {"deconv_gemm": True},
                                     {"deconv_gemm": True, "fast": True},
                                     {"fast": True}])
def test_the_switches_compile_to_the_encoders_output(tiny_model, options):
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    ref = lsegrt.Encoder.open("torch", checkpoint=tiny_model)(x)
    with lsegrt.Encoder.open("compile", checkpoint=tiny_model, **options) as enc:
        assert all(enc.describe()["options"][k] == v for k, v in options.items())
        torch.testing.assert_close(enc(x), ref, rtol=1e-4, atol=1e-4)


def test_weights_channels_last_needs_channels_last():
    with pytest.raises(LsegError, match="weights_channels_last=true .* needs channels_last=true"):
        CompileOptions.parse({"weights_channels_last": True})
    bundle = CompileOptions.parse({"fast": True})
    assert bundle.weights_channels_last and bundle.readout_split  # measured faster (docs/BENCHMARKS.md)
    # without channels_last the bundle leaves the weights as they are instead of failing
    assert not CompileOptions.parse({"fast": True, "channels_last": False}).weights_channels_last


def test_deconv_gemm_with_fast_keeps_each_shape_right_when_shapes_alternate(tiny_vit):
    """The twelfth session's launch failure came on the second call at a new shape (a CUDA-graph replay) in a
    fidelity run over photos of several sizes; on the CPU the same order of shapes, each called twice,
    must give eager's output every time."""
    g = torch.Generator().manual_seed(2)
    xs = [torch.rand(1, 3, h, w, generator=g) for h, w in ((64, 96), (96, 64), (64, 64))]
    eager = lsegrt.Encoder.open("torch", checkpoint=tiny_vit)
    refs = [eager(x) for x in xs]
    with lsegrt.Encoder.open("compile", checkpoint=tiny_vit, fast=True, deconv_gemm=True) as enc:
        for i in (0, 0, 1, 1, 2, 2, 0, 1):
            torch.testing.assert_close(enc(xs[i]), refs[i], rtol=1e-4, atol=1e-4)


def test_flash4_is_a_switch_and_refused_on_a_gpu_without_its_package(tiny_vit, monkeypatch):
    import lsegrt.backends.compiled as compiled
    from lsegrt.model.vit import Attention

    # `fast` fills it only for a Hopper GPU that imports FA4 (tests/backends/test_options.py)
    assert not CompileOptions.parse({"fast": True}, "vit", "cpu", "fp16").flash4
    opts = CompileOptions.parse({"flash4": True})
    served = compiled.served_module(tiny_vit, "fp32", torch.device("cpu"), opts)
    blocks = [m for m in served.modules() if isinstance(m, Attention)]
    assert blocks and all(m.flash4 for m in blocks)
    monkeypatch.setattr(compiled, "flash4_available", lambda: False)
    compiled.check_packages(opts, torch.device("cpu"))  # the CPU computes the reference route
    with pytest.raises(LsegError, match="flash4=true needs FlashAttention-4's kernels: pip install flash-attn-4"):
        compiled.check_packages(opts, torch.device("cuda"))
    compiled.check_packages(CompileOptions.parse({}), torch.device("cuda"))


def test_quack_qkv_is_a_switch_and_refused_on_a_gpu_without_its_package(tiny_vit, monkeypatch):
    import lsegrt.backends.compiled as compiled
    from lsegrt.model.vit import Attention

    assert not CompileOptions.parse({"fast": True}, "vit", "cuda", "fp16").quack_qkv  # opt-in: not in `fast`
    opts = CompileOptions.parse({"quack_qkv": True})
    served = compiled.served_module(tiny_vit, "fp32", torch.device("cpu"), opts)
    blocks = [m for m in served.modules() if isinstance(m, Attention)]
    assert blocks and all(m.quack_qkv for m in blocks)
    assert not any(m.quack_qkv for m in tiny_vit.net.modules() if isinstance(m, Attention))  # the caller's model
    monkeypatch.setattr(compiled, "quack_available", lambda: False)
    compiled.check_packages(opts, torch.device("cpu"))  # the CPU computes the reference route
    with pytest.raises(LsegError, match="quack_qkv=true needs quack's GEMM: pip install quack-kernels"):
        compiled.check_packages(opts, torch.device("cuda"))
    compiled.check_packages(CompileOptions.parse({}), torch.device("cuda"))
