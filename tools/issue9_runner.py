"""What the issue 9 GPU diagnostics share (tools/issue9_timeline.py, issue9_host.py, issue9_sync.py,
issue9_profile_attr.py): option sets from the command line, a warmed-up compiled encoder, and the loop that
runs a probe per option set, prints each row and writes them all as one JSON record."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import torch

from lsegrt.backends.base import Encoder
from lsegrt.backends.common import resolve_model


def option_sets(specs: Iterable[str]) -> list[dict]:
    """Stock ({}) first, then one dict per "key=value,key=value" spec ("true"/"false" as booleans)."""
    sets = [{}]
    for spec in specs:
        pairs = (kv.split("=", 1) for kv in spec.split(",") if kv)
        sets.append({k: {"true": True, "false": False}.get(v, v) for k, v in pairs})
    return sets


def size_of(text: str) -> tuple[int, int]:
    """"1024" or "480x640" → (height, width)."""
    h, _, w = str(text).partition("x")
    return int(h), int(w or h)


def warmed_encoder(model, size: tuple[int, int], opts: dict, calls: int):
    """The compile backend (fp16, CUDA graph, ``opts``) and a random input of ``size``, after ``calls`` calls."""
    enc = Encoder.open("compile", checkpoint=model, device="cuda", precision="fp16", cuda_graph=True, **opts)
    x = torch.randn(1, 3, *size, device="cuda")
    with torch.inference_mode():
        for _ in range(calls):
            enc(x)
    torch.cuda.synchronize()
    return enc, x


def run(variant: str, sets: list[dict], probe: Callable[[object, dict], dict], path: str | None,
        shown: Callable[[dict], dict] = lambda row: row, indent: int = 1) -> list[dict]:
    """``probe(model, opts)`` per option set (Dynamo reset between them), each row printed as ``shown(row)``;
    all rows written to ``path`` with the GPU and torch version (unless None)."""
    model = resolve_model(None, "cuda", variant)
    rows = []
    for opts in sets:
        row = probe(model, opts)
        print(json.dumps(shown(row)), flush=True)
        rows.append(row)
        torch._dynamo.reset()
    if path is not None:
        with open(path, "w") as f:
            json.dump({"variant": variant, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "rows": rows}, f, indent=indent)
    return rows
