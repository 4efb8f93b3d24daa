"""Time to first inference of the `compile` backend in a new process: cold, or from a saved build.

    python tools/issue9_first_inference.py --variant vit_l16 --precision fp16 --cuda-graph \
        --size 384 [--engine vit.compiled] [--json out.json]

Run it in a fresh process with an empty Inductor cache (``TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)``) so that
nothing compiled earlier on the machine helps: without --engine every graph and kernel is compiled
(and autotuned); with --engine only what the saved build holds is loaded. Prints one JSON line: seconds
from interpreter start (read from /proc) to each step — imports, model, open (loading the saved
build), first call (Dynamo trace + cache lookups or compile + CUDA-graph capture), second call — and
Inductor's cache counters.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def since_start() -> float:
    """Seconds since this process started (Linux /proc), else since this module was imported."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - T0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="vit_l16")
    p.add_argument("--checkpoint")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--size", default="384", help="S or HxW")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--cuda-graph", action="store_true")
    p.add_argument("--option", action="append", default=[], metavar="K=V")
    p.add_argument("--engine")
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--time-iters", type=int, default=0,
                   help="after the third call, time this many more (CUDA events on a GPU): median ms, so that a "
                        "saved build's speed is compared with a live compile's in the same call")
    p.add_argument("--text-tower", action="store_true",
                   help="build the model's CLIP text tower with the model (as lsegrt did before it was built on "
                        "first use; imports open_clip), for an A/B of that change")
    p.add_argument("--profile", help="write cProfile's top functions (cumulative and own time) here, in two parts: "
                                      "model load + open, and the first call; CUDA is initialized as its own step first")
    args = p.parse_args()
    steps = {"start_to_main_s": round(since_start(), 3)}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    import lsegrt
    from lsegrt.backends.base import option_value

    steps["imports_s"] = round(since_start(), 3)
    prof, profiles = None, {}
    if args.profile:
        import cProfile

        if args.device.startswith("cuda"):  # so that the profile's load step is the checkpoint alone
            torch.zeros(1, device=args.device)
            steps["cuda_init_s"] = round(since_start(), 3)
        prof = cProfile.Profile()
        prof.enable()
    model = lsegrt.load(args.checkpoint, args.device) if args.checkpoint else \
        lsegrt.random_model(args.variant, seed=0, device=args.device)
    if args.text_tower:
        model.text_tower  # noqa: B018
    steps["model_s"] = round(since_start(), 3)
    options = {k.replace("-", "_"): option_value(v) for k, _, v in (o.partition("=") for o in args.option)}
    if args.cuda_graph:
        options["cuda_graph"] = True
    enc = lsegrt.Encoder.open("compile", checkpoint=model, engine=args.engine, device=args.device,
                              precision=args.precision, **options)
    steps["open_s"] = round(since_start(), 3)
    if prof is not None:  # the first call gets a profile of its own
        prof.disable()
        profiles["model load + open"] = prof
        prof = cProfile.Profile()
        prof.enable()
    h, w = (int(v) for v in args.size.lower().split("x")) if "x" in args.size else (int(args.size),) * 2
    x = torch.randn(args.batch, 3, h, w, device=args.device, generator=torch.Generator(args.device).manual_seed(0))
    for name in ("first_call_s", "second_call_s", "third_call_s"):  # CUDA graphs record on the second/third
        y = enc(x)
        if y.is_cuda:
            torch.cuda.synchronize()
        steps[name] = round(since_start(), 3)
        if prof is not None:
            prof.disable()
            profiles["first call"], prof = prof, None
    timed = []
    for _ in range(args.time_iters):
        if y.is_cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            enc(x)
            end.record()
            end.synchronize()
            timed.append(begin.elapsed_time(end))
        else:
            t = time.perf_counter()
            enc(x)
            timed.append(1e3 * (time.perf_counter() - t))
    if profiles:
        import io
        import pstats

        text = io.StringIO()
        for part, stats in profiles.items():
            for key in ("cumulative", "tottime"):
                text.write(f"===== {part}, by {key} =====\n")
                pstats.Stats(stats, stream=text).sort_stats(key).print_stats(40)
        Path(args.profile).write_text(text.getvalue())
    from torch._dynamo.utils import counters

    result = {"engine": args.engine, "variant": model.variant, "precision": args.precision, "shape": [args.batch, h, w],
              "options": options, "torch": torch.__version__,
              "inductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
              "seconds_since_process_start": steps,
              "counters": {"inductor": {k: v for k, v in counters["inductor"].items() if "cache" in k},
                           "aot_autograd": dict(counters["aot_autograd"]),
                           "dynamo_cache": dict(counters["dynamo_cache"])},
              # the same input in every mode: equal sums mean the same output (as far as a sum can tell)
              "output_sums": [float(y.double().sum()), float(y.double().abs().sum())]}
    if timed:
        timed.sort()
        result["time_ms"] = {"iters": len(timed), "median": round(timed[len(timed) // 2], 4), "min": round(timed[0], 4)}
    line = json.dumps(result)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
