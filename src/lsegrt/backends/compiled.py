"""`compile` backend: torch.compile (Inductor) of the image encoder, one specialization per shape.

``cuda_graph=True`` selects Inductor's "reduce-overhead" mode: each input shape is captured once
into a CUDA graph and replayed, which removes the launch gaps that dominate a ViT-L at small sizes.
Shapes are static by default (``dynamic=False``): Inductor tunes kernels for the exact size and a new
size costs one more compile (up to :data:`RECOMPILE_LIMIT` per process). ``dynamic=True`` compiles once
for symbolic batch/H/W (matmuls and convs are library calls either way), which is what a sweep over
many sizes wants. ``tf32`` is as for the `torch` backend; the flags are in effect when a shape is
compiled and captured as well as when it runs.

Beyond stock torch.compile (typed options, :class:`CompileOptions`), measured on an H200 (ViT-L/16 fp16,
stock compile + CUDA graph vs the option in the same run; docs/BENCHMARKS.md):

- ``fast``: the bundle of the options below that measured faster (``overlap``, ``patch_gemm``,
  ``gelu_epilogue``, ``channels_last``, ``fold``, ``cls_key_apart``, ``upsample_norm``,
  ``weights_channels_last``, ``readout_split``, ``shape_padding=false``, ``pos_cache``, ``branch_priority``,
  ``pdl``, ``flash4``, ``deconv_gemm``; each only where the caller left it unset and where it applies: a ResNet
  has no position embedding to cache, no attention and no reassemble, :data:`FAST_VIT_ONLY`; ``flash4`` only in
  fp16/bf16 on a Hopper GPU that imports FlashAttention-4, :func:`flash4_in_fast`, and then without
  ``cls_key_apart``).
  On an H100 (batch 1, stock compile in the same call): ViT-L/16 with ``flash4`` 1.28–1.32× at 384², 1.37–1.47×
  at 480×640, 1.22–1.30× at 1024² (sixteenth to twentieth sessions; stock's 1024² time differs by machine,
  12.9–13.5 ms; 1.27–1.28× in the twentieth), 1.23–1.26× at batch 8; without it (no package) 1.25–1.30× at
  384², 1.18–1.25× at 1024²; RN101 1.31–1.32× at 384², 1.34–1.36× at 1024² (fifteenth and twentieth
  sessions); same fidelity. It is not the default: stock stays
  the reference.
- ``overlap``: the encoder cut at its taps (:mod:`lsegrt.model.branches`); each piece compiled, the
  decoder's side branches on a second stream, the call one CUDA graph (:mod:`.overlap`) up to the last
  1×1 convolutions and the L2 norm, which write the caller's tensor after it (no output copy).
- ``patch_gemm``: the ViT patch embedding as a GEMM (cuDNN's fp16 kernel for the 16×16/16 convolution
  took 0.111 ms at 384², the GEMM 0.008 ms).
- ``gelu_epilogue``: fc1's bias + GELU in cuBLASLt's GEMM epilogue (``torch._addmm_activation``); on CUDA
  its GELU is the tanh approximation (on the CPU the exact one).
- ``fold``: the decoder's 1×1 convolutions re-associated (:mod:`lsegrt.model.folding`, exact up to
  rounding): refinenet4–2's out_conv before their ×2 upsampling, refinenet1's out_conv and head1 merged
  (with ``fast``: 2.05 → 2.03 ms at 384², 11.67 → 11.52 ms at 1024²).
- ``cls_key_apart``: the ViT attention over the patch keys, the class token's key merged in by its
  log-sum-exp (:mod:`lsegrt.model.attention`), where the patch count is a multiple of cuDNN's 128-key
  tile (with ``fast``: 11.46 → 11.09 ms at 1024²; not applied at 384² or 480×640).
- ``upsample_norm`` (needs ``fold``): the merged head before refinenet1's ×2 upsampling, and the upsampling,
  the head's bias and the L2 norm in one Triton kernel (:mod:`lsegrt.model.upsample_norm`): 0.271 against
  0.457 ms for Inductor's version at 1024²; with ``fast``: 11.00 → 10.83 ms at 1024², 1.97 → 1.95 ms at 384².
- ``weights_channels_last`` (needs ``channels_last``): the convolution weights stored channels-last in the
  served copy. Otherwise Inductor converts each NCHW weight parameter with a kernel of its own on every
  call (ViT-L/16 at 384²: 21 such kernels, 8 of them after the join). With ``fast`` on an H100: ViT-L/16
  2.11 → 2.04 ms at 384²; RN101 1.32 → 1.21 ms at 384², 3.35 → 3.21 ms at 1024².
- ``readout_split``: the ViT readout W·[patch ‖ class] + b as W_patch·patch + (W_class·class + b): no
  concatenated copy, half the GEMM's depth (exact up to rounding; with the above, 2.04 → 2.02 ms at 384²).
- ``shape_padding=false``: Inductor pads no GEMM. Its default pads the 577-row (384²) attention output to 584
  rows with a copy before every block's proj, a copy its timing never weighs (cuDNN's attention writes a
  fixed layout); off, ViT-L/16 ``fast`` at 1024² went 11.41 → 10.96 ms on an H100 (384²: 2.00 ms either way).
- ``pos_cache``: the ViT position embedding resized once per input size before the compiled call
  (:meth:`~lsegrt.model.vit.ViTTrunk.cache_pos_embed`), read by the graph as an input instead of
  interpolated on every call (exact); with ``fast`` on an H100 2.00 → 1.95 ms at 384², 11.41 → 11.30 at 1024².
- ``branch_priority`` (needs ``overlap``): the backbone captured at the highest stream priority, the side
  branches at the lowest (PyTorch instantiates graphs with per-node priorities), so that branch kernels
  take the SMs the backbone leaves idle instead of delaying it: with ``fast`` 11.41 → 11.35 ms at 1024².
- ``pdl``: Inductor's Triton kernels with programmatic dependent launch (Hopper and later; elsewhere
  Inductor emits none): with the three above, 1.96 → 1.92 ms at 384², 10.85 → 10.76 ms at 1024² on an H100.
  Inductor then launches through Triton's own launchers, which the saved build carries
  (:mod:`.compiled_libraries`); the first inference from a saved build took 5.2–5.3 s from opening it
  (fourteenth session; 7.2–7.4 s on a machine new to the build, eleventh).
- ``flash4``: the ViT attention in fp16/bf16 by FlashAttention-4's CuTe kernel (package ``flash-attn-4``,
  ``pip install lsegrt[flash4]``) instead of cuDNN's, through :func:`~lsegrt.model.attention.flash4_attention`
  on the (B, N, H, D) views of the qkv GEMM's output: at 4,097 tokens 149.6 against 174.2 µs a layer, at
  1,201 tokens 18.0 against 31.3 µs (H100). The kernel is JIT-compiled on the first call of a process (about
  1.3 s) unless FA4's own disk cache has it, which lsegrt turns on and a saved build carries
  (:mod:`lsegrt.model.flash4_cache`); a saved build's first output came 6.3–6.5 s after opening it
  (seventeenth session, the kernel compiled in the new process). On a GPU without the package the encoder
  refuses to open; off the GPU the op computes the same attention in PyTorch.
- ``deconv_gemm``: a ViT reassemble's ×4 and ×2 transposed convolutions (kernel = stride) as one GEMM and a
  pixel shuffle each (exact up to rounding): 0.03–0.06 ms at 1024² on an H100 (sixteenth to nineteenth sessions).
  It needed ``overlap``'s capture to keep its cuBLAS workspaces in the graph's pool (:mod:`.overlap`).
- ``quack_qkv`` (opt-in): the ViT qkv projection by quack's CuTe-DSL GEMM (:mod:`lsegrt.model.quack_gemm`; 38.7
  against cuBLAS's 41.4 µs at 4,097 rows alone, eighteenth session), from 4,097 rows in fp16/bf16; compiled by
  the CuTe DSL on the first call of each process (about 1.6 s). In the model with ``fast`` on an H100 (twentieth
  session) 10.29 → 10.23 ms at 1024², batch 1, but 78.02 → 79.12 ms at batch 8: not in ``fast``.
- ``freezing``: Inductor freezing, weights as constants (slower: 3.58 vs 2.30 ms at 384², 13.33 vs
  12.46 ms at 1024²).
- ``autotune=gemm``: cuBLAS against six of Inductor's Triton GEMM tiles (:data:`GEMM_TILES`, 20 ms
  benchmarks), pointwise epilogues fused where that benchmarks faster; cuBLAS won or came within 7 % on
  the block GEMMs and the encoder was no faster (2.32 vs 2.30 ms). ``autotune=gemm-full``: Inductor's
  whole search space (≈ 23 s per GEMM shape on an H200).
- ``coordinate_descent``: Inductor's coordinate-descent tuning of pointwise/reduction block sizes.
- ``channels_last``: Inductor's channels-last layout for every convolution (the decoder); with ``overlap``
  a ResNet's maps between the pieces are channels-last too (:func:`~lsegrt.model.branches.split_encoder`):
  as NCHW, each compiled piece converted its inputs and outputs, and ``upsample_norm``'s kernel read NCHW
  (RN101 ``fast`` 5.64 → 3.12 ms at 1024²).
- ``sdpa``: which scaled-dot-product-attention kernel the graph is traced with (cudnn, flash,
  efficient, math; default: PyTorch's choice, already the fastest here).

``engine=FILE`` opens a saved build (:func:`build_compiled`, ``lsegrt build --backend compile``): the
compiler caches of an earlier compilation (``torch.compiler.save_cache_artifacts``, with the Triton
kernels; the native libraries the compilers built, a CPU's C++ kernels and Triton's kernel launchers, in
zips beside the file: :mod:`.compiled_libraries`) are loaded before the first call, so a new process skips
Inductor compilation, kernel compilation, launcher builds and GEMM autotuning; with ``dynamo_cache`` (a
saved build's default, :mod:`.dynamo_cache`) Dynamo's traced code is in the build too and nothing is traced.
What remains is loading the compiled code and kernels, and Triton compiling lsegrt's own kernels (not in
the build; under a second): ViT-L/16 ``fast`` at 384², ``Encoder.open`` + first call 5.1–6.1 s on a host
where it took 12.8 s without the traced code (H100, bytecode cached; docs/BENCHMARKS.md).
The sidecar binds the files to the checkpoint, precision, options, torch/Triton versions and GPU, and to their
bytes; any difference is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import weakref
from pathlib import Path
from typing import Any

import torch

from ..errors import LsegError
from ..model.attention import FLASH4_PACKAGE, HALF_DTYPES, flash4_available
from ..model.quack_gemm import QUACK_PACKAGE, quack_available
from ..model.vit import pos_cache_trunks
from . import compiled_libraries as libs
from . import dynamo_cache as traced
from .base import DTYPES, Encoder, Option, check_precision
from .common import encoder_module, resolve_model, tf32_description, tf32_scope

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
AUTOTUNE = ("off", "gemm", "gemm-full")
# (BLOCK_M, BLOCK_N, BLOCK_K, num_stages, num_warps): a spread of Inductor's own CUDA GEMM configurations
# (all in its default list, torch 2.11) from small-M tiles (ViT-L at 384² has 577-row GEMMs that leave
# most SMs idle with 128-row tiles) to large ones, each within Hopper's 227 KB of shared memory.
GEMM_TILES = ((64, 64, 128, 5, 4), (64, 128, 64, 3, 4), (64, 128, 128, 4, 4), (128, 64, 32, 4, 8),
              (128, 128, 64, 3, 4), (128, 128, 64, 5, 8))
SDPA = ("auto", "cudnn", "flash", "efficient", "math")
# ``fast=true``: the options measured faster than stock on an H200 or H100 (docs/BENCHMARKS.md), each one only
# where the caller did not set it.
# `pdl` only where this torch's Inductor has it (and Inductor itself emits it only on Hopper and later).
FAST = {"overlap": True, "patch_gemm": True, "gelu_epilogue": True, "channels_last": True, "fold": True,
        "cls_key_apart": True, "upsample_norm": True, "weights_channels_last": True, "readout_split": True,
        "shape_padding": False, "pos_cache": True, "branch_priority": True, "pdl": True, "flash4": True,
        "deconv_gemm": True}
# A ResNet has no position embedding: its `fast` leaves pos_cache stock (the other three options the fourteenth
# session added were measured with RN101 in the fifteenth: 1.29 → 1.32× at 384², 1.32 → 1.36× at 1024²), no
# attention for flash4 and no reassemble for deconv_gemm.
FAST_VIT_ONLY = ("pos_cache", "flash4", "deconv_gemm")
# `flash4` only where it was measured faster: fp16/bf16 on a Hopper GPU (compute capability 9.x) that can
# import FlashAttention-4 (sixteenth and seventeenth sessions, H100).
FLASH4_FAST_CAPABILITY = 9


def pdl_supported() -> bool:
    """Whether this torch's Inductor can generate programmatic-dependent-launch code (torch ≥ 2.9)."""
    return hasattr(torch._inductor.config.triton, "enable_pdl")


