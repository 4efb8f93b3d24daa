"""`torch` backend: eager PyTorch under inference mode, fp32/fp16/bf16 (the fair baseline).

Option ``tf32``: unset follows PyTorch's global flags (by default fp32 matmuls are IEEE, cuDNN
convolutions TF32); ``tf32=false`` makes fp32 strict everywhere (the faithful reference),
``tf32=true`` allows TF32 in both. ``cuda_graph`` is accepted so one option set opens every backend in
a sweep; eager has no graph mode and describe() says so (bench marks such rows).
"""

from __future__ import annotations

import torch

from .base import NO_CUDA_GRAPH, Encoder, Option
from .common import check_tf32, encoder_module, resolve_model, tf32_description, tf32_scope


class TorchEncoder(Encoder):
    name = "torch"
    options = {
        **Encoder.options,
        "tf32": Option(bool, None, "TF32 in fp32 matmuls and cuDNN convolutions (unset: PyTorch's global flags)"),
        "cuda_graph": NO_CUDA_GRAPH,
    }

    def __init__(self, model, device, precision: str, tf32: bool | None = None):
        super().__init__(device, precision)
        self.model = model
        self.tf32 = check_tf32(tf32)
        self.module = encoder_module(model, precision, self.device)

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cpu", precision="fp32", variant=None,
               cuda_graph=False, tf32=None):
        from ..errors import LsegError

        if engine is not None:
            raise LsegError("the torch backend runs a checkpoint, not an engine file; use --checkpoint")
        model = resolve_model(checkpoint, device, variant)
        return cls(model, device, precision, tf32)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        with tf32_scope(self.tf32):
            return self.module(x)

    def describe(self):
        return {**super().describe(), "model": self.model.source, "variant": self.model.variant, "cuda_graph": False,
                **tf32_description(self.tf32)}
