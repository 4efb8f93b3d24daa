"""``lsegrt.extract``: sources → decode → batch → encode → reduce → write, every stage overlapped.

- decode: DataLoader worker processes (bounded prefetch) read and resize frames into pinned memory;
- batch: frames grouped by input size, fixed batch size, the last batch of a size padded;
- encode: host→device copies on a side stream, normalization and the encoder on the compute stream;
- reduce: pooling, PCA, logits and label maps on the device;
- write: device→host copies on a third stream into pooled pinned buffers, then writer threads.

The main thread only enqueues work: it never waits for the GPU (the writer threads wait, each for its
own batch's copy-done event), so the GPU runs ahead until the pinned-buffer budget or the writer queue
pushes back. Memory is bounded by those budgets, never by the number of frames.
"""

from __future__ import annotations

import itertools
import os
import resource
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ..errors import LsegError
from .batch import Batch, Batcher
from .decode import ArrayDataset, UnitDataset, default_workers, frame_loader
from .encode import DeviceStage
from .options import DTYPES, ExtractOptions, shard_from
from .progress import Progress, format_bytes
from .reduce import ReduceSpec, pool, reduce_batch, reduce_logits
from .sources import Shard, Unit, array_frames, count_video_frames, image_size, resolve_inputs, spread_sample
from .store import PCA_FILE, ResumeState, Store
from .summary import Counters, ExtractSummary, describe_summary, write_summaries
from .timing import Span, StageTimes
from .write import Job, Writer

_META = ("frame_id", "source", "index", "order", "hw0", "hw")


def use_lsegrt_compile_cache() -> None:
    """Inductor/Triton caches inside lsegrt's cache folder (a user's own setting wins), so the second
    run of a command reuses compiled kernels and starts quickly."""
    from ..sidecar import cache_dir

    base = cache_dir() / "inductor"
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(base))
    os.environ.setdefault("TRITON_CACHE_DIR", str(base / "triton"))


def _is_paths(inputs: Any) -> bool:
    if isinstance(inputs, (str, os.PathLike)):
        return True
    return isinstance(inputs, (list, tuple)) and all(isinstance(i, (str, os.PathLike)) for i in inputs)


def _check_out_not_input(out: Path, raw: list[str], units: list[Unit]) -> None:
    out_r = out.resolve()
    out_a = os.path.abspath(out)
    for text in raw:
        if text.startswith("sample:"):
            continue
        p = Path(text.removeprefix("@")).resolve()
        if p == out_r or out_r in p.parents:
            raise LsegError(f"output folder {out} is or contains the input {text}; choose another --out")
    for u in units:
        if u.kind != "sample":
            a = os.path.abspath(u.path)
            if a == out_a or a.startswith(out_a + os.sep):
                raise LsegError(f"output folder {out} contains the input {u.path}; choose another --out")


def _device_for(device: Any, model: Any, local_rank: int | None) -> torch.device:
    from ..api import LSegModel

    if device in (None, "auto"):
        if isinstance(model, LSegModel):
            return model.device
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank or 0)
        return torch.device("cpu")
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", local_rank or 0)
    return d


def _load_model(checkpoint: Any, variant: str | None, device: torch.device, say):
    from ..api import DEFAULT_VARIANT, LSegModel, load_or_random

    if isinstance(checkpoint, LSegModel):
        if checkpoint.device != device:
            raise LsegError(f"the model is on {checkpoint.device}, extraction runs on {device}; move it with "
                            f".to('{device}') or pass device='{checkpoint.device}'")
        return checkpoint
    model = load_or_random(checkpoint, variant or DEFAULT_VARIANT, device, say=say)
    if checkpoint and variant and model.variant != variant:
        raise LsegError(f"{Path(checkpoint).name} is a {model.variant} checkpoint, not variant {variant}")
    return model