def flash4_in_fast(device: torch.device | str | None, precision: str | None) -> bool:
    """Whether ``fast`` turns ``flash4`` on for ``device`` and ``precision``: fp16/bf16 on a Hopper GPU where
    FlashAttention-4 imports (elsewhere it was not measured, or its kernel does not run)."""
    if device is None or DTYPES.get(precision) not in HALF_DTYPES:
        return False
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device)[0] == FLASH4_FAST_CAPABILITY and flash4_available()


def _option(type_: type, help: str, *, default: Any = None, stock: Any = None, choices: tuple | None = None,
            switch: bool = False) -> Any:
    """One field of :class:`CompileOptions`: its :class:`Option` (what ``Encoder.open`` accepts), the stock
    value an unset (None) field resolves to, and ``switch``: whether it changes the served module itself
    (:func:`set_switches`), which then must be a private copy."""
    return dataclasses.field(default=default, metadata={
        "option": Option(type_, default, help, choices=choices), "stock": stock, "switch": switch})


def _typed(name: str, option: Option, value: Any) -> Any:
    """``value`` as given through the API (already typed; None: the option's default), else LsegError."""
    if value is None:
        return option.default
    choices = option.allowed()
    if not isinstance(value, option.type) or (choices is not None and value not in choices):
        raise LsegError(f"option {name}={value!r}: expected {option.expected()}")
    return value


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """The compile backend's options, one field each (type, help, stock value); :meth:`parse` validates,
    :meth:`resolved` fills in the stock values. Adding an option is one field here plus its effect."""

    cuda_graph: bool = _option(bool, "capture each shape in a CUDA graph (mode reduce-overhead unless given)",
                               default=False)
    mode: str | None = _option(str, "torch.compile mode (default: 'default', or 'reduce-overhead' with "
                               "cuda_graph)", choices=MODES)
    dynamic: bool = _option(bool, "one compile for symbolic batch/H/W instead of one per shape", default=False)
    tf32: bool | None = _option(bool, "TF32 in fp32 matmuls and cuDNN convolutions (unset: PyTorch's global flags)")
    freezing: bool | None = _option(bool, "Inductor freezing: weights as constants (measured slower on an H200)",
                                    stock=False)
    autotune: str | None = _option(str, "GEMM autotuning: off, gemm (6 Triton tiles + cuBLAS) or gemm-full",
                                   stock="off", choices=AUTOTUNE)
    coordinate_descent: bool | None = _option(bool, "Inductor coordinate-descent tuning of Triton kernels",
                                              stock=False)
    channels_last: bool | None = _option(bool, "force Inductor's layout optimization (channels-last convolutions)",
                                         stock=False)
    sdpa: str | None = _option(str, "attention kernel family (auto: PyTorch's choice)", stock="auto", choices=SDPA)
    overlap: bool | None = _option(bool, "decoder side branches on a second stream beside the backbone, in one "
                                   "CUDA graph of our own (needs cuda_graph on a GPU)", stock=False)
    branch_priority: bool | None = _option(bool, "with overlap: the backbone captured at the highest stream "
                                           "priority, the side branches at the lowest, so that branch kernels take "
                                           "the SMs the backbone leaves idle instead of delaying it", stock=False)
    weights_channels_last: bool | None = _option(bool, "with channels_last: the convolution weights stored "
                                                 "channels-last once, not converted by Inductor on every call",
                                                 stock=False, switch=True)
    readout_split: bool | None = _option(bool, "ViT readout as the patch tokens' GEMM plus the class token's "
                                         "half as a bias (exact): no concatenation, half the GEMM's depth",
                                         stock=False, switch=True)
    patch_gemm: bool | None = _option(bool, "ViT patch embedding as one GEMM instead of a 16x16 convolution",
                                      stock=False, switch=True)
    gelu_epilogue: bool | None = _option(bool, "ViT fc1 bias + GELU in the GEMM's epilogue (tanh-approximate "
                                         "GELU)", stock=False, switch=True)
    fold: bool | None = _option(bool, "decoder 1x1 convolutions re-associated (exact): out_convs before the "
                                "upsampling, refinenet1's out_conv merged into head1", stock=False, switch=True)
    cls_key_apart: bool | None = _option(bool, "ViT attention over the patch keys, the class token's key merged "
                                         "in by its log-sum-exp (exact)", stock=False, switch=True)
    upsample_norm: bool | None = _option(bool, "with fold: refinenet1's merged head before its upsampling; the "
                                         "upsampling, bias and L2 norm in one Triton kernel", stock=False,
                                         switch=True)
    pos_cache: bool | None = _option(bool, "ViT position embedding resized once per input size and kept, not "
                                     "interpolated on every call (exact)", stock=False, switch=True)
    shape_padding: bool | None = _option(bool, "Inductor pads a GEMM's rows where its own timing finds the padded "
                                         "GEMM faster (its default); off: no padding copies (e.g. ViT-L/16's "
                                         "577-row attention output before proj)", stock=True)
    pdl: bool | None = _option(bool, "Inductor's Triton kernels with programmatic dependent launch (Hopper+; a "
                               "saved build carries the Triton launchers they need)", stock=False)
    deconv_gemm: bool | None = _option(bool, "ViT reassemble's x4 and x2 transposed convolutions (kernel = stride) as "
                                       "one GEMM and a pixel shuffle each (exact)", stock=False, switch=True)
    cudnn_benchmark: bool | None = _option(bool, "cuDNN times its convolution algorithms once per shape and keeps "
                                           "the fastest (torch.backends.cudnn.benchmark)", stock=False)
    flash4: bool | None = _option(bool, "ViT attention (fp16/bf16) by FlashAttention-4's kernel (package "
                                  "flash-attn-4, CuTe DSL; Hopper or newer) instead of cuDNN's", stock=False,
                                  switch=True)
    quack_qkv: bool | None = _option(bool, "ViT qkv projection (fp16/bf16, from 4,097 rows) by quack's CuTe-DSL GEMM "
                                     "(package quack-kernels, with flash-attn-4; Hopper) instead of cuBLAS's",
                                     stock=False, switch=True)
    dynamo_cache: bool | None = _option(bool, "a saved build also carries Dynamo's traced code and guards "
                                        "(torch's caching precompile): a new process opening it skips tracing "
                                        "the model (default: on for a saved build where torch has it, unless it "
                                        "runs Inductor's own CUDA graphs; never for a live compile)", stock=False)
    fast: bool = _option(bool, "the options measured faster on an H200 or H100: "
                         + ", ".join(k if v is True else f"{k}={str(v).lower()}" for k, v in FAST.items())
                         + " (each unless set; pos_cache, flash4 and deconv_gemm for a ViT only, flash4 in fp16/bf16 "
                         "on a Hopper GPU that imports FlashAttention-4, and then without cls_key_apart)", default=False)

    @classmethod
    def table(cls) -> dict[str, Option]:
        """name → :class:`Option`, as the backend declares them to :meth:`Encoder.open`."""
        return {f.name: f.metadata["option"] for f in dataclasses.fields(cls)}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def switches(cls) -> tuple[str, ...]:
        """The options that change the served module itself (:func:`set_switches`)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["switch"])

    @classmethod
    def parse(cls, options: dict[str, Any], backbone: str | None = None, device: torch.device | str | None = None,
              precision: str | None = None, saved: bool = False) -> "CompileOptions":
        """Options as given to :meth:`Encoder.open` → validated; unknown keys and bad values refused.
        ``backbone`` (the model's, "vit" or "resnet"; None: validation only) picks what ``fast`` fills in:
        a ResNet's bundle leaves out :data:`FAST_VIT_ONLY`; ``device`` and ``precision`` whether it fills
        ``flash4`` (:func:`flash4_in_fast`). ``saved``: for a saved build (made or opened), where an unset
        ``dynamo_cache`` is on wherever this torch has it."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise LsegError(f"unknown option(s) for the compile backend: {', '.join(unknown)}; "
                            f"valid: {', '.join(cls.names())}")
        parsed = cls(**{name: _typed(name, option, options.get(name)) for name, option in cls.table().items()})
        if parsed.fast:  # the bundle fills what the caller left unset, where it can apply
            fill = {k: v for k, v in FAST.items() if backbone != "resnet" or k not in FAST_VIT_ONLY}
            if parsed.fold is False:  # upsample_norm moves fold's merged head
                fill["upsample_norm"] = False
            if parsed.channels_last is False:  # weights laid out as the maps are
                fill["weights_channels_last"] = False
            if parsed.overlap is False:  # branch_priority orders overlap's two streams
                fill["branch_priority"] = False
            if parsed.dynamic:  # pos_cache keeps one embedding per input size
                fill["pos_cache"] = False
            if not pdl_supported():
                fill["pdl"] = False
            if "flash4" in fill and parsed.flash4 is None and not flash4_in_fast(device, precision):
                fill["flash4"] = False
            flash4 = fill.get("flash4", False) if parsed.flash4 is None else parsed.flash4
            if flash4:  # FA4 over all 4,097 keys (1024²) beat FA4 over 4,096 plus the class key's merge kernel
                fill["cls_key_apart"] = False
            parsed = dataclasses.replace(parsed, **{k: v for k, v in fill.items() if getattr(parsed, k) is None})
        inductor_graphs = parsed.overlap is not True and (
            parsed.mode in ("reduce-overhead", "max-autotune") or (parsed.mode is None and parsed.cuda_graph))
        if parsed.dynamo_cache is None and saved and traced.supported() and not inductor_graphs:
            parsed = dataclasses.replace(parsed, dynamo_cache=True)
        if parsed.dynamo_cache and inductor_graphs:
            raise LsegError("option dynamo_cache=true: Inductor's own CUDA graphs (mode reduce-overhead or max-autotune, "
                            "--cuda-graph without overlap) are not restored from Dynamo's saved code (a stock build "
                            "ran at 5.6-6.2 ms instead of 2.45 at 384², H100): leave it unset, or add "
                            "--option overlap=true (lsegrt's own CUDA graph)")
        if parsed.overlap:
            if parsed.dynamic:
                raise LsegError("option overlap=true captures one CUDA graph per input shape: it cannot be dynamic")
            if parsed.mode is not None:
                raise LsegError("option overlap=true compiles its pieces itself: leave mode unset")
        if parsed.pos_cache and parsed.dynamic:
            raise LsegError("option pos_cache=true keeps one position embedding per input size: it cannot be "
                            "dynamic")
        if parsed.branch_priority and not parsed.overlap:
            raise LsegError("option branch_priority=true orders overlap's two streams: it needs overlap=true")
        if parsed.weights_channels_last and not parsed.channels_last:
            raise LsegError("option weights_channels_last=true stores weights as channels_last lays out the "
                            "maps: it needs channels_last=true")
        if parsed.upsample_norm and not parsed.fold:
            raise LsegError("option upsample_norm=true moves fold's merged head: it needs fold=true")
        if parsed.dynamo_cache and not traced.supported():
            raise LsegError(f"option dynamo_cache=true: torch {torch.__version__}'s Dynamo has no caching precompile")
        if parsed.pdl and not pdl_supported():
            raise LsegError(f"option pdl=true: torch {torch.__version__}'s Inductor has no PDL support")
        return parsed.resolved()

    def resolved(self) -> "CompileOptions":
        """Fields the caller left unset take the stock value."""
        stock = {f.name: f.metadata["stock"] for f in dataclasses.fields(self)
                 if f.metadata["stock"] is not None and getattr(self, f.name) is None}
        return dataclasses.replace(self, **stock)

    @property
    def effective_mode(self) -> str:
        if self.overlap:  # the pieces are compiled without CUDA graphs; OverlapGraph captures the whole call
            return "default"
        return self.mode or ("reduce-overhead" if self.cuda_graph else "default")

    def inductor_options(self) -> dict[str, Any] | None:
        """``torch.compile(options=...)`` for the non-stock settings, or None (stock: ``mode=`` only).

        torch.compile takes a mode or an options dict, not both: the mode's own settings are expanded
        into the dict (``torch._inductor.list_mode_options``) so that e.g. CUDA graphs stay on.
        """
        extra: dict[str, Any] = {}
        if self.freezing:
            extra["freezing"] = True
        if self.autotune in ("gemm", "gemm-full"):
            extra.update({"max_autotune_gemm": True, "max_autotune_gemm_backends": "ATEN,TRITON",
                          "max_autotune_conv_backends": "ATEN", "max_autotune_gemm_search_space": "DEFAULT",
                          "benchmark_epilogue_fusion": True})
        if self.autotune == "gemm":
            extra.update({"test_configs.autotune_choice_desc_regex": gemm_tiles_regex(),
                          "inductor_default_autotune_warmup": 5, "inductor_default_autotune_rep": 20})
        if self.coordinate_descent:
            extra["coordinate_descent_tuning"] = True
        if self.channels_last:
            extra["force_layout_optimization"] = True
        if self.pdl:
            extra["triton.enable_pdl"] = True
        if self.shape_padding is False:
            extra["shape_padding"] = False
        if not extra:
            return None
        return {**torch._inductor.list_mode_options(self.effective_mode), **extra}

    def record(self) -> dict[str, Any]:
        """What goes into describe() and a saved build's sidecar (every resolved field)."""
        return {**dataclasses.asdict(self), "mode": self.effective_mode}


