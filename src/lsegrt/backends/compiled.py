"""`compile` backend: torch.compile (Inductor) of the image encoder, one specialization per shape.

``cuda_graph=True`` selects Inductor's "reduce-overhead" mode: each input shape is captured once
into a CUDA graph and replayed, which removes the launch gaps that dominate a ViT-L at small sizes.
Shapes are static by default (``dynamic=False``): Inductor tunes kernels for the exact size and a new
size costs one more compile. ``dynamic=True`` compiles once for symbolic batch/H/W (matmuls and convs
are library calls either way), which is what a sweep over many sizes wants. ``tf32`` is as for the
`torch` backend; the flags are in effect when a shape is compiled and captured as well as when it runs.
"""

from __future__ import annotations

import torch

from ..errors import LsegError
from .base import Encoder, Option
from .common import check_tf32, encoder_module, resolve_model, tf32_description, tf32_scope


class CompiledEncoder(Encoder):
    name = "compile"
    options = {
        **Encoder.options,
        "cuda_graph": Option(bool, False, "capture each shape in a CUDA graph (mode reduce-overhead unless given)"),
        "mode": Option(str, None, "torch.compile mode (default: 'default', or 'reduce-overhead' with cuda_graph)",
                       choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")),
        "dynamic": Option(bool, False, "one compile for symbolic batch/H/W instead of one per shape"),
        "tf32": Option(bool, None, "TF32 in fp32 matmuls and cuDNN convolutions (unset: PyTorch's global flags)"),
    }

    def __init__(self, model, device, precision: str, cuda_graph: bool = False, mode: str | None = None,
                 dynamic: bool = False, tf32: bool | None = None):
        super().__init__(device, precision)
        self.tf32 = check_tf32(tf32)
        if cuda_graph and self.device.type != "cuda":
            raise LsegError("--cuda-graph needs a CUDA device")
        self.model = model
        self.cuda_graph = cuda_graph
        self.mode = mode or ("reduce-overhead" if cuda_graph else "default")
        module = encoder_module(model, precision, self.device)
        self.dynamic = dynamic
        self.module = torch.compile(module, mode=self.mode, dynamic=dynamic, fullgraph=True)

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cpu", precision="fp32", variant=None,
               cuda_graph=False, mode=None, dynamic=False, tf32=None):
        if engine is not None:
            raise LsegError("the compile backend compiles a checkpoint, not an engine file; use --checkpoint")
        return cls(resolve_model(checkpoint, device, variant), device, precision, cuda_graph, mode, dynamic, tf32)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        with tf32_scope(self.tf32):
            out = self.module(x)
        # CUDA-graph outputs live in a pool that the next replay overwrites: hand the caller its own copy
        return out.clone() if self.cuda_graph else out

    def describe(self):
        return {**super().describe(), "model": self.model.source, "mode": self.mode, "dynamic": self.dynamic,
                "cuda_graph": self.cuda_graph, "torch": torch.__version__, **tf32_description(self.tf32)}
