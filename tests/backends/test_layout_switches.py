"""`weights_channels_last` and `readout_split`: switches on the compile backend's private copy that change
where weights live and how the ViT readout is computed, never the encoder's output."""

from __future__ import annotations

import pytest
import torch

import lsegrt
from lsegrt.backends.compiled import CompileOptions, served_module
from lsegrt.errors import LsegError
from lsegrt.model.vit import PatchEmbed, ProjectReadout

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
    for m, patch in convs:
        cl = m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
        assert cl != patch or m.weight.shape[-2:] == (1, 1), m  # 1×1 weights are both layouts at once
    # the caller's model is untouched: the switch works on the backend's private copy
    assert all(m.weight.is_contiguous() for m, _ in _convs(tiny_model.net))


def test_readout_split_matches_the_concatenated_readout():
    readout = ProjectReadout(32).eval()
    tokens = torch.randn(3, 1 + 20, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = readout(tokens)
        readout.split = True
        torch.testing.assert_close(readout(tokens), whole, rtol=1e-5, atol=1e-5)
    assert ProjectReadout.split is False


@pytest.mark.parametrize("options", [{"weights_channels_last": True, "channels_last": True},
                                     {"readout_split": True},
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
