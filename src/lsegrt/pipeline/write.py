"""Write stage: writer threads turn finished batches into durable files and manifest lines.

One job per batch: wait for its device→host copies (a CUDA event, in this thread), write the batch's
arrays as one safetensors file and its label maps as PNGs, each under a temporary name, fsync'ed and
renamed; fsync the folders; only then append the frames' manifest lines and fsync the manifest. PNG
encoding (zlib) and file writes release the GIL, so a few threads overlap them with the GPU.

An ``OSError`` (disk full, permissions, I/O) stops the writer: the job's temporary files are removed,
no manifest line is written for it, and the main thread raises a one-line error at its next submit or
at :meth:`Writer.close`; ``--resume`` continues from the last durable batch.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import LsegError
from .sources import Shard
from .store import data_name, fsync_dir, label_name, temp_path
from .tensorfile import write_tensors
from .timing import Span, StageTimes

ARRAY_OUTPUTS = ("features", "scores")
PNG_LEVEL = 3  # zlib level: ~2 ms for a 480×640 label map, within 30 % of level 6's size


@dataclass
class Job:
    """A finished batch: frame records (no pixels), host arrays for its first ``len(frames)`` frames
    (``features``/``scores``: (n, ...) tensors; ``labels``: list of (h0, w0) uint8), and skipped records."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    ready: Any = None  # CUDA event: the host arrays are valid once it completed
    spans: dict[str, Span] = field(default_factory=dict)
    buffer: Any = None  # pinned buffer to give back to the pool


def dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


class Writer:
    """Writer threads for one shard of a dataset folder."""

    def __init__(self, root: Path, shard: Shard, next_seq: int, *, threads: int, times: StageTimes,
                 label_names: list[str] | None, on_done: Callable[[int, int, int], None],
                 release: Callable[[Any], None] | None = None):
        self.root, self.shard = root, shard
        self.seq = next_seq
        self.times = times
        self.label_names = label_names
        self.on_done = on_done
        self.release = release
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, threads))
        self.manifest = open(root / f"manifest-{shard.rank}-of-{shard.world}.jsonl", "ab", buffering=0)
        self.threads = [threading.Thread(target=self._loop, name=f"lsegrt-writer-{i}", daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    # -- main thread ---------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue a job (blocks while the queue is full); raises the writers' error, if any."""
        self.check()
        self.queue.put(job)

    def check(self) -> None:
        if self.error is not None:
            raise _as_user_error(self.error)

    def close(self) -> None:
        """Finish every queued job, stop the threads; raises the writers' error, if any."""
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join()
        self.manifest.close()
        self.check()

    # -- writer threads ------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            try:
                if self.error is None:
                    self._write(job)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                with self.lock:
                    self.error = self.error or exc
            finally:
                if job.buffer is not None and self.release is not None:
                    self.release(job.buffer)

    def _next_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq - 1

    def _write(self, job: Job) -> None:
        if job.ready is not None:
            job.ready.synchronize()
        t0 = time.perf_counter()
        temps: list[Path] = []
        written = 0
        try:
            entries, tensors, pngs = self._plan(job)
            renames: list[tuple[Path, Path]] = []
            if tensors:
                rel = data_name(self.shard, self._next_seq())
                final = self.root / rel
                tmp = temp_path(final, self.shard)
                temps.append(tmp)
                written += write_tensors(tmp, {k: v for k, v in tensors})
                for e in entries:
                    for name in ARRAY_OUTPUTS:
                        if name in e["outputs"]:
                            e["outputs"][name]["file"] = rel
                renames.append((tmp, final))
            for rel, array in pngs:
                final = self.root / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = temp_path(final, self.shard)
                temps.append(tmp)
                written += self._write_png(tmp, array)
                renames.append((tmp, final))
            for tmp, final in renames:
                os.replace(tmp, final)
            for folder in sorted({final.parent for _, final in renames}):
                fsync_dir(folder)
        except BaseException:
            for tmp in temps:
                tmp.unlink(missing_ok=True)
            raise
        skipped = [{"frame_id": r["frame_id"], "source": r["source"], "frame_index": r["index"], "order": r["order"],
                    "skipped": r["skipped"]} for r in job.skipped]
        lines = [json.dumps(e, separators=(",", ":")) for e in entries + skipped]
        if lines:
            payload = ("\n".join(lines) + "\n").encode()
            with self.lock:
                _write_all(self.manifest, payload)
                os.fsync(self.manifest.fileno())
        self.times.add("write", time.perf_counter() - t0)
        for stage, span in job.spans.items():
            self.times.add(stage, span.seconds())
        self.on_done(len(entries), len(job.skipped), written)

    def _plan(self, job: Job):
        entries, tensors, pngs = [], [], []
        for i, frame in enumerate(job.frames):
            fid = frame["frame_id"]
            entry = {"frame_id": fid, "source": frame["source"], "frame_index": frame["index"],
                     "order": frame["order"], "original_size": list(frame["hw0"]),
                     "input_size": list(frame["hw"]), "outputs": {}}
            for name in ARRAY_OUTPUTS:
                if name in job.arrays:
                    t = job.arrays[name][i]
                    key = f"{fid}/{name}"
                    tensors.append((key, t))
                    entry["outputs"][name] = {"file": None, "key": key, "shape": list(t.shape),
                                              "dtype": dtype_name(t)}
            if "labels" in job.arrays:
                t = job.arrays["labels"][i]
                rel = label_name(fid)
                pngs.append((rel, t))
                entry["outputs"]["labels"] = {"file": rel, "shape": list(t.shape), "dtype": "uint8"}
            entries.append(entry)
        return entries, tensors, pngs

    def _write_png(self, path: Path, labels) -> int:
        from ..viz import label_map_image

        img, info = label_map_image(labels.numpy(), self.label_names or [])
        with open(path, "wb") as f:
            img.save(f, format="PNG", pnginfo=info, compress_level=PNG_LEVEL)
            f.flush()
            os.fsync(f.fileno())
            return f.tell()


def _write_all(f, data: bytes) -> None:
    view = memoryview(data)
    while view.nbytes:
        view = view[f.write(view):]


def _as_user_error(exc: BaseException) -> BaseException:
    if isinstance(exc, LsegError):
        return exc
    if isinstance(exc, OSError):
        what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot write"
        where = f" ({exc.filename})" if exc.filename else ""
        return LsegError(f"{what} while writing the dataset{where}: {exc.strerror or exc}; nothing partial was "
                         "kept: free space or fix the folder, then run again with --resume")
    return exc