def gemm_tiles_regex(tiles=GEMM_TILES) -> str:
    """Inductor's autotuning-choice filter for :data:`GEMM_TILES`: it matches a Triton GEMM choice's
    description ("ACC_TYPE=…, BLOCK_K=64, BLOCK_M=64, BLOCK_N=128, …, num_stages=3, num_warps=4") for
    those tiles, and the empty description of the cuBLAS (extern) choices."""
    alts = [rf"BLOCK_K={bk}, BLOCK_M={bm}, BLOCK_N={bn}, .*num_stages={st}, num_warps={w}(,|$)"
            for bm, bn, bk, st, w in tiles]
    return "^$|" + "|".join(alts)


def sdpa_scope(choice: str):
    """Context that restricts scaled-dot-product attention to one kernel family ("auto": no change).

    The choice is made when a graph is traced (the first call of each shape), and the context is also
    held on every later call so a recompile sees the same restriction.
    """
    if choice == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[choice]
    return sdpa_kernel([backend])


@contextlib.contextmanager
def cudnn_benchmark_scope(on: bool | None):
    """``torch.backends.cudnn.benchmark`` on for one call (None/False: left as it is), restored after.

    cuDNN's choice is timed on a shape's first call and cached for the process; both CUDA-graph paths
    run each shape once before they capture it, so the capture replays the timed choice."""
    if not on:
        yield
        return
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def check_packages(options: CompileOptions, device: torch.device) -> None:
    """On a GPU, ``flash4`` needs FlashAttention-4's package and ``quack_qkv`` quack's (elsewhere their ops
    compute the reference)."""
    if options.flash4 and device.type == "cuda" and not flash4_available():
        raise LsegError(f"option flash4=true needs FlashAttention-4's kernels: pip install {FLASH4_PACKAGE}")
    if options.quack_qkv and device.type == "cuda" and not quack_available():
        raise LsegError(f"option quack_qkv=true needs quack's GEMM: pip install {QUACK_PACKAGE}")


