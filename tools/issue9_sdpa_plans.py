"""Issue 9 probe: every cuDNN execution plan for ViT-L/16's attention, against the one PyTorch runs.

PyTorch's cuDNN attention builds one cuDNN-frontend graph per shape and runs the first plan cuDNN's
heuristics rank (``…flash_fprop_wgmma_f16_knob_7_64x128x64…`` on an H100), without timing any other.
This probe builds the same graph with the cuDNN frontend's Python API (``nvidia-cudnn-frontend``,
carried as a wheel in .whl), once for each of its attention implementations (AUTO, UNIFIED, COMPOSITE),
asks the heuristics for every plan (modes A and fallback, policy ALL), adds for each engine those
plans use its knobs over the ranges cuDNN reports (all combinations where there are few, else one knob
at a time), and times each plan that builds: 20 calls captured in one CUDA graph, median over the
replays; each plan's output is checked against PyTorch's. A shape stops adding and timing plans after
:data:`BUDGET_S` seconds.

Shapes: ViT-L/16 at batch 1, 16 heads of 64, q/k/v as views of the packed qkv projection (as the model
has them): 4,096 queries and keys with the log-sum-exp (1024² under ``cls_key_apart``), 577 (384²) and
1,201 (480×640) without.

    python tools/issue9_sdpa_plans.py            # on the GPU; writes $OUT/issue9_sdpa_plans.json
"""

from __future__ import annotations

import itertools
import math
import re
import sys
import time

import torch

from issue9_probe import cudnn_plan_runner, cudnn_shapes_main, graph_ms  # tools/, this script's folder (it also puts src/ on sys.path)

HEADS, DIM = 16, 64
SHAPES = ((4096, True), (577, False), (1201, False))  # (tokens, with log-sum-exp)
CALLS, REPLAYS = 20, 15
BUDGET_S = 45.0  # per shape


def packed_qkv(n: int, seed: int = 0):
    """q, k, v (1, H, n, D) fp16 views of one packed (1, n, 3, H, D) tensor, as timm's attention makes them."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    qkv = torch.randn(1, n, 3, HEADS, DIM, device="cuda", dtype=torch.float16, generator=g)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    return qkv, q, k, v


def torch_sdpa(q, k, v, stats: bool):
    return torch.ops.aten._scaled_dot_product_cudnn_attention(
        q, k, v, None, stats, 0.0, False, False, scale=1 / math.sqrt(DIM))[0]


def graph_time(fn) -> float:
    """Median µs per call: CALLS calls captured in one CUDA graph, REPLAYS replays (issue9_probe.graph_ms)."""
    return 1000 * graph_ms(fn, CALLS, REPLAYS)[0]


class CudnnSdpa:
    """One cuDNN-frontend SDPA graph for q/k/v of these shapes and strides, with all its plans."""

    def __init__(self, cudnn, handle, q, k, v, stats: bool, implementation: str = "AUTO"):
        self.cudnn, self.handle = cudnn, handle
        self.q, self.k, self.v = q, k, v
        b, h, n, d = q.shape
        self.o = torch.empty(b, n, h, d, device="cuda", dtype=q.dtype).transpose(1, 2)  # BSHD, as torch's
        self.lse = torch.empty(b, h, n, 1, device="cuda", dtype=torch.float32) if stats else None
        g = cudnn.pygraph(io_data_type=cudnn.data_type.HALF, intermediate_data_type=cudnn.data_type.FLOAT,
                          compute_data_type=cudnn.data_type.FLOAT, handle=handle)
        self.tq, self.tk, self.tv = g.tensor_like(q), g.tensor_like(k), g.tensor_like(v)
        extra = {}
        if implementation != "AUTO":
            extra["implementation"] = getattr(cudnn.attention_implementation, implementation)
        o, lse = g.sdpa(name="sdpa", q=self.tq, k=self.tk, v=self.tv, generate_stats=stats,
                        attn_scale=1 / math.sqrt(d), **extra)
        o.set_output(True).set_dim(list(self.o.shape)).set_stride(list(self.o.stride()))
        self.to, self.tlse = o, lse
        if stats:
            lse.set_output(True).set_data_type(cudnn.data_type.FLOAT)
        g.validate()
        g.build_operation_graph()
        self.g = g

    def heuristic_plans(self):
        c = self.cudnn
        modes = [c.heur_mode.A, c.heur_mode.FALLBACK]
        self.g.create_execution_plans(modes)
        self.g.check_support()
        self.g.build_plans(c.build_plan_policy.ALL)

    def add_plan(self, engine: int, knobs: dict) -> int | None:
        """Append (engine, knobs) and build it; its index, or None where cuDNN refuses it."""
        try:
            self.g.create_execution_plan(engine, knobs)
            i = self.g.get_execution_plan_count() - 1
            self.g.build_plan_at_index(i)
            return i
        except Exception:
            return None

    def pack(self):
        p = {self.tq: self.q, self.tk: self.k, self.tv: self.v, self.to: self.o}
        if self.lse is not None:
            p[self.tlse] = self.lse
        return p

    def runner(self, index: int):
        return cudnn_plan_runner(self.cudnn, self.handle, self.g, self.pack(), index)


ENGINE_NAME = re.compile(r"eng(\d+)((?:_k\d+=-?\d+)*)")


def parse_name(name: str):
    """cuDNN's plan name "eng8_k2=7_k13=0" → (8, {2: 7, 13: 0}); None when it is not of that form."""
    m = ENGINE_NAME.search(name)
    if not m:
        return None
    knobs = {int(a): int(b) for a, b in re.findall(r"_k(\d+)=(-?\d+)", m.group(2))}
    return int(m.group(1)), knobs


