"""`tensorrt` backend, runner: engine → device tensors (:class:`TensorRTEncoder`), sidecar checks (:func:`check_engine`).

Building engines lives in :mod:`lsegrt.backends.tensorrt_build` (both TensorRT flavours, precision and
typing are described there); its public names are re-exported here, so ``lsegrt.backends.tensorrt``
stays the backend's one entry point. TensorRT-RTX's runtime does not support Hopper (H100/H200).

Unverified runtime: written against the documented API and never run here (CPU-only machine,
TensorRT-RTX 1.7): everything on a GPU (deserialization, inference, both CUDA-graph paths).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import LsegError
from ..sidecar import check_sidecar, gpu_info
from .base import Encoder, Option, check_precision
from .common import checkpoint_identity, require_cuda, resolve_model
from .tensorrt_build import (DEBUG_WARNING, INPUT, OUTPUT, _LOCK, BuildOptions, Progress, Shape, _cc_names, _fmt,
                             _logged_errors, _logger, build_engine, cached_engine, flavor, import_tensorrt,
                             request_for)

__all__ = ["BuildOptions", "DEBUG_WARNING", "INPUT", "OUTPUT", "Progress", "Shape", "TensorRTEncoder",
           "build_engine", "cached_engine", "check_engine", "flavor", "import_tensorrt", "request_for"]


def check_engine(engine, precision: str, device="cuda", checkpoint_sha256: str | None = None,
                 checkpoint: str | None = None, tf32: bool | None = None) -> dict:
    """Refuse an engine built for another precision, TensorRT build, GPU, checkpoint (``checkpoint``
    names it in the message) or TF32 setting (when ``tf32`` is given), or whose bytes are not the ones
    its sidecar records; return its sidecar."""
    trt = import_tensorrt()
    kind, version = flavor(trt)
    want = {"backend": "tensorrt", "backend_flavor": kind, "backend_version": version,
            "precision": check_precision(precision)}
    info = gpu_info(device)
    if kind == "tensorrt":
        want["gpu"] = info["gpu"]
    if checkpoint_sha256 is not None:
        want["checkpoint_sha256"] = checkpoint_sha256
    if tf32 is not None:
        want["tf32"] = bool(tf32)
    payload = check_sidecar(engine, want, checkpoint=checkpoint)
    cc, name = info["compute_capability"], Path(engine).name
    if kind == "tensorrt_rtx" and cc is not None:
        if cc not in _cc_names(trt):
            raise LsegError(f"TensorRT-RTX {version} does not run on {info['gpu']} (compute capability {cc}); "
                            "use the full tensorrt package on this GPU")
        targets = payload["request"].get("compute_capability") or "portable"
        if targets != "portable" and cc not in targets.split(","):
            raise LsegError(f"engine {name} targets compute capability {targets} but {info['gpu']} is {cc}; "
                            "rebuild with compute_capability='current', or unset for a portable engine")
    return payload


def _engine_profile(trt, engine, path: Path) -> dict[str, Shape]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    if sorted(names) != [OUTPUT, INPUT] or engine.get_tensor_mode(INPUT) != trt.TensorIOMode.INPUT:
        raise LsegError(f"engine {path.name} has tensors {names}; lsegrt engines map 'image' to 'features'")
    for name, channels in ((INPUT, 3), (OUTPUT, 512)):
        if engine.get_tensor_dtype(name) != trt.float32:
            raise LsegError(f"engine {path.name}: {name!r} is {engine.get_tensor_dtype(name).name}, expected float32")
        shape = list(engine.get_tensor_shape(name))
        if len(shape) != 4 or shape[1] != channels:
            raise LsegError(f"engine {path.name}: {name!r} has shape {shape}; expected (B,{channels},H,W)")
    dims = engine.get_tensor_profile_shape(INPUT, 0)
    return {key: (int(d[0]), int(d[2]), int(d[3])) for key, d in zip(("min", "opt", "max"), dims)}


class TensorRTEncoder(Encoder):
    """A TensorRT engine on one CUDA device: (B,3,H,W) float32 → (B,512,H/2,W/2) float32, on the device.

    Unverified: written against the documented TensorRT 10 / TensorRT-RTX runtime API, never run on a
    GPU here. TensorRT-RTX compiles kernels the first time each shape runs: warm up before timing.
    """

    name = "tensorrt"
    options = {
        **Encoder.options,
        "cuda_graph": Option(bool, False, "replay each shape from a CUDA graph"),
        "tf32": Option(bool, None, "TF32 in fp32 layers, a build-time choice: a cache build uses it (unset: off, "
                                   "IEEE fp32); a given engine must have been built with it"),
        "build": Option(BuildOptions, None, "profile and builder options of a cache build (API only)"),
    }

    def __init__(self, engine, device="cuda", precision: str = "fp32", *, cuda_graph: bool = False,
                 checkpoint_sha256: str | None = None, checkpoint: str | None = None, tf32: bool | None = None):
        device = torch.device(device)
        require_cuda(device, "the TensorRT runtime")
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        super().__init__(device, precision)
        self.engine_path = Path(engine)
        self.sidecar = check_engine(engine, precision, device, checkpoint_sha256, checkpoint, tf32)
        if self.sidecar["request"].get("debug"):
            warnings.warn(DEBUG_WARNING, stacklevel=3)
        self._trt = trt = import_tensorrt()
        self.flavor, self.version = flavor(trt)
        self.cuda_graph = bool(cuda_graph)
        self._logger = _logger(trt)
        self._graphs: dict[tuple, tuple] = {}
        self._shape: tuple | None = None
        with _LOCK, torch.cuda.device(self.device):
            self._logger.records = []
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self._engine is None:
                raise LsegError(f"TensorRT could not load {self.engine_path.name}: {_logged_errors(self._logger)}")
            self.profile = _engine_profile(trt, self._engine, self.engine_path)
            self._context = self._new_context()
            # TensorRT adds device-wide syncs on the legacy default stream: enqueue on our own then.
            self._stream = torch.cuda.Stream(self.device)

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cuda", precision="fp32", cuda_graph=False,
               variant=None, build: BuildOptions | None = None, tf32: bool | None = None) -> "TensorRTEncoder":
        """Open ``engine``; without one, build (or reuse) the cache's engine for ``checkpoint``.

        ``build`` sets the profile and builder options of a cache build (default: BuildOptions(precision)).
        With both ``engine`` and a ``checkpoint``, the engine must have been built from that checkpoint.
        ``tf32``: TensorRT decides TF32 when it builds: a cache build is made with it, a given engine
        must record it (so `compare --option tf32=false` gets IEEE fp32 engines, as from torch).
        """
        require_cuda(torch.device(device), "the TensorRT runtime")
        check_precision(precision)
        if engine is None:
            build = build or BuildOptions(precision=precision, tf32=bool(tf32))
            if build.precision != precision:
                raise LsegError(f"build options are for {build.precision} but precision={precision!r} was asked")
            if tf32 is not None and build.tf32 != tf32:
                raise LsegError(f"option tf32={tf32} contradicts the build options (tf32={build.tf32})")
            model = resolve_model(checkpoint, "cpu", variant)
            return cls(cached_engine(model, build, device=device), device, precision, cuda_graph=cuda_graph)
        found = checkpoint_identity(checkpoint)
        return cls(engine, device, precision, cuda_graph=cuda_graph, checkpoint_sha256=found and found[0],
                   checkpoint=found and found[1], tf32=tf32)

    def _new_context(self):
        trt = self._trt
        if self.cuda_graph and self.flavor == "tensorrt_rtx":
            config = self._engine.create_runtime_config()  # RTX captures graphs itself, per shape
            config.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
            context = self._engine.create_execution_context(config)
        else:
            context = self._engine.create_execution_context()
        if context is None:
            raise LsegError(f"TensorRT could not create an execution context for {self.engine_path.name} "
                            f"(out of GPU memory?): {_logged_errors(self._logger)}")
        return context

    def _check_profile(self, b: int, h: int, w: int) -> None:
        lo, hi = self.profile["min"], self.profile["max"]
        if not all(a <= v <= c for a, v, c in zip(lo, (b, h, w), hi)):
            raise LsegError(f"tensorrt: input {b}x3x{h}x{w} is outside the engine's profile (BxHxW min {_fmt(lo)}, "
                            f"max {_fmt(hi)}); rebuild {self.engine_path.name} with a wider profile")

    def _bind_shape(self, context, shape: tuple) -> tuple:
        if not context.set_input_shape(INPUT, shape):
            raise LsegError(f"tensorrt: the engine refused input shape {shape}: {_logged_errors(self._logger)}")
        return tuple(context.get_tensor_shape(OUTPUT))

    def _enqueue(self, context, x: torch.Tensor, out: torch.Tensor) -> None:
        current = torch.cuda.current_stream(self.device)
        stream = current if current.cuda_stream != 0 else self._stream
        if stream is not current:
            stream.wait_stream(current)
        context.set_tensor_address(INPUT, x.data_ptr())
        context.set_tensor_address(OUTPUT, out.data_ptr())
        if not context.execute_async_v3(stream.cuda_stream):
            raise LsegError(f"tensorrt: inference failed for input {tuple(x.shape)}: {_logged_errors(self._logger)}")
        if stream is not current:
            current.wait_stream(stream)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) float32 on ``self.device`` → (B,512,H/2,W/2) float32 on it (a new tensor per call).

        With ``cuda_graph=True`` and full tensorrt, the result is the graph's output buffer for that
        shape, overwritten by the next call of the same shape: ``clone()`` it to keep it.
        """
        self.check_input(x)
        if x.dtype != torch.float32:
            raise LsegError(f"tensorrt: expected a float32 input, got {x.dtype}")
        self._check_profile(x.shape[0], x.shape[2], x.shape[3])
        x = x.contiguous()
        with torch.cuda.device(self.device):
            if self.cuda_graph and self.flavor == "tensorrt":
                return self._replay(x)
            if self._shape != tuple(x.shape):
                self._out_shape = self._bind_shape(self._context, tuple(x.shape))
                self._shape = tuple(x.shape)
            out = torch.empty(self._out_shape, device=self.device, dtype=torch.float32)
            self._enqueue(self._context, x, out)
            return out

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        # A captured graph fixes shapes, addresses and context: one context and buffer pair per shape.
        key = tuple(x.shape)
        if key not in self._graphs:
            context = self._context if not self._graphs else self._new_context()
            static_in = x.clone()
            static_out = torch.empty(self._bind_shape(context, key), device=self.device, dtype=torch.float32)
            self._enqueue(context, static_in, static_out)  # warm-up: lazy set-up stays out of the capture
            torch.cuda.synchronize(self.device)
            capturable = getattr(context, "is_stream_capturable", None)
            if capturable is not None and not capturable(self._stream.cuda_stream):
                raise LsegError("tensorrt: this engine cannot be captured in a CUDA graph; use cuda_graph=False")
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self._stream):
                if not context.execute_async_v3(self._stream.cuda_stream):
                    raise LsegError(f"tensorrt: CUDA-graph capture failed: {_logged_errors(self._logger)}")
            self._graphs[key] = (graph, static_in, static_out, context)
            return static_out
        graph, static_in, static_out, _ = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out

    def describe(self) -> dict[str, Any]:
        req = self.sidecar["request"]
        return {**super().describe(), "engine": str(self.engine_path), "backend_flavor": self.flavor,
                "backend_version": self.version, "typing": req.get("typing"), "profile": req.get("profile"),
                "compute_capability": req.get("compute_capability"), "checkpoint": req.get("checkpoint_name"),
                "cuda_graph": self.cuda_graph, "tf32": req.get("tf32")}

    def close(self) -> None:
        self._graphs.clear()  # contexts before the engine before the runtime
        self._context = None
        self._engine = None
        self._runtime = None
