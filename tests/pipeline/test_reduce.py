"""Reduce stage: what a frame stores does not depend on the other frames of its batch."""

from __future__ import annotations

import torch

from lsegrt.pipeline.pca import PcaBasis
from lsegrt.pipeline.reduce import ReduceSpec, reduce_batch


def test_outputs_do_not_depend_on_batch_composition():
    # Shards, torchrun ranks, Ray actors and resumed runs put a frame into different batches; the
    # stored bytes must still be the same (batched GEMMs change the last bits with the batch).
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(6, 512, 16, 12, generator=g), dim=1)
    comps = torch.linalg.qr(torch.randn(512, 8, generator=g))[0].T.contiguous()
    basis = PcaBasis(0.01 * torch.randn(512, generator=g), comps, torch.ones(8), 8.0)
    text = torch.nn.functional.normalize(torch.randn(3, 512, generator=g), dim=1)
    spec = ReduceSpec(features=True, dtype=torch.float32, stride=2, pca=basis, text=text, labels=True, scores=True)
    hw0 = [(40, 30)] * 6
    whole = reduce_batch(feats, 6, hw0, spec)
    for start, n in ((0, 1), (2, 3), (5, 1), (1, 4)):
        part = reduce_batch(feats[start:], n, hw0[start:], spec)
        for name in ("features", "scores"):
            assert torch.equal(whole[name][start:start + n], part[name]), (name, start, n)
        for i in range(n):
            assert torch.equal(whole["labels"][start + i], part["labels"][i])
    assert whole["features"].shape == (6, 8, 8, 6) and whole["scores"].shape == (6, 3, 8, 6)