def set_switches(module: torch.nn.Module, options: CompileOptions) -> torch.nn.Module:
    """Turn the model's kernel switches on ``module`` (a private copy) as ``options`` ask."""
    from ..model.folding import fold_linear_maps
    from ..model.vit import Attention, Mlp, PatchEmbed, ProjectReadout, Reassemble, ViTTrunk

    if options.fold:
        fold_linear_maps(module, upsample_norm=options.upsample_norm)
    for m in module.modules():
        if isinstance(m, PatchEmbed) and options.patch_gemm:
            m.as_gemm = True
        if isinstance(m, Mlp) and options.gelu_epilogue:
            m.gelu_epilogue = True
        if isinstance(m, Attention) and options.cls_key_apart:
            m.cls_key_apart = True
        if isinstance(m, Attention) and options.flash4:
            m.flash4 = True
        if isinstance(m, Attention) and options.quack_qkv:
            m.quack_qkv = True
        if isinstance(m, ProjectReadout) and options.readout_split:
            m.split = True
        if isinstance(m, ViTTrunk) and options.pos_cache:
            m.pos_cache = True
        if isinstance(m, Reassemble) and options.deconv_gemm:
            m.deconv_gemm = True
    if options.weights_channels_last:
        weights_channels_last(module)
    return module


