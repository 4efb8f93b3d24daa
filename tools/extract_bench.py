"""End-to-end benchmark of `lsegrt extract` (issue 8) against its two ceilings, measured in the same run.

On the GPU machine, from the repository root (wheels as tools/gpu_run.sh installs them):

    python3 tools/extract_bench.py --out $OUT            # ~2,000 frames, ViT-L/16 fp16 compile + CUDA graph

It (1) generates JPEG frames at 480x640 from scikit-image's bundled photos (random crops, flips, colour
jitter; seeded), (2) measures the disk's write speed with fdatasync (4 GB in 64 MB chunks), (3) runs
`lsegrt extract --backend compile --precision fp16 --cuda-graph --size 480x640 --batch-size 16` in
each output mode, each in a fresh process (labels only; PCA-64 at H/2; PCA-64 with stride 2; full
512-d fp16 on 300 frames, sized to the disk; and a second, shorter labels run for the warm-cache time
to first frame), and (4) the encoder-only ceiling: the same Encoder at the same batch size over
pre-made device tensors. The target per mode is 80 % of min(ceiling, disk speed ÷ bytes per frame).

Everything lands in $OUT/extract_bench.json (rewritten after every step, so a cut-short call keeps
what it measured) and $OUT/extract_bench.log. `--cpu` is a dry run of the same steps on a CPU
(vit_tiny, 20 small frames) that proves the script works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

LABELS = "person, animal, vehicle, building, tree, grass, sky, road, water, other"
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "coins", "camera")


_LOG = None


def log(line: str, stamp: bool = True) -> None:
    """To stdout and to $OUT/extract_bench.log."""
    text = f"[{time.strftime('%H:%M:%S')}] {line}" if stamp else line
    print(text, flush=True)
    if _LOG is not None:
        _LOG.write(text + "\n")
        _LOG.flush()


# -- frames --------------------------------------------------------------------------------------
def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)


def _make_frame(job: tuple[int, str, int, int]) -> None:
    from PIL import Image

    k, folder, h, w = job
    rng = np.random.default_rng(k)
    img = _photo(PHOTOS[k % len(PHOTOS)])
    H, W = img.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    ch, cw = max(16, int(H * scale)), max(16, int(W * scale))
    y, x = rng.integers(0, H - ch + 1), rng.integers(0, W - cw + 1)
    crop = Image.fromarray(img[y:y + ch, x:x + cw]).resize((w, h), Image.BILINEAR)
    a = np.asarray(crop, dtype=np.float32)
    if rng.random() < 0.5:
        a = a[:, ::-1]
    a = a * rng.uniform(0.7, 1.3, size=3) + rng.uniform(-20, 20)
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(Path(folder) / f"{k:06d}.jpg", quality=90)


def make_frames(folder: Path, n: int, hw: tuple[int, int]) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with Pool(min(16, os.cpu_count() or 1)) as pool:
        pool.map(_make_frame, [(k, str(folder), *hw) for k in range(n)], chunksize=16)
    return time.perf_counter() - t


# -- disk ----------------------------------------------------------------------------------------
def disk_speed(folder: Path, total: int, chunk: int = 64 << 20) -> dict:
    """Sequential write of ``total`` bytes in ``chunk`` pieces, then fdatasync: bytes/s to stable storage."""
    path = folder / "disk_probe.bin"
    block = np.random.default_rng(0).integers(0, 256, chunk, dtype=np.uint8).tobytes()
    t = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        written = 0
        while written < total:
            written += f.write(block)
        os.fdatasync(f.fileno())
    seconds = time.perf_counter() - t
    path.unlink()
    return {"bytes": written, "seconds": round(seconds, 3), "bytes_per_s": written / seconds,
            "method": f"{chunk >> 20} MB writes + one fdatasync"}


# -- encoder ceiling (run in its own process) ------------------------------------------------------
def ceiling(args) -> dict:
    import torch

    import lsegrt
    from lsegrt.pipeline.run import use_lsegrt_compile_cache

    use_lsegrt_compile_cache()  # the Inductor cache the extract runs fill and reuse
    device = "cpu" if args.cpu else "cuda"
    h, w = args.hw
    options = {} if args.cpu else {"cuda_graph": True}
    model = lsegrt.random_model(args.variant, 0, device)
    t = time.perf_counter()
    enc = lsegrt.Encoder.open(args.backend, checkpoint=model, device=device, precision=args.precision, **options)
    x = torch.randn(args.batch_size, 3, h, w, device=device).clamp(-1, 1)
    for _ in range(3):
        enc(x)
    if device == "cuda":
        torch.cuda.synchronize()
    warm = time.perf_counter() - t
    iters = args.ceiling_iters
    t = time.perf_counter()
    for _ in range(iters):
        enc(x)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    return {"frames_per_s": args.batch_size * iters / seconds, "batch_size": args.batch_size, "iters": iters,
            "seconds": round(seconds, 3), "compile_and_warmup_s": round(warm, 1), "encoder": enc.describe()}


# -- the benchmark -------------------------------------------------------------------------------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "out"), help="where the JSON and log go ($OUT)")
    p.add_argument("--work", default="/tmp/extract_bench", help="frames and datasets (deleted after each mode)")
    p.add_argument("--cpu", action="store_true", help="dry run on a CPU: vit_tiny, 20 small frames")
    p.add_argument("--frames", type=int, help="frames to generate (default 2000; --cpu 20)")
    p.add_argument("--full-frames", type=int, help="frames for the full 512-d mode (default 300; --cpu 8)")
    p.add_argument("--modes", default="labels,ceiling,pca64,pca64_stride2,full512,labels_warm",
                   help="comma-separated subset, in order")
    p.add_argument("--disk-bytes", type=int, help="bytes for the disk probe (default 4 GB; --cpu 64 MB)")
    p.add_argument("--ceiling", action="store_true", help=argparse.SUPPRESS)  # internal: the ceiling process
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.variant = "vit_tiny" if args.cpu else "vit_l16"
    args.backend, args.precision = ("torch", "fp32") if args.cpu else ("compile", "fp16")
    args.hw = (96, 128) if args.cpu else (480, 640)
    args.batch_size = 4 if args.cpu else 16
    args.ceiling_iters = 5 if args.cpu else 40
    if args.ceiling:
        Path(args.json_out).write_text(json.dumps(ceiling(args)))
        return 0

    n = args.frames or (20 if args.cpu else 2000)
    n_full = args.full_frames or (8 if args.cpu else 300)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    global _LOG
    _LOG = open(out / "extract_bench.log", "a")
    result_path = out / "extract_bench.json"
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_dry_run": args.cpu,
                     "frames": n, "full_frames": n_full, "size": f"{args.hw[0]}x{args.hw[1]}",
                     "batch_size": args.batch_size, "variant": args.variant, "backend": args.backend,
                     "precision": args.precision, "modes": {}}

    def save():
        result_path.write_text(json.dumps(results, indent=2) + "\n")

    import torch

    import lsegrt

    results["env"] = {"torch": torch.__version__, "cuda": torch.version.cuda, "lsegrt": lsegrt.__version__,
                      "python": platform.python_version(), "cpus": os.cpu_count(),
                      "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                      "disk_free_bytes": shutil.disk_usage(work).free}
    save()
    frames = work / "frames"
    log(f"generating {n} JPEG frames at {args.hw[0]}x{args.hw[1]}")
    results["frames_generation_s"] = round(make_frames(frames, n, args.hw), 1)
    names = sorted(p.name for p in frames.iterdir())
    (work / "full.txt").write_text("\n".join(str(frames / f) for f in names[:n_full]) + "\n")
    (work / "warm.txt").write_text("\n".join(str(frames / f) for f in names[: min(n, 20 * args.batch_size)]) + "\n")
    disk_bytes = args.disk_bytes or ((64 << 20) if args.cpu else (4 << 30))
    log(f"disk write speed: {disk_bytes >> 20} MB + fdatasync")
    results["disk"] = disk_speed(work, disk_bytes)
    log(f"disk: {results['disk']['bytes_per_s'] / 1e9:.2f} GB/s")
    save()

    base = [sys.executable, "-m", "lsegrt", "extract", "--variant", args.variant, "--backend", args.backend,
            "--precision", args.precision, "--size", f"{args.hw[0]}x{args.hw[1]}", "--batch-size",
            str(args.batch_size), "--no-progress"] + ([] if args.cpu else ["--cuda-graph"])
    pca = "8" if args.cpu else "64"
    modes = {
        "labels": [str(frames), "--labels", LABELS, "--no-features"],
        "pca64": [str(frames), "--pca", pca],
        "pca64_stride2": [str(frames), "--pca", pca, "--stride", "2"],
        "full512": ["--list", str(work / "full.txt")],
        "labels_warm": ["--list", str(work / "warm.txt"), "--labels", LABELS, "--no-features"],
    }
    for mode in args.modes.split(","):
        if mode == "ceiling":
            log("encoder-only ceiling (same Encoder, same batch size, device tensors)")
            js = work / "ceiling.json"
            cmd = [sys.executable, __file__, "--ceiling", "--json-out", str(js)] + (["--cpu"] if args.cpu else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            log(proc.stdout + proc.stderr, stamp=False)
            if proc.returncode == 0:
                results["ceiling"] = json.loads(js.read_text())
                log(f"ceiling: {results['ceiling']['frames_per_s']:.1f} frames/s")
            else:
                results["ceiling"] = {"error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
            save()
            continue
        ds, js = work / f"ds_{mode}", work / f"{mode}.json"
        cmd = base + modes[mode] + ["--out", str(ds), "--json", str(js)]
        log("$ " + " ".join(cmd))
        t = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - t
        log(proc.stdout, stamp=False)
        entry: dict = {"command": " ".join(["lsegrt"] + cmd[3:]), "exit_code": proc.returncode, "wall_s": round(wall, 1)}
        if js.is_file():
            s = json.loads(js.read_text())
            entry["summary"] = s
            if s["written"]:
                entry["bytes_per_frame"] = s["bytes_written"] / s["written"]
        else:
            entry["error"] = proc.stdout.strip().splitlines()[-1:] if proc.stdout else ["?"]
        results["modes"][mode] = entry
        shutil.rmtree(ds, ignore_errors=True)
        save()
    _targets(results)
    save()
    for mode, e in results["modes"].items():
        s = e.get("summary", {})
        log(f"{mode}: {s.get('steady_frames_per_s')} frames/s steady, target {e.get('target_frames_per_s')} "
            f"({e.get('bound')}-bound), ttff {s.get('time_to_first_frame_s')} s, "
            f"busy {s.get('utilisation')}, peak RSS {s.get('peak_rss_bytes', 0) / 1e9:.2f} GB")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _targets(results: dict) -> None:
    """Per mode: target = 0.8 × min(encoder ceiling, disk speed ÷ bytes per frame), both from this run."""
    ceil = results.get("ceiling", {}).get("frames_per_s")
    disk = results.get("disk", {}).get("bytes_per_s")
    for e in results["modes"].values():
        bpf = e.get("bytes_per_frame")
        if not (ceil and disk and bpf):
            continue
        disk_fps = disk / bpf
        bound = min(ceil, disk_fps)
        e["disk_bound_frames_per_s"] = round(disk_fps, 1)
        e["bound"] = "gpu" if ceil <= disk_fps else "disk"
        e["target_frames_per_s"] = round(0.8 * bound, 1)
        steady = e.get("summary", {}).get("steady_frames_per_s")
        if steady:
            e["fraction_of_bound"] = round(steady / bound, 3)
            e["meets_target"] = steady >= 0.8 * bound


if __name__ == "__main__":
    sys.exit(main())
