"""Writing safetensors files straight from (pinned) host memory, durably.

The format (https://github.com/huggingface/safetensors, "Format"): an 8-byte little-endian header
length, a JSON header (``{key: {dtype, shape, data_offsets}}`` plus ``__metadata__``) padded with
spaces to a multiple of 8 bytes, then the raw little-endian tensor bytes. It is written here rather
than with ``safetensors.torch.save_file`` because the pipeline's per-frame tensors are views of one
pinned buffer per batch (which ``save_file`` refuses as shared memory, or copies), because every file
must be fsync'ed before it is renamed into place, and because ``encode --out X.safetensors`` streams
frames into one file without holding them all. Files are read back with the library's ``safe_open``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LsegError

DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _raw(t: Any) -> tuple[str, list[int], memoryview]:
    """A CPU tensor or numpy array → (safetensors dtype, shape, its bytes without a copy)."""
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(t))
    if t.device.type != "cpu":
        raise LsegError(f"tensorfile: tensor on {t.device}, expected host memory")
    if not t.is_contiguous():
        t = t.contiguous()
    if t.dtype not in DTYPE_NAMES:
        raise LsegError(f"tensorfile: unsupported dtype {t.dtype}")
    # Viewing as bytes works for every dtype (numpy has no bfloat16).
    data = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else np.empty(0, np.uint8)
    return DTYPE_NAMES[t.dtype], list(t.shape), memoryview(data).cast("B")


def header(entries: list[tuple[str, str, list[int], int]], metadata: dict[str, str] | None = None) -> bytes:
    """``[(key, dtype, shape, nbytes)]`` in file order → the 8-byte length + padded JSON header."""
    head: dict[str, Any] = {}
    if metadata:
        head["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for key, dtype, shape, nbytes in entries:
        head[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(head, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def _write_all(f, data) -> None:
    view = memoryview(data).cast("B")
    while view.nbytes:
        n = f.write(view)
        view = view[n:]


def write_tensors(path: str | os.PathLike, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> int:
    """Write ``tensors`` (host tensors or arrays, in this key order) to ``path`` and fsync it → bytes."""
    raws = [(k, *_raw(v)) for k, v in tensors.items()]
    head = header([(k, dt, shape, mv.nbytes) for k, dt, shape, mv in raws], metadata)
    with open(path, "wb", buffering=0) as f:
        _write_all(f, head)
        for *_, mv in raws:
            _write_all(f, mv)
        os.fsync(f.fileno())
    return len(head) + sum(mv.nbytes for *_, mv in raws)


class StreamingTensorFile:
    """One safetensors file built from tensors added one at a time, holding none of them: bytes go to a
    body file as they come; :meth:`finish` writes the header and appends the body (a file copy)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.body_path = self.path.with_name(f".{self.path.name}.body.tmp")
        self.entries: list[tuple[str, str, list[int], int]] = []
        self.keys: set[str] = set()
        self._body = open(self.body_path, "wb", buffering=0)

    def add(self, key: str, tensor: Any) -> None:
        if key in self.keys:
            raise LsegError(f"tensor {key!r} added twice")
        dtype, shape, mv = _raw(tensor)
        _write_all(self._body, mv)
        self.entries.append((key, dtype, shape, mv.nbytes))
        self.keys.add(key)

    def finish(self, target: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
        """Write the complete file to ``target`` (a temporary path the caller renames into place)."""
        self._body.close()
        with open(target, "wb") as out, open(self.body_path, "rb") as body:
            out.write(header(self.entries, metadata))
            shutil.copyfileobj(body, out, 1 << 24)
            out.flush()
            os.fsync(out.fileno())
        self.body_path.unlink()

    def discard(self) -> None:
        self._body.close()
        self.body_path.unlink(missing_ok=True)
