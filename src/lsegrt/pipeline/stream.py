"""The pipeline's stages without a dataset folder: frames → float32 features, one frame at a time.

``lsegrt encode`` writes its .npy/.safetensors/folder outputs from this stream, so that images reach
features through the same sources, decode, batch, encode and reduce stages as ``lsegrt extract``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch

from .batch import Batch, Batcher
from .decode import UnitDataset, frame_loader
from .encode import DeviceStage, EncodeFn
from .reduce import ReduceSpec, reduce_batch
from .sources import Shard, Unit


def feature_stream(units: list[Unit], encode: EncodeFn, device: torch.device | str, mean, std, size, *,
                   batch_size: int = 1, workers: int = 0, video_stride: int = 1, video_fps: float | None = None,
                   ) -> Iterator[tuple[dict[str, Any], torch.Tensor | None, float]]:
    """Yield ``(record, features, seconds)`` per frame, in batch order: ``features`` is the frame's
    ``(1, 512, H/2, W/2)`` float32 unit vectors on the CPU and ``seconds`` its batch's encode time
    (device synchronized); a frame that could not be read comes as ``(record with "skipped", None, 0)``."""
    device = torch.device(device)
    stage = DeviceStage(encode, device, mean, std)
    spec = ReduceSpec(features=True, dtype=torch.float32)
    dataset = UnitDataset(units, size, Shard(), video_stride, video_fps)
    batcher = Batcher(batch_size)

    def run(batch: Batch):
        x, _ = stage.upload(batch.frames, batch.hw, batch.size)
        _sync(device)
        t0 = time.perf_counter()
        feats, _ = stage.encode(x)
        out = reduce_batch(feats, batch.n, [f["hw0"] for f in batch.frames], spec)["features"].cpu()
        seconds = time.perf_counter() - t0
        for i, frame in enumerate(batch.frames):
            yield frame, out[i:i + 1], seconds

    for rec in frame_loader(dataset, workers, pin_memory=device.type == "cuda"):
        if "skipped" in rec:
            yield rec, None, 0.0
            continue
        for batch in batcher.add(rec):
            yield from run(batch)
    for batch in batcher.flush():
        yield from run(batch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