def weights_channels_last(module: torch.nn.Module) -> None:
    """Store ``module``'s convolution weights channels-last, except the ViT patch embedding's (its GEMM
    form flattens the weight, which would then copy it on every call).

    Under Inductor's layout optimization every convolution runs channels-last; weights that are NCHW
    parameters are converted by a kernel of their own on every call (ViT-L/16 ``fast`` at 384²: 21 such
    kernels, 8 of them in the fusion chain after the join; Inductor's generated code is in
    docs/measurements). Stored channels-last, the graph takes them as they are.

    The strides are set exactly (:func:`channels_last_exactly`): ``contiguous(memory_format=channels_last)``
    leaves a 1×1 kernel's NCHW strides as they are (they pass as channels-last too), and PyTorch then takes such
    a weight for NCHW. Inductor hands the reassemble's 1×1 convolutions the transposed token map as a view whose
    size-1 batch has stride 0, which PyTorch does not take for channels-last either, so cuDNN ran those four
    convolutions in NCHW: a copy of the input before each and a layout conversion after (H100, 1024², nineteenth
    session: 0.235 ms of copies a call, 32 µs of them after the backbone's last block; with exact strides none
    is left, twentieth session).
    """
    from ..model.vit import PatchEmbed

    skip = {id(p) for m in module.modules() if isinstance(m, PatchEmbed) for p in m.parameters()}
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and id(m.weight) not in skip:
            m.weight.data = channels_last_exactly(m.weight.data)


