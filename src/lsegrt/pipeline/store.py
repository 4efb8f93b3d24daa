"""The dataset folder: layout, run identity, manifests, and what a resume finds there.

Layout (one folder per dataset; every shard of a run writes into the same one)::

    dataset.json                      format, the run's identity (all options that change outputs,
                                      checkpoint sha256, preprocessing, lsegrt version), output layout
    manifest-<rank>-of-<world>.jsonl  one JSON line per finished frame (or skipped frame), append-only
    data/<rank>-of-<world>-<seq>.safetensors   one file per batch, keys "<frame id>/<output>"
    labels/<frame id>.png             label maps (indexed PNG, pixel value = label id)
    pca.safetensors                   the PCA basis (--pca)
    summary.json, summary-<rank>-of-<world>.json   what the last run of each shard did

A data file is written under a temporary name, fsync'ed, renamed and its folder fsync'ed; only then
are its frames' manifest lines appended and fsync'ed. So every manifest line points at durable data,
and a ``kill -9`` leaves at most a torn last manifest line (ignored), an unreferenced data file or a
temporary file (both removed by ``--resume``).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LsegError
from .sources import Shard

FORMAT = "lsegrt-features"
FORMAT_VERSION = 1
DATASET_JSON = "dataset.json"
DATA_DIR = "data"
LABELS_DIR = "labels"
PCA_FILE = "pca.safetensors"
SUMMARY_JSON = "summary.json"
_MANIFEST = re.compile(r"^manifest-(\d+)-of-(\d+)\.jsonl$")
_DATA = re.compile(r"^(\d+)-of-(\d+)-(\d+)\.safetensors$")
_SUMMARY = re.compile(r"^summary(-\d+-of-\d+)?\.json$")
_TMP = ".tmp-"


def manifest_name(shard: Shard) -> str:
    return f"manifest-{shard.rank}-of-{shard.world}.jsonl"


def data_name(shard: Shard, seq: int) -> str:
    return f"{DATA_DIR}/{shard.rank}-of-{shard.world}-{seq:06d}.safetensors"


def label_name(frame_id: str) -> str:
    return f"{LABELS_DIR}/{frame_id}.png"


def temp_path(final: Path, shard: Shard) -> Path:
    """A unique hidden name next to ``final``, tagged with the shard (a resume removes its own only)."""
    return final.with_name(f".{final.name}{_TMP}r{shard.rank}of{shard.world}-{uuid.uuid4().hex[:12]}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_durable(path: Path, payload: Any, shard: Shard = Shard()) -> None:
    tmp = temp_path(path, shard)
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def read_manifest(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Entries of a manifest and the byte length of its intact part.

    Lines are appended whole (``line\n`` per frame, one write per batch): bytes after the last newline
    are the torn tail of an interrupted append and are ignored.
    """
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    entries: list[dict[str, Any]] = []
    for i, line in enumerate(data[:end].split(b"\n")[:-1]):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entry["frame_id"]
        except (ValueError, TypeError, KeyError):
            raise LsegError(f"{path}: line {i + 1} is not a manifest entry; the dataset is damaged") from None
        entries.append(entry)
    return entries, end


def manifests(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("manifest-*-of-*.jsonl") if _MANIFEST.match(p.name))


@dataclass
class ResumeState:
    """What the folder already holds for this run."""

    done: set[str] = field(default_factory=set)  # frame ids finished (written or skipped), all shards
    done_frames: int = 0  # of which written
    own_entries: int = 0  # lines in this shard's manifest
    next_seq: int = 0  # next data file number of this shard
    fresh: bool = True  # the folder held nothing of this dataset
    _videos: dict[str, set[int]] | None = field(default=None, repr=False)

    def video_done(self, prefix: str) -> frozenset[int]:
        """Indices of finished frames of the video whose id prefix is ``prefix``."""
        if self._videos is None:
            self._videos = {}
            for fid in self.done:
                head, sep, index = fid.rpartition("#")
                if sep and index.isdigit():
                    self._videos.setdefault(head, set()).add(int(index))
        return frozenset(self._videos.get(prefix, ()))


