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
from issue9_runner import option_sets, run, size_of, warmed_encoder

SLEEP_CYCLES = int(4e8)  # ~0.2 s at ~2 GHz


def _host_ms(fn) -> float:
    torch.cuda.synchronize()
    torch.cuda._sleep(SLEEP_CYCLES)
    t = time.perf_counter()
    fn()
    ms = (time.perf_counter() - t) * 1e3
    torch.cuda.synchronize()
    return round(ms, 2)


def probe(model, size: int, opts: dict) -> dict:
    enc, x = warmed_encoder(model, (size, size), opts, 5)
    with torch.inference_mode():
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
    return {"options": opts}


def main(variant: str, size: str, *specs: str) -> None:
    side = size_of(size)[0]
    run(variant, option_sets(specs), lambda model, opts: probe(model, side, opts), None)


if __name__ == "__main__":
    main(*sys.argv[1:])