def channels_last_exactly(w: torch.Tensor) -> torch.Tensor:
    """A 4-d ``w`` with the strides PyTorch gives a new channels-last tensor of its shape, size-1 dimensions
    included (a copy unless it has them already; ``contiguous`` keeps any tensor that passes as channels-last)."""
    exact = torch.empty_like(w, memory_format=torch.channels_last)
    return w if w.stride() == exact.stride() else exact.copy_(w)


def served_module(model, precision: str, device: torch.device, options: CompileOptions) -> torch.nn.Module:
    """The CastEncoder the backend compiles: :func:`encoder_module`, a private copy with the switches set
    when ``options`` turn any on (the caller's model is never changed)."""
    private = any(getattr(options, name) for name in CompileOptions.switches())
    return set_switches(encoder_module(model, precision, device, private=private), options)


def compile_module(module: torch.nn.Module, options: CompileOptions, device: torch.device | None = None, *,
                   retrace: bool = False):
    """``torch.compile`` of ``module`` with ``options`` (whole graph; stock settings use ``mode=`` alone).
    With ``overlap``, ``module`` (a CastEncoder) is cut at its taps and served by an :class:`OverlapGraph`.
    ``retrace`` (a build with ``dynamo_cache``): traced code an earlier build saved for these modules is
    removed first (:func:`.dynamo_cache.forget`)."""
    if options.overlap:
        from ..model.branches import split_encoder
        from .overlap import OverlapGraph

        piece = dataclasses.replace(options, overlap=False, cuda_graph=False, branch_priority=False)
        split = split_encoder(module.encoder, module.dtype, channels_last=bool(options.channels_last))
        return OverlapGraph(split, lambda m: compile_module(m, piece, retrace=retrace), device or torch.device("cpu"),
                            priority=bool(options.branch_priority))
    if retrace:
        traced.forget(module)
    inductor = options.inductor_options()
    if inductor is None:
        return torch.compile(module, mode=options.effective_mode, dynamic=options.dynamic, fullgraph=True)
    return torch.compile(module, options=inductor, dynamic=options.dynamic, fullgraph=True)


# Dynamo keeps one entry per distinct input shape (and model structure, precision, options) for each code
# object, and every compile encoder of a process shares the model's forward code. At its default limit
# (8) a process's 9th distinct shape was a hard failure (fullgraph=True: FailOnRecompileLimitHit), e.g.
# `segment` over photos of many sizes. Each entry is a specialization the caller asked for, so lsegrt
# allows this many; `dynamic=true` serves any number of shapes with one.
RECOMPILE_LIMIT = 1024


