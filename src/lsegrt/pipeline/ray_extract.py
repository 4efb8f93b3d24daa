"""``lsegrt.extract_ray``: the extraction pipeline on a Ray cluster, writing the same dataset folder.

    read (the run's units) → map_batches(decode + resize, CPU tasks) → map_batches(encoder actors) → write

- The driver lists the inputs with the pipeline's own sources (so frame ids are those of
  :func:`lsegrt.extract`), checks the output folder (``dataset.json``, ``--resume``/``--overwrite``) and
  hands out one Ray item per image and ``parts`` items per video (each part decodes the video and
  converts only its own frames, chosen by the same hash as ``--shard``).
- Decode tasks run :func:`lsegrt.pipeline.decode.decode_unit` and pass frames on as raw bytes.
- Each encoder actor opens its model and :class:`lsegrt.Encoder` once, claims a writer slot ``k`` and
  writes as shard ``k`` of ``concurrency`` (``manifest-<k>-of-<n>.jsonl``, ``data/<k>-of-<n>-*``):
  :func:`lsegrt.open_features` reads every slot as one dataset. Per Ray batch it groups frames by size,
  pads to ``batch_size``, encodes, reduces and hands batches to writer threads (so writing one batch
  overlaps encoding the next), and returns once all of them are durable (fsync, then manifest lines):
  a frame the driver has seen is on disk.
- PCA: slot 0 fits the basis on the run's sample frames (the same frames as a single-process run),
  the other slots wait for ``pca.safetensors``.

Every node must see the inputs and the output folder under the same paths (a shared file system).
Actors use ``num_gpus`` GPUs each (default 1 when the cluster has GPUs, else 0: CPU actors).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import LsegError, require
from .options import ExtractOptions
from .sources import Shard, Unit

_COLUMNS = ("frame_id", "source", "index", "order", "h0", "w0", "h", "w", "pixels", "pixel_dtype", "skipped",
            "decode_s")


def _ray():
    ray = require("ray", "lsegrt extract --ray", "'lsegrt[ray]'")
    require("ray.data", "lsegrt extract --ray", "'lsegrt[ray]'")
    return ray


# -- decode tasks ----------------------------------------------------------------------------------
def _unit_items(todo: list[Unit], parts: int) -> list[dict[str, Any]]:
    items = []
    for u in todo:
        for part in range(parts if u.kind == "video" else 1):
            items.append({"kind": u.kind, "path": u.path, "frame_id": u.frame_id, "order": u.order,
                          "skip": sorted(u.skip), "part": part, "parts": parts if u.kind == "video" else 1})
    return items


def _as_columns(records: list[dict[str, Any]]) -> dict[str, list]:
    cols: dict[str, list] = {c: [] for c in _COLUMNS}
    for r in records:
        cols["frame_id"].append(r["frame_id"])
        cols["source"].append(r["source"])
        cols["index"].append(-1 if r["index"] is None else int(r["index"]))
        cols["order"].append(int(r["order"]))
        skipped = r.get("skipped")
        cols["skipped"].append(skipped or "")
        cols["decode_s"].append(float(r.get("decode_s", 0.0)))
        if skipped:
            for c in ("h0", "w0", "h", "w"):
                cols[c].append(0)
            cols["pixels"].append(b"")
            cols["pixel_dtype"].append("")
            continue
        (h0, w0), (h, w) = r["hw0"], r["hw"]
        pixels = r["pixels"].contiguous().numpy()
        cols["h0"].append(h0), cols["w0"].append(w0), cols["h"].append(h), cols["w"].append(w)
        cols["pixels"].append(pixels.tobytes())
        cols["pixel_dtype"].append(str(pixels.dtype))
    return cols


def _decode_items(batch: dict[str, np.ndarray], size, video_stride: int, video_fps: float | None,
                  chunk: int):
    """Ray task: unit items → frame rows (pixels as bytes: ``(H, W, 3) uint8`` at the input size, or
    ``(3, H, W) float32`` resized), ``chunk`` frames per output batch so memory stays bounded."""
    from .decode import decode_unit

    records: list[dict[str, Any]] = []
    for k in range(len(batch["path"])):
        unit = Unit(str(batch["kind"][k]), str(batch["path"][k]), str(batch["frame_id"][k]), int(batch["order"][k]),
                    skip=frozenset(int(i) for i in batch["skip"][k]))
        shard = Shard(int(batch["part"][k]), int(batch["parts"][k]))
        for rec in decode_unit(unit, size, shard, video_stride, video_fps):
            records.append(rec)
            if len(records) >= chunk:
                yield _as_columns(records)
                records = []
    if records:
        yield _as_columns(records)


def _records(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Frame rows → the pipeline's frame records (pixels as CPU tensors, exactly as decoded)."""
    import torch

    out = []
    for k in range(len(batch["frame_id"])):
        index = int(batch["index"][k])
        rec: dict[str, Any] = {"frame_id": str(batch["frame_id"][k]), "source": str(batch["source"][k]),
                               "index": None if index < 0 else index, "order": int(batch["order"][k])}
        if batch["skipped"][k]:
            rec["skipped"] = str(batch["skipped"][k])
            out.append(rec)
            continue
        h, w = int(batch["h"][k]), int(batch["w"][k])
        dtype = np.dtype(str(batch["pixel_dtype"][k]))
        shape = (h, w, 3) if dtype == np.uint8 else (3, h, w)
        array = np.frombuffer(batch["pixels"][k], dtype=dtype).reshape(shape).copy()
        rec.update(hw0=(int(batch["h0"][k]), int(batch["w0"][k])), hw=(h, w), pixels=torch.from_numpy(array),
                   decode_s=float(batch["decode_s"][k]))
        out.append(rec)
    return out


