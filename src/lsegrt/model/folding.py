"""Exact re-associations of the decoder's 1×1 convolutions (the compile backend's ``fold`` option).

Two places where LSeg applies a linear map to more data than it needs to; each rewrite computes the
same function (equal up to floating-point rounding; fidelity measured in docs/BENCHMARKS.md):

- refinenet4 … refinenet2: the 1×1 ``out_conv`` commutes with the ×2 bilinear upsampling before it
  (both linear; each output pixel's bilinear weights sum to one, so the bias commutes too). Run at the
  lower resolution it costs a quarter.
- refinenet1's ``out_conv`` and ``head1`` are two 1×1 convolutions with nothing between them: one
  256→512 convolution.

refinenet1 keeps its upsampling before that merged head. Moved after it (a 512-channel upsampling
feeding the L2 norm), Inductor fused the upsampling into the norm's reduction: one kernel of 0.49 ms at
384² on an H200, against 0.07 ms for the head and norm as they were (docs/BENCHMARKS.md). With
``upsample_norm`` it is moved after it all the same, and the upsampling, the head's bias and the norm
run as one kernel of lsegrt's own (:mod:`lsegrt.model.upsample_norm`).

:func:`fold_linear_maps` edits a private copy in place: the merged head changes the copy's state dict,
so it is only for the graph a backend serves.
"""

from __future__ import annotations

import torch
from torch import nn

from .decoder import Scratch
from .upsample_norm import UpsampleNormHead


def merged_head(out_conv: nn.Conv2d, head: nn.Conv2d) -> nn.Conv2d:
    """``head ∘ out_conv`` (two 1×1 convolutions with biases, as LSeg's are) as one, in their dtype and on
    their device; the product is formed in float64 and rounded once."""
    w_o, w_h = out_conv.weight.double().flatten(1), head.weight.double().flatten(1)
    conv = nn.Conv2d(w_o.shape[1], w_h.shape[0], 1).to(device=head.weight.device, dtype=head.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_((w_h @ w_o).reshape(conv.weight.shape))
        conv.bias.copy_(w_h @ out_conv.bias.double() + head.bias.double())
    return conv


def fold_linear_maps(encoder: nn.Module, upsample_norm: bool = False) -> nn.Module:
    """Apply both rewrites to every decoder in ``encoder`` (an ImageEncoder or a module holding one), in
    place; with ``upsample_norm`` the merged head also moves before refinenet1's upsampling, into an
    :class:`~lsegrt.model.upsample_norm.UpsampleNormHead`. A second call changes nothing."""
    for sc in [m for m in encoder.modules() if isinstance(m, Scratch)]:
        for block in (sc.refinenet4, sc.refinenet3, sc.refinenet2):
            block.conv_first = True
        block = sc.refinenet1
        if isinstance(sc.head1, nn.Conv2d):
            block.out_conv = merged_head(block.out_conv, sc.head1)
            sc.head1 = nn.Identity()
        if upsample_norm and not block.head_upsamples:
            sc.head1 = UpsampleNormHead(block.out_conv)
            block.out_conv = nn.Identity()
            block.conv_first = block.head_upsamples = True
    return encoder