@contextlib.contextmanager
def call_scope(options: CompileOptions):
    """Process-wide flags a compiled call runs (and is traced) under: TF32, cuDNN's benchmark mode, the
    SDPA kernel choice, and Dynamo's recompile limits (:data:`RECOMPILE_LIMIT`)."""
    cfg = torch._dynamo.config
    limits = cfg.patch(recompile_limit=max(cfg.recompile_limit, RECOMPILE_LIMIT),
                       accumulated_recompile_limit=max(cfg.accumulated_recompile_limit, 4 * RECOMPILE_LIMIT))
    with tf32_scope(options.tf32), cudnn_benchmark_scope(options.cudnn_benchmark), sdpa_scope(options.sdpa), \
            limits, traced.scope(options.dynamo_cache):
        yield


class CompiledEncoder(Encoder):
    name = "compile"
    options = {**Encoder.options, **CompileOptions.table()}

    def __init__(self, model, device, precision: str, options: CompileOptions | None = None,
                 engine: Path | None = None):
        super().__init__(device, precision)
        self.options = options or CompileOptions().resolved()
        self.tf32 = self.options.tf32
        if self.options.cuda_graph and self.device.type != "cuda":
            raise LsegError("--cuda-graph needs a CUDA device")
        if self.options.overlap and self.device.type == "cuda" and not self.options.cuda_graph:
            raise LsegError("option overlap=true on a GPU runs as a CUDA graph: add --cuda-graph")
        check_packages(self.options, self.device)
        self.model = model
        self.cuda_graph = self.options.cuda_graph
        self.mode = self.options.effective_mode
        self.dynamic = self.options.dynamic
        self.engine = engine
        served = served_module(model, precision, self.device, self.options)
        self.pos_trunks = pos_cache_trunks(served)
        # before anything is compiled: traced code a build installs runs for every encoder of its code objects
        installs = bool(self.options.dynamo_cache) and engine is not None
        release = traced.claim(traced.family(bool(self.options.overlap)),
                               traced.request_key(build_request(model, precision, self.device, self.options)), installs)
        # an opened build's traced code is installed here, its guards built under the inference mode of the calls
        # (torch 2.11 rebuilds a tensor guard's dispatch keys from the thread's state at install: installed
        # outside inference mode, every guard failed and the model was traced again)
        try:
            with traced.scope(self.options.dynamo_cache), torch.inference_mode(installs):
                self.module = compile_module(served, self.options, self.device,
                                             retrace=bool(self.options.dynamo_cache) and engine is None)
        except BaseException:
            release([])
            raise
        installed = []
        if installs:
            traced.skip_installed_names()
            installed = traced.packages(self.compiled_wrappers())
        # on close, or when the encoder is collected unclosed (not at interpreter exit): the claim goes, and the
        # traced code with the last encoder of its request
        self._forget = weakref.finalize(self, release, installed)
        self._forget.atexit = False

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cpu", precision="fp32", variant=None, **options):
        CompileOptions.parse(options)  # bad options fail before a model is built
        model = resolve_model(checkpoint, device, variant)
        opts = CompileOptions.parse(options, model.config.backbone, device, precision, saved=engine is not None)
        if engine is None:
            if opts.dynamo_cache:
                raise LsegError("option dynamo_cache=true serves Dynamo's traced code from a saved build: build one "
                                "(lsegrt build --backend compile; on by default there) and open it with engine=")
            return cls(model, device, precision, opts)
        # the build's traced code goes into torch's folder and is read back when the module is wrapped
        with traced.folder_lock(opts.dynamo_cache):
            load_saved_build(engine, model, precision, device, opts)
            return cls(model, device, precision, opts, Path(engine))

    def close(self) -> None:
        self._forget()
        super().close()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        for trunk in self.pos_trunks:  # before the graph, which reads the cached embedding as an input
            trunk.cache_pos_embed(*x.shape[-2:])
        with call_scope(self.options):
            out = self.module(x)
        # CUDA-graph outputs live in a pool that the next replay overwrites: hand the caller its own copy
        # (an OverlapGraph's output already is the caller's own: its last kernel runs after the graph)
        return out.clone() if self.cuda_graph and not self.options.overlap else out

    def compiled_wrappers(self) -> list:
        """The ``torch.compile`` wrappers this encoder calls (``overlap``: one per piece)."""
        m = self.module
        return [*m.segments, *m.branches, m.tail, m.finish] if self.options.overlap else [m]

    def describe(self):
        info = {**super().describe(), "model": self.model.source, "mode": self.mode, "dynamic": self.dynamic,
                "cuda_graph": self.cuda_graph, "torch": torch.__version__, "options": self.options.record(),
                **tf32_description(self.tf32)}
        if self.engine is not None:
            info["engine"] = str(self.engine)
        return info


# -- saved builds ----------------------------------------------------------------------------------
def build_request(model, precision: str, device: torch.device, options: CompileOptions,
                  shapes=None) -> dict[str, Any]:
    """Everything a saved build depends on; a load compares the caller's request key by key (without
    ``shapes``: any shape runs, those not built for compile on first use)."""
    from ..sidecar import gpu_info

    request = {
        "backend": "compile",
        "checkpoint_sha256": model.sha256,
        "checkpoint_name": model.name,
        "variant": model.variant,
        "precision": check_precision(precision),
        "device_type": torch.device(device).type,
        "options": options.record(),
        "torch": torch.__version__,
        **{k: v for k, v in gpu_info(str(device)).items() if k in ("gpu", "compute_capability")},
    }
    if torch.device(device).type == "cuda":
        import triton

        request["triton"] = triton.__version__
    if shapes is not None:
        request["shapes"] = [list(int(v) for v in s) for s in shapes]
    return request