class Extraction:
    """One run of one shard; :func:`extract` builds it and calls :meth:`run`."""

    def __init__(self, inputs: Any, out: str | os.PathLike, opts: ExtractOptions, *, checkpoint: Any,
                 variant: str | None, device: Any, resume: bool, overwrite: bool, shard: Any,
                 glob: str | None, recursive: bool, progress: bool | None, say: Callable[[str], None]):
        self.t0 = time.perf_counter()
        self.opts = opts
        self.out = Path(out)
        self.say = say
        self.progress_enabled = progress is not False
        self.shard, local_rank = shard_from(shard)
        use_lsegrt_compile_cache()

        # Sources first: a bad input is reported before any model is loaded.
        self.units: list[Unit] | None = None
        self.arrays: Iterable[Any] | None = None
        if _is_paths(inputs):
            raw = [str(inputs)] if isinstance(inputs, (str, os.PathLike)) else [str(i) for i in inputs]
            self.units = resolve_inputs(raw, glob=glob, recursive=recursive, exclude=self.out)
            _check_out_not_input(self.out, raw, self.units)
            self.inputs_info: Any = raw[:50]
        else:
            self.arrays = array_frames(inputs)
            self.inputs_info = "arrays"

        # Options against a dataset already in --out before the model loads: a refusal costs nothing.
        self.store = Store(self.out, self.shard)
        self.store.check_options(opts.options_identity(), resume=resume, overwrite=overwrite)

        self.device = _device_for(device, checkpoint, local_rank)
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise LsegError(f"device {self.device} requested but no CUDA GPU is available (use device cpu)")
            torch.cuda.set_device(self.device)
        self.model = _load_model(checkpoint, variant, self.device, say)
        self.given_basis = None
        basis_sha = None
        if opts.pca_basis:
            from ..sidecar import sha256_file
            from .pca import load_basis

            self.given_basis = load_basis(opts.pca_basis)
            opts.pca = opts.pca or self.given_basis.k
            self.given_basis = self.given_basis.truncate(opts.pca)
            basis_sha = sha256_file(opts.pca_basis)
        identity = opts.identity(self.model, basis_sha)
        self.config = {
            "format": "lsegrt-features",
            "identity": identity,
            "layout": opts.layout(opts.pca),
            "info": {"checkpoint": self.model.source, "inputs": self.inputs_info},
        }
        self.resume = resume
        self.state: ResumeState = self.store.prepare(self.config, resume=resume, overwrite=overwrite, say=say)
        if self.state.done and resume:
            say(f"resuming: {len(self.state.done)} frames already done in {self.out}")

    # -- planning --------------------------------------------------------------------------------
    def _todo_units(self) -> tuple[list[Unit], int | None]:
        todo, total = [], 0
        for u in self.units or []:
            if u.kind == "video":
                if u.frame_id in self.state.done:
                    continue  # recorded as unreadable
                u.skip = self.state.video_done(u.frame_id)
                todo.append(u)
                n = count_video_frames(u, self.opts.video_stride, self.opts.video_fps)
                if total is not None and n is not None:
                    total += max(0, round((n - len(u.skip)) / self.shard.world))
                else:
                    total = None
            elif self.shard.owns_image(u.order) and u.frame_id not in self.state.done:
                todo.append(u)
                if total is not None:
                    total += 1
        return todo, (total if self.units is not None else None)

    def _announce_bytes(self, todo: list[Unit]) -> dict[str, int]:
        hw0 = None
        for u in todo[:1]:
            hw0 = image_size(u)
        if hw0 is None:
            if isinstance(self.opts.size, tuple) and not self.opts.multiscale:
                hw0 = self.opts.size
            else:
                self.say("bytes per frame: depend on the frames' sizes (first frame unknown)")
                return {}
        from ..sizes import target_size

        hw = hw0 if self.opts.multiscale else target_size(hw0, self.opts.size)
        per = self.opts.bytes_per_frame(hw, hw0, self.opts.pca)
        parts = ", ".join(f"{name} {format_bytes(n)}" for name, n in per.items())
        extra = " (labels: uncompressed size, the PNG is smaller)" if "labels" in per else ""
        self.say(f"bytes per frame at input {hw[0]}x{hw[1]} (original {hw0[0]}x{hw0[1]}): {parts}; "
                 f"total {format_bytes(sum(per.values()))}{extra}")
        return per

    # -- stages ----------------------------------------------------------------------------------
    def _loader(self, dataset, workers: int):
        return frame_loader(dataset, workers, pin_memory=self.device.type == "cuda")

    def _dataset_for(self, units: list[Unit] | None, arrays: Iterable[Any] | None, shard: Shard, done: set[str]):
        size = None if self.opts.multiscale else self.opts.size
        if units is not None:
            return UnitDataset(units, size, shard, self.opts.video_stride, self.opts.video_fps)
        return ArrayDataset(arrays, size, shard, done)

    def _fit_pca(self, stage: DeviceStage, sample_units: list[Unit] | None, sample_arrays: list | None):
        from .pca import Covariance

        opts = self.opts
        dataset = self._dataset_for(sample_units, sample_arrays, Shard(), set())
        n_workers = self.workers if sample_units is not None else 0
        cov = Covariance(512, self.device)
        batcher = Batcher(opts.batch_size)
        t = time.perf_counter()

        def add(batch: Batch):
            x, _ = stage.upload(batch.frames, batch.hw, batch.size)
            feats, _ = stage.encode(x)
            cov.add(pool(feats[: batch.n], opts.stride))

        for rec in self._loader(dataset, n_workers):
            if "skipped" in rec:
                continue
            for batch in batcher.add(rec):
                add(batch)
        for batch in batcher.flush():
            add(batch)
        basis = cov.fit(opts.pca)
        self.say(f"PCA: {opts.pca} components fitted on {cov.frames} frames ({cov.n} pixels) in "
                 f"{time.perf_counter() - t:.1f} s; they explain {100 * basis.explained_ratio:.1f} % of the variance")
        return basis

    def _basis(self, stage: DeviceStage):
        """The run's PCA basis: from the dataset (resume, other shards), from --pca-basis, or fitted
        (shard 0; the others wait for its file)."""
        from .pca import load_basis

        path = self.out / PCA_FILE
        if path.is_file():
            return load_basis(path)
        if self.state.done_frames:
            raise LsegError(f"{self.out} holds PCA features but no {PCA_FILE}; the dataset is damaged")
        if self.given_basis is not None:
            self.given_basis.save(path)
            return self.given_basis
        if self.shard.rank != 0:
            self.say(f"waiting for shard 0 to fit the PCA basis ({path})")
            while not path.is_file():
                time.sleep(1.0)
            return load_basis(path)
        if self.units is not None:
            sample = spread_sample(self.units, self.opts.pca_sample, self.opts.video_stride, self.opts.video_fps)
            basis = self._fit_pca(stage, sample, None)
        else:
            head = list(itertools.islice(self.arrays, self.opts.pca_sample))
            self.arrays = itertools.chain(head, self.arrays)
            basis = self._fit_pca(stage, None, head)
        basis.save(path)
        return basis

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> ExtractSummary:
        opts = self.opts
        todo, total = self._todo_units()
        cuda = self.device.type == "cuda"
        self.workers = opts.workers if opts.workers is not None else default_workers()
        if self.units is None or not todo:
            self.workers = 0
        per_frame = self._announce_bytes(todo) if self.units is not None else {}
        summary = ExtractSummary(
            out=str(self.out), shard=str(self.shard), device=str(self.device), backend=opts.backend,
            precision=opts.precision, batch_size=opts.batch_size, workers=self.workers, frames_planned=total,
            already_done=self.state.done_frames, bytes_per_frame=per_frame)

        from ..backends.base import Encoder

        encoder = Encoder.open(opts.backend, checkpoint=self.model, engine=opts.engine, device=self.device,
                               precision=opts.precision, **opts.backend_options)
        try:
            return self._run(encoder, todo, total, summary, cuda)
        finally:
            encoder.close()

    def _run(self, encoder, todo: list[Unit], total: int | None, summary: ExtractSummary, cuda: bool):
        opts = self.opts
        stage = DeviceStage(encoder, self.device, self.model.mean, self.model.std)
        t_pca = time.perf_counter()
        basis = self._basis(stage) if opts.uses_pca else None
        if basis is not None:
            summary.pca_fit_s = round(time.perf_counter() - t_pca, 2)
            summary.pca_explained = round(basis.explained_ratio, 6)
            basis = basis.to(self.device)
        text = self.model.encode_text(opts.labels) if opts.labels else None
        spec = ReduceSpec(features=bool(opts.features), dtype=getattr(torch, DTYPES[opts.dtype]), stride=opts.stride,
                          pca=basis, text=text, labels=bool(opts.labels), scores=opts.scores)
        times = StageTimes({"decode": max(self.workers, 1), "write": opts.writers})
        counters = Counters()
        pool = downloader = None
        if cuda:
            from .transfer import Downloader, PinnedPool

            pool = PinnedPool(opts.pinned_budget)
            downloader = Downloader(self.device, pool)
        writer = Writer(self.out, self.shard, self.state.next_seq, threads=opts.writers, times=times,
                        label_names=opts.labels, on_done=counters.done, release=pool.release if pool else None)
        progress = Progress(total, enabled=self.progress_enabled, say=self.say)
        black = stage.mean.neg() / stage.std  # a black pixel, normalized (the evaluator pads with it)
        t_first_submit = None
        pending_skipped: list[dict[str, Any]] = []
        decode_busy = 0.0
        t_run = time.perf_counter()

        def submit(frames: list[dict[str, Any]], arrays: dict[str, Any], spans: dict[str, Span]):
            nonlocal t_first_submit, pending_skipped
            meta = [{k: f[k] for k in _META} for f in frames]
            job = Job(meta, arrays, skipped=pending_skipped, spans=spans)
            pending_skipped = []
            if cuda:
                job.arrays, job.buffer, job.ready, spans["d2h"] = downloader.download(arrays, stage.compute)
            if t_first_submit is None:
                t_first_submit = time.perf_counter()
            writer.submit(job)

        def run_batch(batch: Batch):
            x, h2d = stage.upload(batch.frames, batch.hw, batch.size)
            feats, gpu = stage.encode(x)
            arrays = reduce_batch(feats, batch.n, [f["hw0"] for f in batch.frames], spec)
            submit(batch.frames, arrays, {"h2d": h2d, "gpu": gpu.stop()})

        def run_multiscale(frame: dict[str, Any]):
            from ..segmentation import multiscale_logits

            x, h2d = stage.upload([frame], frame["hw0"], 1)
            gpu = Span(stage.compute)
            with torch.inference_mode():
                out = multiscale_logits(encoder, text, x, black, batch_size=opts.batch_size)
            submit([frame], reduce_logits(out, spec), {"h2d": h2d, "gpu": gpu.stop()})

        def utilisation() -> dict[str, float]:
            wall = time.perf_counter() - t_run
            times.busy["decode"] = decode_busy
            return times.utilisation(wall)

        dataset = self._dataset_for(todo if self.units is not None else None, self.arrays, self.shard,
                                    self.state.done)
        batcher = Batcher(opts.batch_size)
        loader_iter = iter(self._loader(dataset, self.workers))
        error: BaseException | None = None
        try:
            while True:
                t = time.perf_counter()
                rec = next(loader_iter, None)
                times.add("wait", time.perf_counter() - t)
                if rec is None:
                    break
                if "skipped" in rec:
                    pending_skipped.append(rec)
                    if len(pending_skipped) >= 64:
                        writer.submit(Job(skipped=pending_skipped))
                        pending_skipped = []
                    continue
                decode_busy += rec["decode_s"]
                if opts.multiscale:
                    run_multiscale(rec)
                else:
                    for batch in batcher.add(rec):
                        run_batch(batch)
                with counters.lock:
                    done, skipped = counters.written, counters.skipped
                progress.update(done, skipped, utilisation())
            for batch in batcher.flush():
                run_batch(batch)
            if pending_skipped:
                writer.submit(Job(skipped=pending_skipped))
        except BaseException as exc:
            error = exc
            raise
        finally:
            del loader_iter  # stops the decode workers
            progress.close()
            try:
                writer.close()
            except BaseException:
                if error is None:
                    raise
        t_end = time.perf_counter()
        wall = t_end - self.t0
        summary.written, summary.skipped, summary.bytes_written = counters.written, counters.skipped, counters.bytes
        summary.wall_s = round(wall, 3)
        summary.startup_s = round((t_first_submit or t_end) - self.t0, 3)
        if counters.first_t is not None:
            summary.time_to_first_frame_s = round(counters.first_t - self.t0, 3)
            rest = counters.written - counters.first_written
            if rest > 0 and t_end > counters.first_t:
                summary.steady_frames_per_s = round(rest / (t_end - counters.first_t), 2)
        summary.frames_per_s = round(counters.written / max(wall, 1e-9), 2)
        summary.utilisation = utilisation()
        summary.peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        summary.peak_rss_children_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        return summary