# -- encoder actors --------------------------------------------------------------------------------
class _Slots:
    """A tiny Ray actor handing out writer slots 0, 1, 2, … to the encoder actors."""

    def __init__(self):
        self.next = 0

    def claim(self) -> int:
        self.next += 1
        return self.next - 1


class _EncodeActor:
    """One model + :class:`lsegrt.Encoder` per actor, opened once; writes shard ``slot`` of ``world``."""

    def __init__(self, *, inputs, out, options, checkpoint, variant, glob, recursive, device, slots, world):
        import ray
        import torch

        from ..backends.base import Encoder
        from .encode import DeviceStage
        from .options import DTYPES
        from .reduce import ReduceSpec
        from .run import Extraction
        from .summary import Counters
        from .timing import StageTimes

        self.slot = ray.get(slots.claim.remote())
        opts = ExtractOptions(**options).validate()
        self.opts = opts
        # The same Extraction as a torchrun rank: model, identity check against dataset.json, this
        # slot's resume scan and clean-up, PCA basis (slot 0 fits, the others wait for its file).
        self.run = Extraction(inputs, out, opts, checkpoint=checkpoint, variant=variant, device=device, resume=True,
                              overwrite=False, shard=Shard(self.slot, world), glob=glob, recursive=recursive,
                              progress=False, say=lambda line: None)
        self.run.workers = 0
        self.device = self.run.device
        self.cuda = self.device.type == "cuda"
        model = self.run.model
        self.encoder = Encoder.open(opts.backend, checkpoint=model, engine=opts.engine, device=self.device,
                                    precision=opts.precision, **opts.backend_options)
        self.stage = DeviceStage(self.encoder, self.device, model.mean, model.std)
        basis = self.run._basis(self.stage) if opts.uses_pca else None
        self.text = model.encode_text(opts.labels) if opts.labels else None
        self.spec = ReduceSpec(features=bool(opts.features), dtype=getattr(torch, DTYPES[opts.dtype]),
                               stride=opts.stride, pca=basis.to(self.device) if basis is not None else None,
                               text=self.text, labels=bool(opts.labels), scores=opts.scores)
        self.black = self.stage.mean.neg() / self.stage.std
        self.seq = self.run.state.next_seq
        self.times = StageTimes({"decode": 1, "write": opts.writers})
        self.idle_since = time.perf_counter()
        self.counters = Counters()
        self.pool = self.downloader = None
        if self.cuda:
            from .transfer import Downloader, PinnedPool

            self.pool = PinnedPool(opts.pinned_budget)
            self.downloader = Downloader(self.device, self.pool)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        import torch

        from .batch import Batcher
        from .reduce import reduce_batch, reduce_logits
        from .run import _META
        from .timing import Span
        from .write import Job, Writer

        opts, stage, spec = self.opts, self.stage, self.spec
        self.times.add("wait", time.perf_counter() - self.idle_since)
        records = _records(batch)
        self.times.add("decode", sum(r.get("decode_s", 0.0) for r in records))
        before = self.counters.bytes
        writer = Writer(self.run.out, self.run.shard, self.seq, threads=opts.writers, times=self.times,
                        label_names=opts.labels, on_done=self.counters.done,
                        release=self.pool.release if self.pool else None)

        def submit(frames, arrays, spans):
            job = Job([{k: f[k] for k in _META} for f in frames], arrays, spans=spans)
            if self.cuda:
                job.arrays, job.buffer, job.ready, spans["d2h"] = self.downloader.download(arrays, stage.compute)
            writer.submit(job)

        error = None
        try:
            skipped = [r for r in records if "skipped" in r]
            if skipped:
                writer.submit(Job(skipped=skipped))
            frames = [r for r in records if "skipped" not in r]
            if opts.multiscale:
                from ..segmentation import multiscale_logits

                for frame in frames:
                    x, h2d = stage.upload([frame], frame["hw0"], 1)
                    gpu = Span(stage.compute)
                    with torch.inference_mode():
                        out = multiscale_logits(self.encoder, self.text, x, self.black, batch_size=opts.batch_size)
                    submit([frame], reduce_logits(out, spec), {"h2d": h2d, "gpu": gpu.stop()})
            else:
                batcher = Batcher(opts.batch_size, max_pending=len(frames) + 1)
                batches = [b for f in frames for b in batcher.add(f)] + list(batcher.flush())
                for b in batches:
                    x, h2d = stage.upload(b.frames, b.hw, b.size)
                    feats, gpu = stage.encode(x)
                    arrays = reduce_batch(feats, b.n, [f["hw0"] for f in b.frames], spec)
                    submit(b.frames, arrays, {"h2d": h2d, "gpu": gpu.stop()})
        except BaseException as exc:
            error = exc
            raise
        finally:
            # Closing waits for every job: when this call returns, its frames are durable.
            try:
                writer.close()
            except BaseException:
                if error is None:
                    raise
            self.seq = writer.seq
            self.idle_since = time.perf_counter()
        n = len(records)
        busy = json.dumps(self.times.busy)  # cumulative: the driver keeps each slot's latest
        return {"frame_id": [r["frame_id"] for r in records], "skipped": ["skipped" in r for r in records],
                "slot": [self.slot] * n, "bytes": [self.counters.bytes - before if i == 0 else 0 for i in range(n)],
                "busy": [busy] * n}


