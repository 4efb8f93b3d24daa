"""A side branch in row strips (lsegrt.model.strips, the compile backend's ``strip_pixels``): the same output as
in one piece, for every strip size down to one row, and only the branches beside the backbone cut."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lsegrt.model.branches import split_encoder
from lsegrt.model.decoder import ResidualConvUnit
from lsegrt.model.strips import in_strips, row_halo, strip_bounds


@pytest.mark.parametrize("height, width, pixels, expected", [
    (8, 4, 8, [(0, 2), (2, 4), (4, 6), (6, 8)]),
    (7, 4, 12, [(0, 3), (3, 6), (6, 7)]),  # the last strip shorter
    (8, 4, 32, [(0, 8)]),  # fits
    (8, 4, 0, [(0, 8)]),  # off
    (3, 100, 10, [(0, 1), (1, 2), (2, 3)]),  # at least one row a strip
])
def test_strip_bounds_cover_every_row_once(height, width, pixels, expected):
    assert strip_bounds(height, width, pixels) == expected


def test_row_halo_sums_the_reach_of_each_convolution():
    project = nn.Conv2d(4, 8, 3, padding=1)
    assert row_halo(project, ResidualConvUnit(8)) == 3  # layerK_rn's 3×3, then the unit's two
    assert row_halo(project, None) == 1 and row_halo(nn.Conv2d(4, 4, 1)) == 0
    assert row_halo(nn.Conv2d(4, 4, 5, padding=4, dilation=2)) == 4
    with pytest.raises(ValueError, match="stride-1"):
        row_halo(nn.Conv2d(4, 4, 3, stride=2, padding=1))


@pytest.mark.parametrize("height, width, pixels", [(9, 5, 5), (9, 5, 10), (16, 8, 8), (5, 7, 14), (6, 6, 36)])
def test_a_branch_in_strips_computes_what_it_computes_whole(height, width, pixels):
    torch.manual_seed(0)
    project, unit = nn.Conv2d(4, 6, 3, padding=1, bias=False), ResidualConvUnit(6)
    for bn in (unit.bn1, unit.bn2):  # eval-mode statistics that are not the identity
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    branch = nn.Sequential(project, unit).double().eval()
    x = torch.randn(2, 4, height, width, dtype=torch.float64)
    with torch.inference_mode():
        for layout in (torch.contiguous_format, torch.channels_last):
            xl = x.contiguous(memory_format=layout)
            torch.testing.assert_close(in_strips(branch, xl, row_halo(project, unit), pixels), branch(xl),
                                       rtol=0, atol=1e-12)


def test_too_small_a_halo_shows():
    """The check above can fail: one row of halo where the branch reads three changes the rows at the cuts."""
    torch.manual_seed(0)
    branch = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), ResidualConvUnit(6)).double().eval()
    x = torch.randn(1, 4, 12, 5, dtype=torch.float64)
    with torch.inference_mode():
        assert not torch.allclose(in_strips(branch, x, 1, 20), branch(x))


@pytest.mark.parametrize("model", ["tiny_vit", "tiny_rn"])
def test_split_encoder_cuts_only_the_branches_beside_the_backbone(model, request):
    enc = request.getfixturevalue(model).net.image_encoder().eval()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = enc(x)
        split = split_encoder(enc, strip_pixels=24)  # one row a strip on the first tap's 16×24 map
        assert [b.strip_pixels for b in split.branches] == [24, 24, 24, 0]
        assert [b.halo for b in split.branches] == [3, 3, 3, 0]
        torch.testing.assert_close(split(x), ref, rtol=1e-5, atol=1e-6)
