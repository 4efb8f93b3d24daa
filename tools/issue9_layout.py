"""Issue 9 diagnostic (GPU): the memory format of the maps `fast`'s finish and its upsample_norm kernel get.

For each variant, at 384² and 1024², batch 1, fp16, `fast` with and without `upsample_norm`: the strides
of the map the CUDA graph hands to the finish (the OverlapGraph's static map), of the map the Triton
kernel reads (its first call), of the output, and a rough median latency (50 synchronized calls; the
benchmark is `lsegrt bench`). The kernel wants channels-last input (docs/BENCHMARKS.md, seventh session).

    source tools/device_env.sh; python3 tools/issue9_layout.py rn101[,vit_l16] $OUT/layout.json
"""

from __future__ import annotations

import json
import sys

import torch

import lsegrt.model.upsample_norm as un
from lsegrt.backends.base import Encoder
from lsegrt.backends.common import resolve_model


def _layout(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "stride": list(t.stride()),
            "channels_last": t.is_contiguous(memory_format=torch.channels_last)}


def main(variants: list[str], out: str) -> None:
    seen: list[dict] = []
    kernel = un._triton

    def spy(x, bias):  # the op looks _triton up at each call: this sees what the compiled graph hands it
        if not seen:
            seen.append(_layout(x))
        return kernel(x, bias)

    un._triton = spy
    rows = []
    for variant in variants:
        model = resolve_model(None, "cuda", variant)
        for size in (384, 1024):
            for opts in ({"fast": True}, {"fast": True, "upsample_norm": False}):
                seen.clear()
                enc = Encoder.open("compile", checkpoint=model, device="cuda", precision="fp16", cuda_graph=True, **opts)
                x = torch.randn(1, 3, size, size, device="cuda")
                for _ in range(3):
                    y = enc(x)
                graphs = getattr(enc.module, "graphs", {})
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                times = []
                for _ in range(50):
                    start.record()
                    enc(x)
                    end.record()
                    torch.cuda.synchronize()
                    times.append(start.elapsed_time(end))
                row = {"variant": variant, "size": size, "options": opts, "kernel_input": list(seen),
                       "static_map": _layout(next(iter(graphs.values()))[2]) if graphs else None,
                       "out_stride": list(y.stride()), "p50_ms": sorted(times)[25]}
                print(json.dumps(row), flush=True)
                rows.append(row)
                del enc
                torch._dynamo.reset()
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1].split(","), sys.argv[2])
