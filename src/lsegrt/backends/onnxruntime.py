"""`onnxruntime` backend: our exported ONNX under ONNX Runtime with an explicit provider list.

CPU: zero-copy numpy views in and out. CUDA (onnxruntime-gpu; not installed on the machines we could
test, so that path is unverified): IOBinding binds the torch input and a torch output buffer by device
pointer, so nothing crosses to the host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import LsegError, require
from .base import Encoder
from .common import cached_engine, check_engine, checkpoint_sha256, resolve_model

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}


class OnnxRuntimeEncoder(Encoder):
    name = "onnxruntime"

    def __init__(self, path: Path, device, precision: str, providers: list[str] | None = None, threads: int = 0):
        super().__init__(device, precision)
        ort = require("onnxruntime", "the onnxruntime backend", "onnxruntime (or onnxruntime-gpu for CUDA)")
        self.path = Path(path)
        self.providers = providers or PROVIDERS[self.device.type]
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise LsegError(
                f"ONNX Runtime here lacks {', '.join(missing)} (available: {', '.join(ort.get_available_providers())}); "
                "install onnxruntime-gpu for CUDA or use --device cpu"
            )
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=self.providers)
        self.version = ort.__version__

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cpu", precision="fp32", variant=None,
               providers=None, opset=17, **options):
        from ..export import export_onnx, onnx_request

        if precision == "bf16":
            raise LsegError("ONNX Runtime's CPU kernels have no bfloat16 Conv; use fp32/fp16 (bf16 ONNX is for TensorRT)")
        if engine is not None:
            request = {"backend": "onnx", "precision": precision}
            if checkpoint is not None:
                request["checkpoint_sha256"] = checkpoint_sha256(checkpoint)
            check_engine(engine, request)
            return cls(engine, device, precision, providers)
        model = resolve_model(checkpoint, "cpu", variant)
        request = onnx_request(model, precision, opset)
        path = cached_engine(request, ".onnx", lambda p: export_onnx(model, p, precision=precision, opset=opset))
        return cls(path, device, precision, providers)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = x.float().contiguous()
        if self.device.type == "cpu":
            return torch.from_numpy(self.session.run(["features"], {"image": x.numpy()})[0])
        b, _, h, w = x.shape
        out = torch.empty((b, 512, h // 2, w // 2), device=self.device, dtype=torch.float32)
        binding = self.session.io_binding()
        index = self.device.index or 0
        binding.bind_input("image", "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output("features", "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        self.session.run_with_iobinding(binding)
        return out

    def describe(self):
        return {**super().describe(), "engine": str(self.path), "providers": self.providers,
                "onnxruntime": self.version}