def build_compiled(model, path: str | Path, *, precision: str = "fp16", device: str | torch.device = "cpu",
                   shapes=((1, 384, 384),), options: dict[str, Any] | None = None, request=None) -> dict[str, Any]:
    """Compile ``model`` for each (B,H,W) in ``shapes``, save what the compiler produced into ``path``
    (+ JSON sidecar) and return the sidecar's info.

    The file holds ``torch.compiler.save_cache_artifacts()``: Inductor's compiled graphs with their
    Triton kernels, AOTAutograd entries and autotuning results, for exactly these shapes (another shape
    still compiles when it is first seen). The native code the compilers built (a CPU's C++ kernels,
    Triton's launchers, FlashAttention-4's kernels) goes into zips beside it (:mod:`.compiled_libraries`).
    Staged and published atomically; the sidecar last.
    """
    from ..fileio import check_output_path
    from ..sidecar import publish, staging

    device = torch.device(device)
    opts = CompileOptions.parse(options or {}, model.config.backbone, device, precision, saved=True)
    path = check_output_path(path)
    shapes = [tuple(int(v) for v in s) for s in shapes]
    for b, h, w in shapes:
        if b < 1 or h % 32 or w % 32 or h < 32 or w < 32:
            raise LsegError(f"build shape {b}x{h}x{w}: batch ≥ 1, H and W positive multiples of 32")
    request = request or build_request(model, precision, device, opts, shapes)
    with traced.folder_lock(opts.dynamo_cache):  # wrapping reads the folder: nothing stale, nobody writing
        enc = CompiledEncoder(model, device, precision, opts)
    start = time.perf_counter()
    per_shape = []
    gen = torch.Generator(device).manual_seed(0)
    with _fresh_artifacts():
        for b, h, w in shapes:
            t0 = time.perf_counter()
            x = torch.randn(b, 3, h, w, device=device, generator=gen)
            for _ in range(3 if opts.cuda_graph else 1):  # CUDA graphs are recorded on the second/third call
                enc(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            per_shape.append({"shape": [b, h, w], "compile_seconds": round(time.perf_counter() - t0, 2)})
        with traced.scope(opts.dynamo_cache), traced.folder_lock(opts.dynamo_cache):
            saved = torch.compiler.save_cache_artifacts()  # with dynamo_cache, also into torch's folder
    pieces = len(enc.compiled_wrappers())
    enc.close()
    if saved is None:
        raise LsegError("torch.compile produced no cache artifacts to save (are Inductor's caches disabled, "
                        "e.g. TORCHINDUCTOR_FORCE_DISABLE_CACHES=1?)")
    blob, cache_info = saved
    counts = _artifact_counts(cache_info)
    if opts.dynamo_cache and counts.get("precompile", 0) != pieces:
        raise LsegError(f"torch {torch.__version__} saved the traced code of {counts.get('precompile', 0)} of the "
                        f"{pieces} compiled modules: build without dynamo_cache")
    libraries = libs.loaded()
    with staging(path) as stage:
        staged = stage / path.name
        staged.write_bytes(blob)
        data_files = {}
        for kind, found in libraries.items():
            if found:
                zipped = data_files[path.name + kind.suffix] = stage / (path.name + kind.suffix)
                libs.write(zipped, found)
        info = {"shapes": [s["shape"] for s in per_shape], "compile": per_shape,
                "build_seconds": round(time.perf_counter() - start, 2), "artifact_bytes": staged.stat().st_size,
                "artifacts": counts, "cpp_kernels": len(libraries[libs.CPP_KERNELS]),
                "triton_launchers": len(libraries[libs.TRITON_LAUNCHERS]),
                "flash4_kernels": len(libraries[libs.FLASH4_KERNELS]), "cuda": torch.version.cuda}
        # the sidecar's contents record the file's size and sha256: nothing else needs to repeat them
        publish(path, staged, request, info, data_files=data_files)
    return info


def _fresh_artifacts():
    """Collect only this build's compiler artifacts, not those of earlier compiles in the process.

    Uses the artifact manager's own scoping where this torch has it (a private API; without it the
    file may also carry earlier compiles' entries, which is harmless)."""
    try:
        from torch.compiler._cache import CacheArtifactManager

        return CacheArtifactManager.with_fresh_cache()
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


def _artifact_counts(cache_info) -> dict[str, int]:
    """CacheInfo → {artifact type: count} (its fields are lists named ``<type>_artifacts``)."""
    counts = {}
    for name in dir(cache_info):
        if name.endswith("_artifacts") and not name.startswith("_"):
            value = getattr(cache_info, name, None)
            if isinstance(value, list):
                counts[name.removesuffix("_artifacts")] = len(value)
    return counts


def saved_build_intact(path: str | Path) -> bool:
    """True when ``path``'s bytes (and its data files') are the ones its sidecar records (False: replaced,
    damaged, or no sidecar)."""
    from ..sidecar import read_sidecar

    try:
        read_sidecar(path)  # verifies the recorded contents
    except (LsegError, OSError):
        return False
    return True


def load_saved_build(engine, model, precision: str, device, options: CompileOptions) -> dict[str, Any]:
    """Check ``engine``'s sidecar against this request and its bytes against the recorded hash, then
    load its compiler caches (before the first compile of this process needs them)."""
    from ..sidecar import check_sidecar

    request = build_request(model, precision, torch.device(device), options)
    sidecar = check_sidecar(engine, request)  # also the file's (and each data file's) bytes
    for name in sidecar.get("contents", {}).get("data_files", {}):  # each verified with the sidecar
        if (kind := libs.kind_of(name)) is not None:
            libs.restore(Path(engine).with_name(name), kind, torch.device(device))
    with traced.scope(options.dynamo_cache):
        result = torch.compiler.load_cache_artifacts(Path(engine).read_bytes())
    if result is None:
        raise LsegError(f"saved build {Path(engine).name} could not be read by torch {torch.__version__}; "
                        "rebuild it with `lsegrt build --backend compile`")
    return sidecar
