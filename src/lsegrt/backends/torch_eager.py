"""`torch` backend: eager PyTorch under inference mode, fp32/fp16/bf16 (the fair baseline)."""

from __future__ import annotations

import torch

from .base import Encoder
from .common import encoder_module, resolve_model


class TorchEncoder(Encoder):
    name = "torch"

    def __init__(self, model, device, precision: str):
        super().__init__(device, precision)
        self.model = model
        self.module = encoder_module(model, precision, self.device)

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cpu", precision="fp32", variant=None,
               cuda_graph=False, **options):
        # cuda_graph is accepted so one option set can open every backend in a sweep; eager has no
        # graph mode and says so in describe() (bench marks such rows).
        from ..errors import LsegError

        if engine is not None:
            raise LsegError("the torch backend runs a checkpoint, not an engine file; use --checkpoint")
        model = resolve_model(checkpoint, device, variant)
        return cls(model, device, precision)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.module(x)

    def describe(self):
        return {**super().describe(), "model": self.model.source, "variant": self.model.variant, "cuda_graph": False}
