"""Issue 9 diagnostic (GPU): what in a compiled call makes the host wait for the GPU.

tools/issue9_host.py found the host blocked in every call while the GPU still had queued work (stock and
`fast`). Per option set, after warm-up: one call under PyTorch's sync debug mode ("error": an ATen
operation that synchronizes raises, with its stack), then, each behind a GPU sleep of ~200 ms, the host
time of a whole call and (for `overlap`) of each of its steps: the input copy, the graph's replay, the
finish. A step that waits for the GPU takes about the sleep's length.

    source tools/device_env.sh; python3 tools/issue9_sync.py vit_l16 384 fast=true
"""

from __future__ import annotations

import sys
import time
import traceback

import torch

from lsegrt.backends.base import Encoder
from lsegrt.backends.common import resolve_model

SLEEP_CYCLES = int(4e8)  # ~0.2 s at ~2 GHz


def _host_ms(fn) -> float:
    torch.cuda.synchronize()
    torch.cuda._sleep(SLEEP_CYCLES)
    t = time.perf_counter()
    fn()
    ms = (time.perf_counter() - t) * 1e3
    torch.cuda.synchronize()
    return round(ms, 2)


def probe(model, size: int, opts: dict) -> None:
    enc = Encoder.open("compile", checkpoint=model, device="cuda", precision="fp16", cuda_graph=True, **opts)
    x = torch.randn(1, 3, size, size, device="cuda")
    with torch.inference_mode():
        for _ in range(5):
            enc(x)
        torch.cuda.synchronize()
        print(opts, "sleep alone ms", _host_ms(lambda: None), flush=True)
        torch.cuda.set_sync_debug_mode("error")
        try:
            enc(x)
            print(opts, "sync debug mode: no synchronizing ATen call", flush=True)
        except RuntimeError:
            print(opts, "sync debug mode caught:", traceback.format_exc()[-3000:], flush=True)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()
        print(opts, "whole call host ms behind a sleep", [_host_ms(lambda: enc(x)) for _ in range(3)], flush=True)
        m = enc.module
        if hasattr(m, "graphs"):
            graph, static_in, static_map = m.graphs[(tuple(x.shape), x.dtype)]
            for name, fn in (("copy", lambda: static_in.copy_(x)), ("replay", graph.replay),
                             ("finish", lambda: m.finish(static_map)),
                             ("pos_cache", lambda: [t.cache_pos_embed(size, size) for t in enc.pos_trunks])):
                print(opts, name, "host ms behind a sleep", [_host_ms(fn) for _ in range(3)], flush=True)
    enc.close()


def main(variant: str, size: str, *option_sets: str) -> None:
    model = resolve_model(None, "cuda", variant)
    for s in ("",) + option_sets:
        opts = {k: {"true": True, "false": False}.get(v, v) for k, v in (kv.split("=", 1) for kv in s.split(",") if kv)}
        probe(model, int(size), opts)
        torch._dynamo.reset()


if __name__ == "__main__":
    main(*sys.argv[1:])