def mismatches(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = sorted(set(recorded) | set(wanted))
    norm = lambda v: json.loads(json.dumps(v))  # noqa: E731 - tuples vs lists, as stored
    return [f"{k}: {recorded.get(k, '<absent>')!r} → {wanted.get(k, '<absent>')!r}"
            for k in keys if norm(recorded.get(k)) != norm(wanted.get(k))]


class Store:
    """One dataset folder, as seen by one shard."""

    def __init__(self, root: str | os.PathLike, shard: Shard = Shard()):
        self.root = Path(root)
        self.shard = shard

    @property
    def manifest_path(self) -> Path:
        return self.root / manifest_name(self.shard)

    def _ours(self, name: str) -> bool:
        return (name in (DATASET_JSON, DATA_DIR, LABELS_DIR, PCA_FILE) or bool(_MANIFEST.match(name))
                or bool(_SUMMARY.match(name)) or (name.startswith(".") and _TMP in name))

    def read_config(self) -> dict[str, Any] | None:
        path = self.root / DATASET_JSON
        if not path.is_file():
            return None
        try:
            config = json.loads(path.read_text())
            if config.get("format") != FORMAT:
                raise ValueError
        except (ValueError, AttributeError, OSError):
            raise LsegError(f"{path} is not an lsegrt dataset file; choose another --out") from None
        return config

    def check_options(self, identity: dict[str, Any], *, resume: bool, overwrite: bool) -> None:
        """Refuse early (before any model is loaded) when the folder holds a dataset whose recorded
        identity differs in any key of ``identity``; :meth:`prepare` checks the whole identity later."""
        existing = self.read_config() if self.root.is_dir() else None
        if existing is not None and not overwrite:
            recorded = existing.get("identity", {})
            self._refuse_other_identity({k: v for k, v in recorded.items() if k in identity}, identity, resume)

    def _refuse_other_identity(self, recorded: dict[str, Any], identity: dict[str, Any], resume: bool) -> None:
        diff = mismatches(recorded, identity)
        if diff:
            verb = "cannot --resume: " if resume else ""
            raise LsegError(f"{verb}{self.root} holds a dataset made with other options ({'; '.join(diff)}); "
                            "use the same options, another --out, or --overwrite to replace it")

    def prepare(self, config: dict[str, Any], *, resume: bool, overwrite: bool, say=print) -> ResumeState:
        """Check the folder against this run, create what is missing, and return what is already done.

        Refuses (one line, nothing changed): a file in place of the folder; a non-empty folder that is
        not an lsegrt dataset (always: user files are never deleted); a dataset made with other options
        (naming each differing key; ``--overwrite`` replaces it); this shard's earlier data without
        ``--resume`` or ``--overwrite``.
        """
        root = self.root
        if root.exists() and not root.is_dir():
            raise LsegError(f"output {root} exists and is not a folder")
        if not root.exists() and not (root.parent if str(root.parent) else Path(".")).is_dir():
            raise LsegError(f"output folder's parent does not exist: {root.parent} (create it first)")
        names = [p.name for p in root.iterdir()] if root.is_dir() else []
        existing = self.read_config()
        # Only lsegrt's own names (another shard creating the same dataset right now, or a run killed
        # before its dataset.json was durable) is not a foreign folder.
        if names and existing is None and not all(self._ours(n) for n in names):
            raise LsegError(f"output folder {root} is not empty and is not an lsegrt dataset; "
                            "choose a new or empty folder")
        if existing is not None and overwrite:
            if self.shard.world > 1:
                raise LsegError("--overwrite cannot be combined with sharding (other shards may be writing); "
                                "delete the folder's dataset first or run --overwrite unsharded")
            self._delete_dataset()
            say(f"--overwrite: removed the dataset in {root}")
            existing = None
        if existing is not None:
            self._refuse_other_identity(existing.get("identity", {}), config["identity"], resume)
        (root / DATA_DIR).mkdir(parents=True, exist_ok=True)
        if existing is None:
            write_json_durable(root / DATASET_JSON, config, self.shard)
        state = self._scan()
        state.fresh = existing is None
        if state.own_entries and not resume:
            raise LsegError(f"{root} already holds this run's data ({state.own_entries} frames); pass --resume "
                            "to continue it or --overwrite to start over")
        self._clean(state)
        return state

    def _scan(self) -> ResumeState:
        state = ResumeState()
        for path in manifests(self.root):
            entries, good = read_manifest(path)
            if path == self.manifest_path:
                state.own_entries = len(entries)
                if good < path.stat().st_size:  # drop a torn tail so the next append starts a fresh line
                    with open(path, "r+b") as f:
                        f.truncate(good)
                        os.fsync(f.fileno())
            for e in entries:
                state.done.add(e["frame_id"])
                state.done_frames += "skipped" not in e
        return state

    def _referenced(self) -> set[str]:
        files: set[str] = set()
        for path in manifests(self.root):
            for e in read_manifest(path)[0]:
                files.update(o.get("file", "") for o in e.get("outputs", {}).values())
        return files

    def _clean(self, state: ResumeState) -> None:
        """Remove this shard's temporary files and data files no manifest line points at."""
        tag = f"{_TMP}r{self.shard.rank}of{self.shard.world}-"
        referenced = None
        seqs = [-1]
        for folder in (self.root, self.root / DATA_DIR, self.root / LABELS_DIR):
            if not folder.is_dir():
                continue
            paths = folder.rglob(".*") if folder.name == LABELS_DIR else folder.glob(".*")
            for p in paths:
                if tag in p.name and p.is_file():
                    p.unlink()
        for p in (self.root / DATA_DIR).iterdir():
            m = _DATA.match(p.name)
            if not m or (int(m.group(1)), int(m.group(2))) != (self.shard.rank, self.shard.world):
                continue
            seqs.append(int(m.group(3)))
            if referenced is None:
                referenced = self._referenced()
            if f"{DATA_DIR}/{p.name}" not in referenced:
                p.unlink()  # durable but its manifest lines never were: its frames run again
        state.next_seq = max(seqs) + 1

    def _delete_dataset(self) -> None:
        """Remove lsegrt's own files only (a user file in the folder stays)."""
        for name in os.listdir(self.root):
            p = self.root / name
            if p.is_file() and self._ours(name):
                p.unlink()
        for sub, pattern in ((DATA_DIR, _DATA), (LABELS_DIR, None)):
            folder = self.root / sub
            if not folder.is_dir():
                continue
            for p in sorted(folder.rglob("*"), reverse=True):
                if p.is_file() and (_TMP in p.name or (pattern.match(p.name) if pattern else p.suffix == ".png")):
                    p.unlink()
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
            if not any(folder.iterdir()):
                folder.rmdir()
