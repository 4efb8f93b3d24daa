"""Multi-GPU scaling of `lsegrt extract` under torchrun (issue 8): one GPU vs two, same frames, same options.

On the 2-GPU machine (nvidia-h200-x2), from the repository root (wheels as tools/gpu_run.sh installs them):

    bash tools/extract_torchrun.sh                      # both modes, 2,000 frames at 480x640, ViT-L/16

It generates the 2,000 JPEG frames of tools/extract_bench.py (same generator, same seeds), then for each
mode (`--labels … --no-features`; `--pca 64 --stride 2`) runs, each in fresh processes,

    lsegrt extract FRAMES --backend compile --precision fp16 --cuda-graph --size 480x640 --batch-size 16 …
    python -m torch.distributed.run --standalone --nproc-per-node 2 -m lsegrt extract FRAMES … (same options)

(the second: two ranks, each on cuda:LOCAL_RANK, writing shards 0/2 and 1/2 of one dataset). The 1-GPU run
goes first so that both 2-GPU ranks start from the Inductor cache it filled. Reported per run: frames/s
after the first durable frame (steady; for two ranks the sum of both ranks' steady rates, with each
rank's own numbers beside it), frames/s over the whole wall time (start-up included), time to first
frame, per-stage utilisation; per mode the scaling (two ÷ one), steady and wall. Everything goes into
$OUT/extract_torchrun.json, rewritten after every run. `--cpu`: the same steps on a CPU (vit_tiny, 16
small frames, 2 CPU processes) to show the script works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _bench():
    """tools/extract_bench.py as a module: its frame generator and label list (one copy of each).
    Imported by name (not from a spec) so that its pool workers can pickle its functions."""
    sys.path.insert(0, str(HERE))
    import extract_bench

    return extract_bench


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, float]:
    log("$ " + shlex.join(cmd))
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              timeout=timeout)
        code, out = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as exc:
        code, out = 124, (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    wall = time.perf_counter() - t
    tail = "\n".join(out.strip().splitlines()[-12:])
    print(tail, flush=True)
    return code, out, wall


def _shard_summaries(ds: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(ds.glob("summary-*-of-*.json"))]


def _entry(code: int, out: str, wall: float, ds: Path, cmd: list[str]) -> dict:
    shards = _shard_summaries(ds)
    e: dict = {"command": shlex.join(cmd), "exit_code": code, "process_wall_s": round(wall, 1),
               "shards": [{k: s.get(k) for k in ("shard", "device", "written", "skipped", "wall_s", "startup_s",
                                                 "time_to_first_frame_s", "frames_per_s", "steady_frames_per_s",
                                                 "utilisation", "peak_rss_bytes", "bytes_written")} for s in shards]}
    if code != 0 or not shards:
        e["error"] = out.strip().splitlines()[-3:]
        return e
    written = sum(s["written"] for s in shards)
    e["written"] = written
    e["frames_per_s_wall"] = round(written / max(s["wall_s"] for s in shards), 2)
    steady = [s.get("steady_frames_per_s") for s in shards]
    e["frames_per_s_steady"] = round(sum(steady), 2) if all(steady) else None
    e["time_to_first_frame_s"] = max(s["time_to_first_frame_s"] or 0 for s in shards)
    return e


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "out"), help="where the JSON goes ($OUT)")
    p.add_argument("--work", default="/tmp/extract_torchrun", help="frames and datasets (deleted at the end)")
    p.add_argument("--cpu", action="store_true", help="dry run on a CPU: vit_tiny, 16 small frames, 2 processes")
    p.add_argument("--frames", type=int, help="frames to generate (default 2000; --cpu 16)")
    p.add_argument("--modes", default="labels,pca64_stride2", help="comma-separated subset, in order")
    p.add_argument("--nproc", type=int, default=2, help="processes (GPUs) of the multi-process run (default 2)")
    p.add_argument("--run-timeout", type=float, default=420, help="seconds allowed per extract run")
    args = p.parse_args()
    bench = _bench()
    n = args.frames or (16 if args.cpu else 2000)
    hw = (96, 128) if args.cpu else (480, 640)
    variant, backend, precision, batch = ("vit_tiny", "torch", "fp32", 4) if args.cpu else ("vit_l16", "compile", "fp16", 16)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result_path = out / "extract_torchrun.json"

    import torch

    import lsegrt

    gpus = torch.cuda.device_count()
    results: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_dry_run": args.cpu, "frames": n,
        "size": f"{hw[0]}x{hw[1]}", "variant": variant, "backend": backend, "precision": precision,
        "batch_size": batch, "nproc": args.nproc,
        "env": {"torch": torch.__version__, "cuda": torch.version.cuda, "lsegrt": lsegrt.__version__,
                "python": platform.python_version(), "cpus": os.cpu_count(), "gpus": gpus,
                "gpu": [torch.cuda.get_device_name(i) for i in range(gpus)]},
        "modes": {},
    }

    def save():
        result_path.write_text(json.dumps(results, indent=2) + "\n")

    if not args.cpu and gpus < args.nproc:
        results["error"] = f"{gpus} GPUs visible, {args.nproc} needed"
        save()
        log(results["error"])
        return 2
    save()
    frames = work / "frames"
    log(f"generating {n} JPEG frames at {hw[0]}x{hw[1]}")
    results["frames_generation_s"] = round(bench.make_frames(frames, n, hw), 1)
    save()

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.cpu:
        env["OMP_NUM_THREADS"] = "1"  # two processes on a small CPU machine
    common = ["extract", str(frames), "--variant", variant, "--backend", backend, "--precision", precision,
              "--size", f"{hw[0]}x{hw[1]}", "--batch-size", str(batch), "--no-progress"]
    common += ["--device", "cpu", "--workers", "1"] if args.cpu else ["--cuda-graph"]
    modes = {
        "labels": ["--labels", bench.LABELS, "--no-features"],
        "pca64_stride2": ["--pca", "8" if args.cpu else "64", "--stride", "2"],
    }
    for mode in args.modes.split(","):
        if mode not in modes:
            log(f"unknown mode {mode}; choose from {', '.join(modes)}")
            return 2
        entry: dict = {}
        results["modes"][mode] = entry
        for kind in ("one", "multi"):
            ds = work / f"{mode}_{kind}"
            lsegrt_cmd = ["-m", "lsegrt", *common, *modes[mode], "--out", str(ds)]
            if kind == "one":
                cmd = [sys.executable, *lsegrt_cmd]
            else:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                       str(args.nproc), *lsegrt_cmd]
            code, text, wall = _run(cmd, env, args.run_timeout)
            entry[kind] = _entry(code, text, wall, ds, ["python"] + cmd[1:])
            if kind == "multi" and code == 0:
                entry["multi"]["compared_with_one"] = _compare(work / f"{mode}_one", ds)
            save()
        for kind in ("one", "multi"):
            shutil.rmtree(work / f"{mode}_{kind}", ignore_errors=True)
        one, multi = entry.get("one", {}), entry.get("multi", {})
        for key in ("frames_per_s_steady", "frames_per_s_wall"):
            if one.get(key) and multi.get(key):
                entry[f"scaling_{key.removeprefix('frames_per_s_')}"] = round(multi[key] / one[key], 3)
        save()
        log(f"{mode}: one {one.get('frames_per_s_steady')} frames/s steady ({one.get('frames_per_s_wall')} wall), "
            f"{args.nproc} processes {multi.get('frames_per_s_steady')} ({multi.get('frames_per_s_wall')} wall) → "
            f"scaling {entry.get('scaling_steady')} steady, {entry.get('scaling_wall')} wall")
    shutil.rmtree(work, ignore_errors=True)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    return 0 if all(e.get(k, {}).get("exit_code") == 0 for e in results["modes"].values() for k in ("one", "multi")) \
        else 1


def _compare(one: Path, multi: Path, sample: int = 16) -> dict:
    """Same frame ids in both datasets, and every output of ``sample`` frames spread over the run
    compared: how many are bit-identical, and the largest difference."""
    import numpy as np

    import lsegrt

    try:
        a, b = lsegrt.open_features(one), lsegrt.open_features(multi)
        ids = a.ids
        report: dict = {"same_ids": ids == b.ids, "frames": len(ids), "sampled": 0, "identical": 0, "max_abs_diff": 0.0}
        for fid in [ids[round(i * (len(ids) - 1) / max(sample - 1, 1))] for i in range(min(sample, len(ids)))]:
            x, y = a[fid], b[fid]
            report["sampled"] += 1
            same = True
            for name in x:
                d = float(np.abs(x[name].astype(np.float64) - y[name].astype(np.float64)).max())
                report["max_abs_diff"] = max(report["max_abs_diff"], d)
                same &= bool(np.array_equal(x[name], y[name]))
            report["identical"] += same
        return report
    except Exception as exc:  # noqa: BLE001 - a check for the report, not a reason to stop
        return {"error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    sys.exit(main())