def extract(
    inputs: Any,
    out: str | os.PathLike,
    *,
    checkpoint: Any = None,
    variant: str | None = None,
    device: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    shard: Any = None,
    glob: str | None = None,
    recursive: bool = False,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
    **options: Any,
) -> "ExtractSummary":
    """Encode many frames into one dataset folder (see :mod:`lsegrt.pipeline.store` for the layout).

    ``inputs``: a path or list of paths (image/video files, folders, ``@list.txt``, ``sample:NAME``),
    or an iterable of ``(H, W, 3) uint8`` arrays (or ``(frame_id, array)`` pairs). ``checkpoint``: a
    path, an :class:`lsegrt.LSegModel` or None (random ``variant`` weights). ``device``: None picks
    the model's device, else CUDA (``cuda:LOCAL_RANK`` under torchrun) when available, else CPU.

    Options (``**options``, all validated before any work): ``size`` (long side or (H, W), default
    480), ``batch_size`` (8), ``workers`` (decode processes, default min(8, CPUs)), ``writers`` (4),
    ``backend`` ("torch"), ``precision`` ("fp32"), ``engine``, ``backend_options`` (dict for
    :meth:`lsegrt.Encoder.open`), ``dtype`` ("fp16" | "bf16" | "fp32"), ``stride`` (k×k average pooling,
    re-normalized), ``pca`` (K components), ``pca_sample`` (frames to fit on, 64), ``pca_basis`` (a basis
    file), ``labels`` (list or "a, b, c"), ``scores``, ``features`` (default True unless ``multiscale``),
    ``multiscale``, ``video_stride``, ``video_fps``, ``pinned_budget`` (bytes of pinned host buffers).

    ``resume`` continues an interrupted run (same options required); ``overwrite`` replaces an existing
    dataset's files; ``shard`` "i/n" (default: torchrun's RANK/WORLD_SIZE, else 0/1).
    Returns an :class:`ExtractSummary` (``summary.exit_code`` is 3 when frames were skipped).
    """
    say = say or (lambda line: print(line, flush=True))
    try:
        opts = ExtractOptions(**options)
    except TypeError as exc:
        raise LsegError(f"extract: {exc}") from None
    opts.validate()
    run = Extraction(inputs, out, opts, checkpoint=checkpoint, variant=variant, device=device, resume=resume,
                     overwrite=overwrite, shard=shard, glob=glob, recursive=recursive, progress=progress, say=say)
    summary = run.run()
    write_summaries(run.store, summary)
    return summary


__all__ = ["ExtractSummary", "describe_summary", "extract"]
