"""The `compile` backend's ``overlap`` path: the encoder's pieces compiled by Inductor and captured into
one CUDA graph in which the decoder's side branches run on a second stream beside the backbone.

Stock ``torch.compile`` runs one stream: at batch 1 the backbone's GEMMs (577 rows at 384²) leave most
SMs idle while the decoder work on the first three taps waits for the backbone to finish. Here that
work (:mod:`lsegrt.model.branches`) forks off after each tap and joins before the fusion chain; the
CUDA graph keeps the fork/join as graph edges, so replay needs no host work. Each piece is compiled
with the same Inductor options as the whole model would be (CUDA graphs off inside; the whole call
is one graph of our own).

The last kernels (:class:`~lsegrt.model.branches.SplitEncoder`'s ``finish``: refinenet1's out_conv, head1,
the L2 normalization) run after the graph, from the graph's upsampled map into new memory: the caller
gets its own output without the copy out of the graph's memory pool that a graph's output needs (at
1024² a 537 MB float32 copy, 0.26 ms on an H200). The host queues them while the GPU still replays the
graph.

Memory (the caching allocator is per stream): every tap stays referenced until the join, so the main
stream cannot reuse a buffer a branch still reads. A branch's outputs, allocated on the side stream, are
freed once the tail is queued; the side stream reuses them only after its next fork, which waits for
the main stream, so never while the tail still reads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from ..model.branches import SplitEncoder

WARMUP = 3  # calls before capture: the first compiles, the rest let Inductor/cuDNN settle their choices
# Dynamo keeps its compiled entries per code object, and the four segments (and the four branches)
# share one forward: each input shape costs four entries of it, where the whole-model compile costs
# one. Its recompile limit is raised by that factor while pieces compile, so they get as many shapes
# as the whole-model compile does (compiled.RECOMPILE_LIMIT, set by its call_scope).
SHARED = 4


class OverlapGraph:
    """Callable (B,3,H,W) float32 → encoder output (a new tensor, the caller's own), one CUDA graph per
    input shape.

    ``compile_fn`` wraps each piece (e.g. ``torch.compile``). On a CPU device the pieces run in order
    without streams or graphs (the same code path, for tests).
    """

    def __init__(self, split: SplitEncoder, compile_fn: Callable, device: torch.device, priority: bool = False):
        self.split = split
        self.segments = [compile_fn(m) for m in split.segments]
        self.branches = [compile_fn(m) for m in split.branches]
        self.tail = compile_fn(split.tail)
        self.finish = compile_fn(split.finish)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.side = torch.cuda.Stream(self.device) if self.cuda else None  # priority 0: CUDA's lowest
        # ``priority``: capture the backbone on a stream of the highest priority (-64 is clamped to the
        # device's), the branches staying on the lowest. PyTorch instantiates graphs with
        # cudaGraphInstantiateFlagUseNodePriority, so each kernel node keeps its capture stream's priority:
        # the block scheduler then hands an SM to a branch's thread blocks only when no backbone block waits
        # (a hint; running blocks are never preempted). None: torch.cuda.graph's own capture stream.
        self.capture = torch.cuda.Stream(self.device, priority=-64) if self.cuda and priority else None
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with self._limits():
            return self.finish(self._features(image))

    @staticmethod
    def _limits():
        return torch._dynamo.config.patch(recompile_limit=SHARED * torch._dynamo.config.recompile_limit)

    def _features(self, image: torch.Tensor) -> torch.Tensor:
        """One pass up to the finish (refinenet1's upsampled map), forking each of the first three branches
        onto the side stream (on CUDA)."""
        gh, gw = self.split.grid(*image.shape[-2:])
        main = torch.cuda.current_stream(self.device) if self.cuda else None
        x, taps, feats = image, [], []
        last = len(self.segments) - 1
        for k, (segment, branch) in enumerate(zip(self.segments, self.branches)):
            x = segment(x)
            taps.append(x)
            if self.side is None or k == last:
                feats.append(branch(x, gh, gw))
                continue
            self.side.wait_stream(main)
            with torch.cuda.stream(self.side):
                feats.append(branch(x, gh, gw))
        if self.side is not None:
            main.wait_stream(self.side)
        s1, s2, s3, b4 = feats
        out = self.tail(b4, s3, s2, s1)
        del taps  # referenced until after the join (see module docstring)
        return out

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if not self.cuda:
            return self.forward(image)
        key = (tuple(image.shape), image.dtype)
        if key not in self.graphs:
            self.graphs[key] = self._capture(image)
        graph, static_in, static_map = self.graphs[key]
        static_in.copy_(image)
        graph.replay()
        return self.finish(static_map)  # compiled for this shape during the capture's warm-up

    def _capture(self, image: torch.Tensor):
        """Warm up on a side stream (torch.cuda.graphs' recipe), then capture one pass up to the finish."""
        static_in = image.clone()
        warm = torch.cuda.Stream(self.device)
        warm.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(warm):
            for _ in range(WARMUP):
                self.forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(warm)
        graph = torch.cuda.CUDAGraph()
        # thread_local, as Inductor's own CUDA graphs: the extraction pipeline copies the next batch to the
        # GPU from another thread while this one may be capturing
        with _cublas_workspaces_in_graph_pool():
            with torch.cuda.graph(graph, stream=self.capture, capture_error_mode="thread_local"), self._limits():
                static_map = self._features(static_in)
        return graph, static_in, static_map


def _clear_cublas_workspaces() -> None:
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()


@contextlib.contextmanager
def _cublas_workspaces_in_graph_pool():
    """cuBLAS's workspaces dropped before a capture and after it, as Inductor's CUDA-graph trees do around each
    recording (torch._inductor.cudagraph_trees.clear_cublas_manager).

    PyTorch keeps one cuBLAS workspace per (handle, stream) and a captured GEMM embeds its address. The side
    stream's was allocated in the ordinary pool by the warm-up; and every CUDA-graph-tree recording of another
    compiled model in the process (stock torch.compile at a new size) frees all workspaces, so that memory
    went back to the allocator while this graph still used it: `deconv_gemm`'s GEMMs on the side stream then
    failed with "unspecified launch failure" (docs/BENCHMARKS.md, eighteenth and nineteenth sessions). Dropped
    before the capture, each workspace the graph needs is allocated inside the capture, in the graph's private
    pool, which keeps it for the graph's life; dropped after, no later clear can free it from under the graph."""
    _clear_cublas_workspaces()
    try:
        yield
    finally:
        _clear_cublas_workspaces()
