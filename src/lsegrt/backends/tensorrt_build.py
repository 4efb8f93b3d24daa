"""`tensorrt` backend, builder: ONNX → engine with a JSON sidecar (:func:`build_engine`, :func:`cached_engine`).

Also holds what the runner (:mod:`lsegrt.backends.tensorrt`) shares: :func:`import_tensorrt`, :func:`flavor`,
the I/O tensor names and the recording logger.

One code path serves two TensorRT flavours, imported lazily (Polygraphy style):

- ``tensorrt`` (10.x/11.x): builds on, and for, the GPU it runs on.
- TensorRT-RTX (``tensorrt_rtx_bindings``): always strongly typed (no FP16/BF16/INT8 builder flags),
  builds without any GPU for a set of compute capabilities (default: its portable set) and compiles
  kernels for the actual GPU when a shape is first run. Its runtime does not support Hopper (H100/H200).

Precision lives in the ONNX graph: lsegrt exports fp16/bf16 graphs with LayerNorm and the final L2 norm
kept in fp32 and float32 I/O (docs/ARCHITECTURE.md §8), so engines are built STRONGLY_TYPED from an ONNX of the
requested precision. ``weak_typing=True`` (TensorRT 10.x only) instead takes an fp32 ONNX and sets the
FP16/BF16 builder flags. Tactic sources stay at TensorRT's defaults (§10); DLA/GPU_FALLBACK: not offered.

Verified (CPU-only machine, TensorRT-RTX 1.7): parsing, I/O and precision checks, building, progress
reports, sidecars. Unverified, written against the documented API and never run here: the full
``tensorrt`` package's own paths (GPU build, timing cache, weak typing with fp32 pins).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import operator
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import LsegError, MissingDependency
from ..fileio import check_output_path, write_bytes
from ..sidecar import (check_engine_output, engine_lock, file_sha256, gpu_info, publish, read_sidecar,
                       recorded_checkpoint, sidecar_path, staging)
from .base import check_precision

INPUT, OUTPUT = "image", "features"
SUFFIXES = (".engine", ".plan", ".trt")
BATCH_LIMIT, SIDE_LIMIT = 1024, 8192  # beyond these a profile is a typo, not a deployment
Shape = tuple[int, int, int]  # (B, H, W)
Progress = Callable[[str, int, int], None]  # (phase, step, steps in phase)
DEBUG_WARNING = ("TensorRT debug mode synchronizes after every layer and slows inference: "
                 "never use a debug engine for benchmarks")

# TensorRT keeps the first logger a process gives it and ignores later ones, so there is one recording
# logger per module and builds/loads take turns reading it.
_LOCK = threading.RLock()
_LOGGERS: dict[str, Any] = {}


def import_tensorrt():
    """The TensorRT module: ``tensorrt`` if installed, else ``tensorrt_rtx_bindings``."""
    for name in ("tensorrt", "tensorrt_rtx_bindings"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingDependency("tensorrt", "the TensorRT backend",
                            "tensorrt (or, to build engines without a GPU: pip install 'lsegrt[tensorrt-rtx]')")


def flavor(trt=None) -> tuple[str, str]:
    """("tensorrt" or "tensorrt_rtx", version) of the TensorRT module in use."""
    trt = trt or import_tensorrt()
    return ("tensorrt_rtx" if trt.__name__.startswith("tensorrt_rtx") else "tensorrt"), str(trt.__version__)


def _logger(trt):
    if trt.__name__ not in _LOGGERS:
        class RecordingLogger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.records: list[tuple[int, str]] = []  # (severity, one-line message), errors+warnings

            def log(self, severity, msg):
                if int(severity) <= int(trt.ILogger.WARNING):
                    del self.records[:-199]
                    self.records.append((int(severity), " ".join(str(msg).split())))

        _LOGGERS[trt.__name__] = RecordingLogger()
    return _LOGGERS[trt.__name__]


def _logged(logger, worst: int = 1) -> list[str]:
    return list(dict.fromkeys(msg for sev, msg in logger.records if sev <= worst))


def _logged_errors(logger) -> str:
    return "; ".join(_logged(logger)[-5:]) or "TensorRT logged no error"


def _cc_names(trt) -> dict[str, Any]:
    """"8.9" → ComputeCapability.SM89, for every target this TensorRT-RTX knows."""
    return {f"{k[2:-1]}.{k[-1]}": v for k, v in trt.ComputeCapability.__members__.items() if k[2:].isdigit()}


def _fmt(shape) -> str:
    return "x".join(str(v) for v in shape)


@dataclass(frozen=True)
class BuildOptions:
    """What an engine is built for. Shapes are (B,H,W) with H, W multiples of 32 (docs/ARCHITECTURE.md §7).

    precision: fp32/fp16/bf16, as computed by the ONNX graph (strong typing), or set by builder flags on
        an fp32 ONNX when ``weak_typing`` (full tensorrt 10.x only; TensorRT-RTX and 11.x refuse it).
    min_shape/opt_shape/max_shape: the optimization profile; inputs outside it are refused when run.
    workspace: builder scratch-memory cap in bytes (None: TensorRT's default).
    optimization_level: builder effort 0-5 (None: TensorRT's default, 3); higher builds longer.
    timing_cache: file loaded if present and saved (atomically) after the build; full tensorrt only,
        TensorRT-RTX has made timing caches no-ops, so there it is ignored with a warning.
    sparse_weights: lets TensorRT use 2:4 structured-sparse kernels; LSeg's weights are dense, so this
        only lengthens the build (§10).
    debug: TensorRT synchronizes after every layer; slows inference, never for benchmarks.
    tf32: allow TF32 math in fp32 layers. TensorRT enables it by default; lsegrt does not, so "fp32"
        means IEEE fp32 (the pinned fp32 norms of fp16/bf16 engines too).
    compute_capability: TensorRT-RTX targets, e.g. "8.9" or "8.6,8.9", or "current" (needs a GPU);
        None builds its portable engine (no GPU needed). Full tensorrt always targets the build GPU.
    """

    precision: str = "fp32"
    min_shape: Shape = (1, 256, 256)
    opt_shape: Shape = (1, 480, 480)
    max_shape: Shape = (1, 1024, 1024)
    workspace: int | None = None
    optimization_level: int | None = None
    timing_cache: str | None = None
    sparse_weights: bool = False
    debug: bool = False
    weak_typing: bool = False
    tf32: bool = False
    compute_capability: str | None = None

    def __post_init__(self):
        check_precision(self.precision)
        shapes = {}
        for key in ("min", "opt", "max"):
            value = getattr(self, f"{key}_shape")
            try:
                shape = tuple(operator.index(v) for v in value)
            except TypeError:
                shape = ()
            if len(shape) != 3 or min(shape) < 1:
                raise LsegError(f"profile {key} shape {value!r}: expected (B,H,W) positive integers, e.g. (1,480,480)")
            if shape[1] % 32 or shape[2] % 32:
                raise LsegError(f"profile {key} shape {_fmt(shape)} (BxHxW): H and W must be multiples of 32")
            if shape[0] > BATCH_LIMIT or max(shape[1:]) > SIDE_LIMIT:
                raise LsegError(f"profile {key} shape {_fmt(shape)} (BxHxW): at most batch {BATCH_LIMIT} and "
                                f"side {SIDE_LIMIT}")
            object.__setattr__(self, f"{key}_shape", shape)
            shapes[key] = shape
        if not all(a <= b <= c for a, b, c in zip(shapes["min"], shapes["opt"], shapes["max"])):
            raise LsegError(f"profile needs min <= opt <= max in B, H and W; got min {_fmt(shapes['min'])}, "
                            f"opt {_fmt(shapes['opt'])}, max {_fmt(shapes['max'])}")
        if self.workspace is not None and (not isinstance(self.workspace, int) or self.workspace <= 0):
            raise LsegError(f"workspace {self.workspace!r}: expected a positive number of bytes")
        if self.optimization_level is not None and self.optimization_level not in range(6):
            raise LsegError(f"optimization_level {self.optimization_level!r}: expected 0..5 (TensorRT default 3)")

    def profile(self) -> dict[str, list[int]]:
        return {"min": list(self.min_shape), "opt": list(self.opt_shape), "max": list(self.max_shape)}

    def engine_options(self) -> dict[str, Any]:
        """The options besides precision, profile and target that change the engine (for the request)."""
        return {"sparse_weights": self.sparse_weights, "debug": self.debug, "tf32": self.tf32,
                "optimization_level": self.optimization_level, "workspace": self.workspace}


def _target(trt, options: BuildOptions, device="cuda") -> tuple[str, str, list]:
    """(gpu, compute_capability, ComputeCapability values to set) for the request and the builder."""
    kind, version = flavor(trt)
    want = options.compute_capability
    if kind == "tensorrt":
        info = gpu_info(device)
        if info["gpu"] == "cpu":
            raise LsegError("building with the full tensorrt package needs a CUDA GPU; TensorRT-RTX builds "
                            "without one: pip install 'lsegrt[tensorrt-rtx]'")
        if want not in (None, "current", info["compute_capability"]):
            raise LsegError(f"compute_capability={want!r}: full tensorrt builds for the GPU it runs on "
                            f"({info['gpu']}, {info['compute_capability']}); targets are a TensorRT-RTX option")
        return info["gpu"], info["compute_capability"], []
    if want is None:
        return "rtx-portable", "portable", []
    if want == "current":
        info = gpu_info(device)
        if info["gpu"] == "cpu":
            raise LsegError("compute_capability='current' needs a CUDA GPU; name a target such as '8.9' "
                            "or leave it unset for a portable engine")
        return info["gpu"], info["compute_capability"], [trt.ComputeCapability.CURRENT]
    known = _cc_names(trt)
    parts = sorted({p.strip() for p in str(want).split(",")}, key=lambda p: [int(v) for v in p.split(".") if v.isdigit()])
    for part in parts:
        if part not in known:
            raise LsegError(f"compute_capability {part!r} is not a TensorRT-RTX {version} target; choose from "
                            f"{', '.join(known)}, 'current', or leave it unset for a portable engine")
    return "rtx-" + "-".join("sm" + p.replace(".", "") for p in parts), ",".join(parts), [known[p] for p in parts]


def onnx_origin(onnx_path) -> dict[str, Any] | None:
    """What an ONNX was exported from, read from its sidecar after checking that the sidecar describes
    these bytes: ``checkpoint_sha256``, ``checkpoint_name``, ``variant``, ``checkpoint`` (the recorded
    file, for messages). None when it has no sidecar (a foreign export); refused when its sidecar is
    stale, invalid or describes other bytes."""
    onnx = Path(onnx_path)
    if not onnx.is_file():
        raise LsegError(f"ONNX file not found: {onnx}")
    if not sidecar_path(onnx).exists():
        return None
    payload = read_sidecar(onnx)
    req = payload["request"]
    if req.get("backend") != "onnx":
        raise LsegError(f"{sidecar_path(onnx).name} is the sidecar of a {req.get('backend')} engine, not of an ONNX export")
    return {"checkpoint_sha256": req.get("checkpoint_sha256"), "checkpoint_name": req.get("checkpoint_name"),
            "variant": req.get("variant"), "checkpoint": recorded_checkpoint(payload),
            "checkpoint_file": (payload.get("info") or {}).get("checkpoint_file")}


def _file_of(model) -> str | None:
    found = getattr(model, "file", None) or getattr(model, "source", None)
    return str(found) if found else None


def request_for(onnx_path, options: BuildOptions, *, model=None, device="cuda", onnx_sha256: str | None = None) -> dict:
    """The sidecar request of an engine built from ``onnx_path`` with ``options``: all that changes it.

    The checkpoint fields come from the ONNX's own sidecar (an `lsegrt export`); ``model`` (an
    :class:`lsegrt.LSegModel`), when given, must be the one it names: an engine is never labelled with
    a checkpoint its graph was not exported from. A foreign ONNX (no sidecar) names no checkpoint, and
    cannot be combined with ``model``.
    """
    trt = import_tensorrt()
    kind, version = flavor(trt)
    gpu, cc, _ = _target(trt, options, device)
    onnx = Path(onnx_path)
    origin = onnx_origin(onnx)
    if model is not None:
        given = _file_of(model) or str(getattr(model, "name", "the given checkpoint"))
        if origin is None:
            raise LsegError(f"{onnx.name} has no sidecar, so nothing says it was exported from {given}; "
                            "export it with `lsegrt export`, or build without --checkpoint")
        if origin["checkpoint_sha256"] != model.sha256:
            raise LsegError(f"{onnx.name} was exported from {origin['checkpoint']}, not from {given} "
                            f"(weights sha256 {str(model.sha256)[:12]}…); build from the matching pair")
    origin = origin or {"checkpoint_sha256": None, "checkpoint_name": onnx.stem, "variant": None}
    return {
        "backend": "tensorrt", "backend_flavor": kind, "backend_version": version,
        "checkpoint_sha256": origin["checkpoint_sha256"],
        "checkpoint_name": origin["checkpoint_name"] or onnx.stem,
        "variant": origin["variant"],
        "onnx_sha256": onnx_sha256 or file_sha256(onnx),
        "precision": options.precision, "profile": options.profile(),
        "typing": "weak" if options.weak_typing else "strong",
        "gpu": gpu, "compute_capability": cc, **options.engine_options(),
    }


def _parser_errors(parser) -> str:
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = [f"{name} {val!r}" for name, val in (("node", _call(err, "node_name")), ("op", _call(err, "node_operator"))) if val]
        out.append(" ".join(str(err.desc()).split()) + (f" ({', '.join(where)})" if where else ""))
    return "; ".join(dict.fromkeys(out)) or "no parser message"


def _call(obj, name):
    fn = getattr(obj, name, None)
    return fn() if fn is not None else None


def _check_io(trt, network, onnx: Path, options: BuildOptions) -> None:
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    if not inputs and not outputs:
        raise LsegError(f"{onnx.name} holds no graph (TensorRT read it as an empty model): is it an ONNX file?")
    if [t.name for t in inputs] != [INPUT] or [t.name for t in outputs] != [OUTPUT]:
        found = lambda ts: ", ".join(f"{t.name!r} {tuple(t.shape)}" for t in ts) or "none"
        raise LsegError(f"{onnx.name} has inputs [{found(inputs)}] and outputs [{found(outputs)}]; an lsegrt engine "
                        "needs input 'image' (B,3,H,W) and output 'features' (B,512,H/2,W/2): export with `lsegrt export`")
    image, feats = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(image) != 4 or image[1] != 3 or len(feats) != 4 or feats[1] != 512:
        raise LsegError(f"{onnx.name}: 'image' is {image} and 'features' {feats}; expected (B,3,H,W) → (B,512,H/2,W/2)")
    if inputs[0].dtype != trt.float32 or outputs[0].dtype != trt.float32:
        raise LsegError(f"{onnx.name}: 'image' is {inputs[0].dtype.name} and 'features' {outputs[0].dtype.name}; "
                        "lsegrt engines keep float32 I/O at every precision (export with `lsegrt export`)")
    for key, shape in zip(("min", "opt", "max"), (options.min_shape, options.opt_shape, options.max_shape)):
        for axis, fixed, asked in zip("BHW", (image[0], image[2], image[3]), shape):
            if fixed != -1 and fixed != asked:
                raise LsegError(f"{onnx.name} fixes {axis}={fixed} but the profile's {key} shape asks {axis}={asked}; "
                                f"export with dynamic axes or build for {axis}={fixed}")


def _check_precision(trt, network, onnx: Path, options: BuildOptions) -> list[str]:
    """Float types the parsed graph computes in, checked against the requested precision."""
    names = {trt.float32: "fp32", trt.float16: "fp16", trt.bfloat16: "bf16"}
    found = set()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        found.update(names.get(layer.get_output(j).dtype) for j in range(layer.num_outputs))
    found.discard(None)
    low = found - {"fp32"}
    if options.weak_typing:
        if low:
            raise LsegError(f"{onnx.name} already computes in {'/'.join(sorted(low))}; weak typing takes an fp32 "
                            "ONNX: build this one strongly typed (the default)")
    elif low != ({options.precision} - {"fp32"}):
        graph = "/".join(sorted(low)) or "fp32"
        raise LsegError(f"{onnx.name} computes in {graph} but precision {options.precision!r} was asked; TensorRT "
                        f"takes precision from the graph: export with `lsegrt export --precision {options.precision}`")
    return sorted(found)


def _pin_fp32(trt, network, config) -> None:
    # Weak typing lets TensorRT choose fp16 anywhere; LayerNorm statistics and the L2 norm's sum of
    # squares overflow fp16 (docs/ARCHITECTURE.md §8), so normalization and reduce layers stay fp32.
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in (trt.LayerType.NORMALIZATION, trt.LayerType.REDUCE):
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)


def _config(trt, builder, network, options: BuildOptions, targets: list):
    config = builder.create_builder_config()
    if options.workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace)
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    if hasattr(trt.BuilderFlag, "TF32"):
        (config.set_flag if options.tf32 else config.clear_flag)(trt.BuilderFlag.TF32)
    if options.sparse_weights:
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    if options.debug:
        config.set_flag(trt.BuilderFlag.DEBUG)
    if options.weak_typing and options.precision != "fp32":
        config.set_flag(trt.BuilderFlag.FP16 if options.precision == "fp16" else trt.BuilderFlag.BF16)
        _pin_fp32(trt, network, config)
    if targets:
        config.num_compute_capabilities = len(targets)
        for i, target in enumerate(targets):
            if not config.set_compute_capability(target, i):
                raise LsegError(f"TensorRT-RTX refused compute capability target {target.name}")
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT, *[(b, 3, h, w) for b, h, w in (options.min_shape, options.opt_shape, options.max_shape)])
    config.add_optimization_profile(profile)
    return config


def _monitor(trt, report: Progress):
    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = int(num_steps)
            self._report(phase_name, 0)

        def step_complete(self, phase_name, step):
            self._report(phase_name, int(step) + 1)
            return True

        def phase_finish(self, phase_name):
            self.steps.pop(phase_name, None)

        def _report(self, phase, step):
            with contextlib.suppress(Exception):  # a display problem must never abort a build
                report(phase, step, self.steps.get(phase, 0))

    return Monitor()


@contextlib.contextmanager
def _progress(trt, config, on_progress: Progress | None):
    """Report build progress: to ``on_progress`` if given, else as a spinner on a terminal's stderr."""
    status = None
    if on_progress is None:
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            status = console.status("building TensorRT engine")
            status.start()
            on_progress = lambda phase, step, total: status.update(f"building TensorRT engine: {phase} {step}/{total}")
    monitor = None  # held here: TensorRT needs it alive until the build returns
    if on_progress is not None and hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor"):
        monitor = _monitor(trt, on_progress)
        config.progress_monitor = monitor
    try:
        yield
    finally:
        if status is not None:
            status.stop()


def _timing_cache(trt, config, options: BuildOptions):
    if options.timing_cache is None:
        return None
    if flavor(trt)[0] == "tensorrt_rtx":
        warnings.warn(f"TensorRT-RTX has no timing cache (a no-op since RTX 1.2): ignoring {options.timing_cache}",
                      stacklevel=3)
        return None
    path = check_output_path(options.timing_cache)
    cache = config.create_timing_cache(path.read_bytes() if path.is_file() else b"")
    if not config.set_timing_cache(cache, False):
        raise LsegError(f"timing cache {path} is from another GPU or TensorRT version; delete it or choose another path")
    return cache


def build_engine(onnx_path, engine_path, options: BuildOptions | None = None, *, on_progress: Progress | None = None,
                 request: dict | None = None, model=None) -> dict[str, Any]:
    """Build ``engine_path`` and its ``.json`` sidecar from an ONNX with lsegrt's I/O contract.

    ONNX: input ``image`` (B,3,H,W) float32 → output ``features`` (B,512,H/2,W/2) float32, computing
    in ``options.precision`` (or fp32 with ``weak_typing``). ``on_progress(phase, step, total)`` gets
    TensorRT's progress reports; without it a spinner shows on a terminal. ``request`` defaults to
    :func:`request_for` (``model`` fills its checkpoint fields). Returns the sidecar's ``info``:
    build_seconds, engine_bytes, backend flavor/version, options, float types, TensorRT warnings.
    """
    options = options or BuildOptions()
    trt = import_tensorrt()
    kind, version = flavor(trt)
    onnx = Path(onnx_path)
    if not onnx.is_file():
        raise LsegError(f"ONNX file not found: {onnx}")
    engine_path = check_engine_output(engine_path, SUFFIXES, inputs=(onnx, getattr(model, "file", None)))
    if options.weak_typing and not hasattr(trt.BuilderFlag, "FP16"):
        raise LsegError(f"weak typing needs full tensorrt 10.x; {kind} {version} builds strongly typed only: "
                        f"export an ONNX in {options.precision} and build without weak_typing")
    _, cc, targets = _target(trt, options)
    request = request or request_for(onnx, options, model=model)
    if options.debug:
        warnings.warn(DEBUG_WARNING, stacklevel=2)
    logger = _logger(trt)
    with _LOCK:
        logger.records = []
        builder = trt.Builder(logger)
        flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        network = builder.create_network(0 if options.weak_typing or flag is None else 1 << int(flag))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx)):
            raise LsegError(f"TensorRT could not parse {onnx.name}: {_parser_errors(parser)}")
        _check_io(trt, network, onnx, options)
        float_types = _check_precision(trt, network, onnx, options)
        config = _config(trt, builder, network, options, targets)
        cache = _timing_cache(trt, config, options)
        start = time.perf_counter()
        with _progress(trt, config, on_progress):
            serialized = builder.build_serialized_network(network, config)
        seconds = time.perf_counter() - start
        if serialized is None:
            raise LsegError(f"TensorRT could not build an engine from {onnx.name}: {_logged_errors(logger)}")
        logged_warnings = _logged(logger, worst=2)[:20]
    if cache is not None:
        write_bytes(options.timing_cache, bytes(cache.serialize()))
    info = {
        "build_seconds": round(seconds, 3), "engine_bytes": int(serialized.nbytes),
        "backend_flavor": kind, "backend_version": version, "options": asdict(options),
        "compute_capability": cc, "onnx": str(onnx.resolve()), "onnx_float_types": float_types,
        "tensorrt_warnings": logged_warnings,
        "checkpoint_file": (onnx_origin(onnx) or {}).get("checkpoint_file") or _file_of(model),
    }
    with engine_lock(engine_path), staging(engine_path) as stage:
        staged = stage / engine_path.name
        data = memoryview(serialized)
        with open(staged, "wb") as f:
            f.write(data)
        publish(engine_path, staged, request, info, engine_sha256=hashlib.sha256(data).hexdigest())
    return info


def _cached_onnx(model, precision: str, opset: int = 17) -> Path:
    """An ONNX export of ``model`` from the cache (reused only when its sidecar matches)."""
    from ..export import export_onnx, onnx_request
    from .common import cached_engine as cached

    return cached(onnx_request(model, precision, opset), ".onnx",
                  lambda p: export_onnx(model, p, precision=precision, opset=opset))


def cached_engine(model, options: BuildOptions, *, device="cuda", on_progress: Progress | None = None) -> Path:
    """The cache's engine for ``model`` and ``options`` (``cache_dir()/engines``), built if absent.

    An existing file is reused only if its sidecar matches the whole request, never by name alone.
    """
    from .common import cached_engine as cached

    onnx = _cached_onnx(model, "fp32" if options.weak_typing else options.precision)
    request = request_for(onnx, options, model=model, device=device)
    return cached(request, ".engine",
                  lambda p: build_engine(onnx, p, options, request=request, on_progress=on_progress))