# -- the driver ------------------------------------------------------------------------------------
def _cluster_gpus(ray) -> float:
    return float(ray.cluster_resources().get("GPU", 0))


def extract_ray(
    inputs: Any,
    out: str | os.PathLike,
    *,
    concurrency: int | None = None,
    num_gpus: float | None = None,
    actor_cpus: float = 1.0,
    decode_cpus: float = 1.0,
    video_parts: int | None = None,
    call_batches: int = 4,
    address: str | None = None,
    checkpoint: Any = None,
    variant: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    glob: str | None = None,
    recursive: bool = False,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
    **options: Any,
):
    """:func:`lsegrt.extract` on a Ray cluster (see the module docstring); same options, same dataset.

    ``concurrency``: encoder actors (default: the cluster's GPUs ÷ ``num_gpus``, or 1 on a CPU
    cluster); ``num_gpus`` per actor (default 1 if the cluster has GPUs, else 0); ``actor_cpus`` and
    ``decode_cpus``: CPUs Ray reserves per actor / decode task; ``video_parts``: decode tasks per video
    (default ``concurrency``); ``call_batches``: encoder batches per actor call (within a call the
    writes of one batch overlap the encoding of the next; each call ends when its frames are durable);
    ``address``: the cluster (default: the running one, ``RAY_ADDRESS``, or a
    new local one). Inputs must be paths; ``checkpoint`` a path or None. Returns an
    :class:`lsegrt.pipeline.summary.ExtractSummary` over all actors.
    """
    from .run import Extraction, _is_paths
    from .summary import ExtractSummary
    from .progress import Progress
    from .store import SUMMARY_JSON, write_json_durable

    say = say or (lambda line: print(line, flush=True))
    if not _is_paths(inputs):
        raise LsegError("extract_ray reads files: pass paths (arrays from Python go through lsegrt.extract)")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise LsegError("extract_ray: pass the checkpoint as a path (every actor loads it)")
    try:
        opts = ExtractOptions(**options)
    except TypeError as exc:
        raise LsegError(f"extract_ray: {exc}") from None
    opts.validate()
    if isinstance(call_batches, bool) or not isinstance(call_batches, int) or call_batches < 1:
        raise LsegError(f"call_batches must be a whole number >= 1, got {call_batches!r}")
    for name, value in (("actor_cpus", actor_cpus), ("decode_cpus", decode_cpus)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise LsegError(f"{name} must be a positive number, got {value!r}")
    t0 = time.perf_counter()

    # The driver checks the folder and plans, on the CPU, before any cluster work.
    driver = Extraction(inputs, out, opts, checkpoint=checkpoint, variant=variant, device="cpu", resume=resume,
                        overwrite=overwrite, shard=Shard(), glob=glob, recursive=recursive, progress=False, say=say)
    if driver.state.done and not resume:
        raise LsegError(f"{driver.out} already holds this run's data ({len(driver.state.done)} frames); pass "
                        "--resume to continue it or --overwrite to start over")
    todo, total = driver._todo_units()
    variant = driver.model.variant
    out_abs = str(Path(out).resolve())
    raw = [str(inputs)] if isinstance(inputs, (str, os.PathLike)) else [str(i) for i in inputs]
    raw = [r if r.startswith(("sample:", "@")) else str(Path(r).resolve()) for r in raw]
    raw = [f"@{Path(r[1:]).resolve()}" if r.startswith("@") else r for r in raw]
    checkpoint = str(Path(checkpoint).resolve()) if checkpoint is not None else None
    per_frame = driver._announce_bytes(todo)
    already_done = driver.state.done_frames
    if opts.pca_basis:
        opts.pca_basis = str(Path(opts.pca_basis).resolve())
    del driver

    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    if num_gpus is None:
        num_gpus = 1 if _cluster_gpus(ray) > 0 else 0
    if concurrency is None:
        concurrency = max(1, int(_cluster_gpus(ray) // num_gpus)) if num_gpus else 1
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise LsegError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    parts = video_parts or concurrency
    cpus, gpus = float(ray.cluster_resources().get("CPU", 0)), _cluster_gpus(ray)
    need_cpus, need_gpus = concurrency * actor_cpus + decode_cpus, concurrency * num_gpus
    if need_cpus > cpus or need_gpus > gpus:
        # Actors hold their CPUs for the whole run: without one left for decode tasks nothing moves.
        say(f"warning: {concurrency} actors × ({actor_cpus} CPU, {num_gpus} GPU) + decode tasks ({decode_cpus} CPU) "
            f"need {need_cpus:g} CPUs and {need_gpus:g} GPUs; the cluster has {cpus:g} and {gpus:g} now: the run "
            "waits until nodes join (lower --ray-actors otherwise)")
    ctx = ray.data.DataContext.get_current()
    # lsegrt draws its own progress; Ray Data's bars and per-operator log lines would interleave with it.
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    device = "cuda" if num_gpus else "cpu"

    summary = ExtractSummary(
        out=str(out), shard=f"ray: {concurrency} actors", device=f"{device} × {concurrency}", backend=opts.backend,
        precision=opts.precision, batch_size=opts.batch_size, workers=parts, frames_planned=total,
        already_done=already_done, bytes_per_frame=per_frame)
    items = _unit_items(todo, parts)
    written = skipped = nbytes = 0
    first_t = None
    first_written = 0
    if items:
        slots = ray.remote(num_cpus=0)(_Slots).options(name=f"lsegrt-slots-{uuid.uuid4().hex[:8]}").remote()
        size = None if opts.multiscale else opts.size
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 8 * concurrency + 8))
        ds = ds.map_batches(_decode_items, batch_size=1, num_cpus=decode_cpus,
                            fn_kwargs={"size": size, "video_stride": opts.video_stride,
                                       "video_fps": opts.video_fps, "chunk": opts.batch_size})
        ds = ds.map_batches(
            _EncodeActor, batch_size=opts.batch_size * call_batches, compute=ray.data.ActorPoolStrategy(size=concurrency),
            num_gpus=num_gpus, num_cpus=actor_cpus,
            fn_constructor_kwargs={"inputs": raw, "out": out_abs, "options": _option_dict(opts),
                                   "checkpoint": checkpoint, "variant": variant, "glob": glob,
                                   "recursive": recursive, "device": device, "slots": slots,
                                   "world": concurrency})
        bar = Progress(total, enabled=progress is not False, say=say)
        busy: dict[int, dict[str, float]] = {}
        t_run = time.perf_counter()
        try:
            for rows in ds.iter_batches(batch_size=None, batch_format="numpy"):
                n_skip = int(np.sum(rows["skipped"]))
                written += len(rows["skipped"]) - n_skip
                skipped += n_skip
                nbytes += int(np.sum(rows["bytes"]))
                for slot, text in zip(rows["slot"], rows["busy"]):
                    busy[int(slot)] = json.loads(str(text))
                if first_t is None and written:
                    first_t, first_written = time.perf_counter(), written
                summary.utilisation = _utilisation(busy, concurrency, opts.writers, time.perf_counter() - t_run)
                bar.update(written, skipped, summary.utilisation)
        finally:
            bar.close()
            ray.kill(slots)
    t_end = time.perf_counter()
    summary.written, summary.skipped, summary.bytes_written = written, skipped, nbytes
    summary.wall_s = round(t_end - t0, 3)
    summary.frames_per_s = round(written / max(t_end - t0, 1e-9), 2)
    if first_t is not None:
        summary.time_to_first_frame_s = round(first_t - t0, 3)
        if written > first_written and t_end > first_t:
            summary.steady_frames_per_s = round((written - first_written) / (t_end - first_t), 2)
    write_json_durable(Path(out) / SUMMARY_JSON, {
        "shards": [summary.to_dict()], "ray": {"actors": concurrency, "num_gpus": num_gpus, "video_parts": parts},
        "written": written, "skipped": skipped, "bytes_written": nbytes, "wall_s": summary.wall_s,
        "frames_per_s": summary.frames_per_s})
    return summary


def _utilisation(busy: dict[int, dict[str, float]], actors: int, writers: int, wall: float) -> dict[str, float]:
    """Each stage's busy seconds summed over actors ÷ (actors × its capacity × wall): the pool's share."""
    from .timing import STAGES

    capacity = {s: 1 for s in STAGES} | {"write": writers}
    return {s: round(min(1.0, sum(b.get(s, 0.0) for b in busy.values()) / (max(wall, 1e-9) * actors * capacity[s])), 3)
            for s in STAGES}


def _option_dict(opts: ExtractOptions) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(opts)
    if isinstance(d.get("size"), list):
        d["size"] = tuple(d["size"])
    return d
