"""`onnxruntime` backend: our exported ONNX under ONNX Runtime with an explicit provider list.

CPU: zero-copy numpy views in and out. CUDA (onnxruntime-gpu; not installed on the machines we could
test, so that path is unverified): IOBinding binds the torch input and a torch output buffer by device
pointer, so nothing crosses to the host.

Every load checks the graph's I/O contract, not only its sidecar: input ``image`` and output
``features``, float32, rank 4, 3 channels in and 512 out (an Identity or foreign graph is refused,
never run as "features"); every call checks the output's shape.

Options: ``providers`` (default: CPU or CUDA by device), ``threads`` (intra-op threads, 0 = ORT's
choice), ``opset`` (of a cache export), ``tf32`` (CUDA: the CUDA provider's ``use_tf32``; unset keeps
ORT's default; the CPU computes IEEE fp32 either way), ``cuda_graph`` (accepted for sweeps, no effect).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import LsegError, require
from .base import NO_CUDA_GRAPH, Encoder, Option
from .common import cached_engine, check_engine, resolve_model

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}
INPUT, OUTPUT = "image", "features"


def _all_providers() -> tuple:
    return tuple(require("onnxruntime", "the onnxruntime backend").get_all_providers())


def check_graph_io(session, path: Path) -> None:
    """Refuse a graph that does not map ``image`` (B,3,H,W) float32 to ``features`` (B,512,h,w) float32."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    found = lambda args: ", ".join(f"{a.name!r} {a.type} {list(a.shape)}" for a in args) or "none"
    if [a.name for a in inputs] != [INPUT] or [a.name for a in outputs] != [OUTPUT]:
        raise LsegError(f"{path.name} has inputs [{found(inputs)}] and outputs [{found(outputs)}]; an lsegrt "
                        "graph maps 'image' to 'features': export it with `lsegrt export`")
    for arg, channels in ((inputs[0], 3), (outputs[0], 512)):
        shape = list(arg.shape)
        if arg.type != "tensor(float)" or len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != channels):
            raise LsegError(f"{path.name}: {arg.name!r} is {arg.type} {shape}; expected float32 (B,{channels},H,W) "
                            "(lsegrt graphs keep float32 I/O): export it with `lsegrt export`")


class OnnxRuntimeEncoder(Encoder):
    name = "onnxruntime"
    options = {
        **Encoder.options,
        "providers": Option(list, None, "ONNX Runtime execution providers in order (default: by device)",
                            choices=_all_providers),
        "threads": Option(int, 0, "intra-op threads (0: ONNX Runtime's choice)", minimum=0),
        "opset": Option(int, 17, "ONNX opset of a cache export", minimum=14),
        "tf32": Option(bool, None, "CUDA provider's use_tf32 (unset: ONNX Runtime's default; CPU: always IEEE fp32)"),
        "cuda_graph": NO_CUDA_GRAPH,
    }

    def __init__(self, path: Path, device, precision: str, providers: list[str] | None = None, threads: int = 0,
                 tf32: bool | None = None):
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
        self.tf32 = tf32
        provider_options = [{"use_tf32": str(int(tf32))} if p == "CUDAExecutionProvider" and tf32 is not None else {}
                            for p in self.providers]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=self.providers,
                                                provider_options=provider_options)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own error types for unreadable graphs
            msg = " ".join(str(exc).split())[:300]
            raise LsegError(f"ONNX Runtime cannot load {self.path.name}: {msg}") from None
        check_graph_io(self.session, self.path)
        self.version = ort.__version__

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cpu", precision="fp32", variant=None,
               providers=None, threads=0, opset=17, tf32=None, cuda_graph=False):
        from ..export import export_onnx, onnx_request

        if precision == "bf16":
            raise LsegError("ONNX Runtime's CPU kernels have no bfloat16 Conv; use fp32/fp16 (bf16 ONNX is for TensorRT)")
        if engine is not None:
            check_engine(engine, {"backend": "onnx", "precision": precision}, checkpoint)
            return cls(engine, device, precision, providers, threads, tf32)
        model = resolve_model(checkpoint, "cpu", variant)
        request = onnx_request(model, precision, opset)
        path = cached_engine(request, ".onnx", lambda p: export_onnx(model, p, precision=precision, opset=opset))
        return cls(path, device, precision, providers, threads, tf32)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = x.float().contiguous()
        b, _, h, w = x.shape
        if self.device.type == "cpu":
            out = torch.from_numpy(self.session.run([OUTPUT], {INPUT: x.numpy()})[0])
            if tuple(out.shape) != (b, 512, h // 2, w // 2) or out.dtype != torch.float32:
                raise LsegError(f"{self.path.name} returned {out.dtype} {tuple(out.shape)} for input {tuple(x.shape)}; "
                                f"an lsegrt graph returns float32 {(b, 512, h // 2, w // 2)}")
            return out
        out = torch.empty((b, 512, h // 2, w // 2), device=self.device, dtype=torch.float32)
        binding = self.session.io_binding()
        index = self.device.index or 0
        binding.bind_input(INPUT, "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        self.session.run_with_iobinding(binding)
        return out

    def describe(self):
        return {**super().describe(), "engine": str(self.path), "providers": self.providers,
                "onnxruntime": self.version, "cuda_graph": False, "tf32": self.tf32}
