"""`pos_cache`: the ViT position embedding resized once per input size, outside the compiled graph."""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters

import lsegrt
from lsegrt.backends.compiled import CompileOptions
from lsegrt.errors import LsegError
from lsegrt.model.vit import ViTTrunk, pos_cache_trunks


def _trunk(model) -> ViTTrunk:
    return next(m for m in model.net.modules() if isinstance(m, ViTTrunk))


def test_the_cached_embedding_is_the_resized_one_and_embed_gives_the_same_tokens(tiny_vit):
    trunk = copy.deepcopy(_trunk(tiny_vit)).eval()
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = trunk.embed(x)[0]
        trunk.cache_pos_embed(64, 96)
        assert trunk.pos_embeds == {}  # the switch is off: nothing cached
        trunk.pos_cache = True
        trunk.cache_pos_embed(64 + 15, 96 + 3)  # pixels past the last full patch do not change the grid
        p = trunk.patch_embed.proj.stride[0]
        assert list(trunk.pos_embeds) == [(64 // p, 96 // p)]
        torch.testing.assert_close(trunk.pos_embeds[(64 // p, 96 // p)], trunk.resized_pos_embed(64 // p, 96 // p),
                                   rtol=0, atol=0)
        torch.testing.assert_close(trunk.embed(x)[0], before, rtol=0, atol=0)
        # a size never cached is interpolated in the call, as before
        y = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
        trunk.pos_cache = False
        plain = trunk.embed(y)[0]
        trunk.pos_cache = True
        torch.testing.assert_close(trunk.embed(y)[0], plain, rtol=0, atol=0)
    assert ViTTrunk.pos_cache is False and _trunk(tiny_vit).pos_embeds == {}  # the caller's model untouched


def test_the_embedding_is_used_not_recomputed(tiny_vit):
    """embed reads the cached tensor: a (deliberately) different cached value shows in the tokens."""
    trunk = copy.deepcopy(_trunk(tiny_vit)).eval()
    trunk.pos_cache = True
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        trunk.cache_pos_embed(64, 64)
        base = trunk.embed(x)[0]
        key = next(iter(trunk.pos_embeds))
        trunk.pos_embeds[key] = trunk.pos_embeds[key] + 1.0
        torch.testing.assert_close(trunk.embed(x)[0], base + 1.0)


def test_the_compile_backend_caches_each_size_once_and_compiles_each_size_once(tiny_vit):
    sizes = [(64, 96), (64, 64), (64, 96)]
    inputs = [torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h + w)) for h, w in sizes]
    ref = lsegrt.Encoder.open("torch", checkpoint=tiny_vit)
    counters.clear()
    with lsegrt.Encoder.open("compile", checkpoint=tiny_vit, pos_cache=True) as enc:
        assert enc.describe()["options"]["pos_cache"] is True
        for x in inputs:
            torch.testing.assert_close(enc(x), ref(x), rtol=1e-4, atol=1e-4)
        (trunk,) = enc.pos_trunks
        assert sorted(trunk.pos_embeds) == [(4, 4), (4, 6)]
    # two sizes, two graphs: adding the second size's embedding did not recompile the first
    assert counters["stats"]["unique_graphs"] == 2


def test_pos_cache_is_a_switch_of_the_private_copy_and_not_dynamic(tiny_vit, tiny_rn):
    from lsegrt.backends.compiled import served_module

    served = served_module(tiny_vit, "fp32", torch.device("cpu"), CompileOptions.parse({"pos_cache": True}))
    assert len(pos_cache_trunks(served)) == 1
    assert pos_cache_trunks(served_module(tiny_vit, "fp32", torch.device("cpu"), CompileOptions.parse({}))) == []
    assert pos_cache_trunks(served_module(tiny_rn, "fp32", torch.device("cpu"),
                                          CompileOptions.parse({"pos_cache": True}))) == []  # no ViT, nothing to do
    with pytest.raises(LsegError, match="pos_cache=true .* cannot be dynamic"):
        CompileOptions.parse({"pos_cache": True, "dynamic": True})
