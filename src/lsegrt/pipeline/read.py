"""Reading a dataset back: :func:`open_features` → a lazy, read-only view over every shard.

    ds = lsegrt.open_features("out/")
    len(ds), ds.config, ds.frames[0], ds.skipped
    ds["scene/0001"]["features"]     # (C, h, w) numpy array, read (mmap) on access
    ds[0]["labels"]                  # (H0, W0) uint8 from labels/<id>.png
    for frame_id, arrays in ds.items(): ...

Frames are ordered as the run listed them (input order, then frame index), whichever shard wrote them.
Nothing is read until asked for: the manifests at open, then one array per access through
``safetensors.safe_open`` (memory-mapped). bfloat16 arrays come back as float32 numpy arrays (numpy has
no bfloat16); ``framework="pt"`` gives them as stored.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LsegError
from .store import DATASET_JSON, PCA_FILE, Store, manifests, read_manifest

_OPEN_FILES = 32


class FeatureDataset:
    """See the module docstring. ``framework="pt"`` returns torch tensors instead of numpy arrays."""

    def __init__(self, root: str | os.PathLike, framework: str = "np"):
        if framework not in ("np", "pt"):
            raise LsegError(f"framework {framework!r}: choose 'np' or 'pt'")
        self.root = Path(root)
        self.framework = framework
        config = Store(self.root).read_config()
        if config is None:
            raise LsegError(f"{self.root} is not an lsegrt dataset (no {DATASET_JSON})")
        self.config: dict[str, Any] = config
        entries: dict[str, dict[str, Any]] = {}
        for path in manifests(self.root):
            for e in read_manifest(path)[0]:
                entries[e["frame_id"]] = e
        ordered = sorted(entries.values(), key=lambda e: (e.get("order", 0), e.get("frame_index") or -1,
                                                          e["frame_id"]))
        self.frames: list[dict[str, Any]] = [e for e in ordered if "skipped" not in e]
        self.skipped: list[dict[str, Any]] = [e for e in ordered if "skipped" in e]
        self._index = {e["frame_id"]: i for i, e in enumerate(self.frames)}
        self._files: OrderedDict[str, Any] = OrderedDict()
        self._pca = None

    def __len__(self) -> int:
        return len(self.frames)

    def __contains__(self, frame_id: str) -> bool:
        return frame_id in self._index

    @property
    def ids(self) -> list[str]:
        return [e["frame_id"] for e in self.frames]

    @property
    def pca(self):
        """The :class:`lsegrt.pipeline.pca.PcaBasis` features were projected with, or None."""
        if self._pca is None and (self.root / PCA_FILE).is_file():
            from .pca import load_basis

            self._pca = load_basis(self.root / PCA_FILE)
        return self._pca

    def __getitem__(self, key: int | str) -> dict[str, Any]:
        if isinstance(key, (int, np.integer)):
            entry = self.frames[key]
        else:
            if key not in self._index:
                raise KeyError(key)
            entry = self.frames[self._index[key]]
        return {name: self._read(name, out) for name, out in entry["outputs"].items()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for i, e in enumerate(self.frames):
            yield e["frame_id"], self[i]

    def _handle(self, rel: str):
        from safetensors import safe_open

        if rel in self._files:
            self._files.move_to_end(rel)
            return self._files[rel]
        handle = safe_open(str(self.root / rel), framework="pt")
        self._files[rel] = handle
        if len(self._files) > _OPEN_FILES:
            self._files.popitem(last=False)
        return handle

    def _read(self, name: str, out: dict[str, Any]):
        if out["file"].endswith(".png"):
            from PIL import Image

            with Image.open(self.root / out["file"]) as img:
                array = np.asarray(img, dtype=np.uint8)
            if self.framework == "pt":
                import torch

                return torch.from_numpy(array.copy())
            return array
        t = self._handle(out["file"]).get_tensor(out["key"])
        if self.framework == "pt":
            return t
        import torch

        # numpy has no bfloat16: bf16 arrays come back as float32 (exactly; read torch for bf16 itself).
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def open_features(root: str | os.PathLike, framework: str = "np") -> FeatureDataset:
    """A lazy reader over the dataset folder ``root`` written by ``lsegrt extract`` (all shards)."""
    return FeatureDataset(root, framework)