def knob_variants(g, engine: int, cap: int = 96):
    """Knob settings for ``engine``: every combination of each knob's reported range where there are at
    most ``cap`` of them, else each knob's values one at a time (the others at cuDNN's defaults)."""
    try:
        infos = list(g.get_knobs_for_engine(engine))
    except Exception as e:
        return [], f"get_knobs_for_engine({engine}): {e}"
    axes, described = [], []
    for info in infos:
        t = getattr(info, "type", None)
        lo, hi = getattr(info, "min_value", None), getattr(info, "max_value", None)
        step = getattr(info, "stride", 1) or 1
        described.append(f"{t}: {lo}..{hi} step {step}")
        if t is None or lo is None or hi is None or hi < lo:
            continue
        axes.append((t, list(range(int(lo), int(hi) + 1, int(step)))[:32]))
    total = math.prod(len(v) for _, v in axes) if axes else 0
    if 0 < total <= cap:
        out = [dict(zip([t for t, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]
    else:
        out = [{t: value} for t, values in axes for value in values][:cap]
    return out, "; ".join(described)


def probe_shape(cudnn, handle, n: int, stats: bool, budget_s: float = BUDGET_S) -> dict:
    """One shape: PyTorch's time, then each plan's for each of cuDNN's attention implementations (building
    and timing stop once ``budget_s`` is spent)."""
    deadline = time.time() + budget_s
    qkv, q, k, v = packed_qkv(n)
    ref = torch_sdpa(q, k, v, stats)
    row = {"tokens": n, "stats": stats, "torch_us": graph_time(lambda: torch_sdpa(q, k, v, stats)), "plans": [],
           "knob_info": {}}
    impls = ["AUTO"] + [i for i in ("UNIFIED", "COMPOSITE") if hasattr(getattr(cudnn, "attention_implementation", None), i)]
    for impl in impls:
        if time.time() > deadline:
            row["cut_short"] = True
            break
        try:
            sd = CudnnSdpa(cudnn, handle, q, k, v, stats, impl)
        except Exception as e:
            row[f"{impl}_error"] = f"{type(e).__name__}: {str(e)[:300]}"
            continue
        try:
            sd.heuristic_plans()
        except Exception as e:
            row[f"{impl}_heuristics_error"] = f"{type(e).__name__}: {str(e)[:300]}"
        count = sd.g.get_execution_plan_count()
        names = {}
        for i in range(count):
            try:
                names[i] = sd.g.get_plan_name_at_index(i)
            except Exception as e:
                names[i] = f"? ({e})"
        row[f"{impl}_heuristic_plan_names"] = [names[i] for i in range(count)]
        seen = set(names.values())
        engines = []
        for name in names.values():
            parsed = parse_name(name)
            if parsed and parsed[0] not in engines:
                engines.append(parsed[0])
        for engine in engines:
            variants, info = knob_variants(sd.g, engine)
            row["knob_info"][f"{impl}:{engine}"] = info
            for knobs in variants:
                if time.time() > deadline:
                    row["cut_short"] = True
                    break
                i = sd.add_plan(engine, knobs)
                if i is None:
                    continue
                name = sd.g.get_plan_name_at_index(i)
                if name in seen:
                    continue
                seen.add(name)
                names[i] = name
        for i, name in sorted(names.items()):
            if time.time() > deadline + 20:
                row["cut_short"] = True
                break
            entry = {"implementation": impl, "index": i, "name": name, "heuristic_rank": i if i < count else None}
            try:
                run = sd.runner(i)
                run()
                torch.cuda.synchronize()
                entry["max_abs_diff_vs_torch"] = float((sd.o.float() - ref.float()).abs().max())
                entry["us"] = graph_time(run)
            except Exception as e:
                entry["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            row["plans"].append(entry)
            print(f"  n={n} {impl[:4]} plan {i:3d} {name[:56]:56s} {entry.get('us', float('nan')):8.1f} µs "
                  f"diff {entry.get('max_abs_diff_vs_torch', float('nan')):.1e} {entry.get('error', '')[:50]}",
                  flush=True)
    timed = [p for p in row["plans"] if "us" in p and p["max_abs_diff_vs_torch"] < 1e-2]
    if timed:
        best = min(timed, key=lambda p: p["us"])
        row["best"] = {"name": best["name"], "implementation": best["implementation"], "us": best["us"],
                       "vs_torch": row["torch_us"] / best["us"]}
    del qkv
    return row


def main() -> int:
    from bench_tables import sdpa_plans_table  # imports lsegrt: after issue9_probe put src/ on sys.path

    return cudnn_shapes_main(__doc__.splitlines()[0], "issue9_sdpa_plans.json", SHAPES, probe_shape,
                             sdpa_plans_table, heads=HEADS, head_dim=DIM, calls_per_graph=CALLS, replays=REPLAYS)


if __name__ == "__main__":
    sys.exit(main())
