"""Where frames come from: image files, folders, lists of paths, bundled samples, videos, arrays.

A run's inputs become a list of :class:`Unit` (one image, or one video) in a fixed order, each frame
with a stable, unique **frame id**: the path relative to the deepest folder that holds every input,
without its suffix (``a/x``, ``b/x``), ``#<index>`` appended for a video frame (``clip#000012``), the
sample's name for ``sample:NAME``, ``frame-000003`` for arrays (or the id given with the array). Two
files that would share an id keep their suffix (``x.jpg``, ``x.png``). Listing reads names only;
pixels are read later, in the decode workers, one frame at a time.

Sharding is a pure function of the unit list: image ``k`` goes to shard ``k mod n``, frame ``i`` of
the video at position ``k`` to shard ``(k + mix(i)) mod n`` (a fixed integer hash), so every launcher
(``--shard``, torchrun, SLURM arrays) splits the same way, and a video is spread over all shards.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import LsegError
from ..images import IMAGE_SUFFIXES, SAMPLE_PREFIX, SAMPLES

_MASK = (1 << 64) - 1


def mix(i: int) -> int:
    """splitmix64 finalizer: spreads consecutive or strided frame indices evenly over shards."""
    z = (i + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@dataclass(frozen=True)
class Shard:
    """This process's part of the run: ``rank`` of ``world`` (0 of 1 when not sharded)."""

    rank: int = 0
    world: int = 1

    def __str__(self) -> str:
        return f"{self.rank}/{self.world}"

    def owns_image(self, order: int) -> bool:
        return order % self.world == self.rank

    def owns_video_frame(self, order: int, index: int) -> bool:
        return (order + mix(index)) % self.world == self.rank


@dataclass
class Unit:
    """One decode job: an image file, a bundled sample, or a video (all its chosen frames).

    ``frame_id`` is the image's id or the video's id prefix; ``order`` its position in the run.
    """

    kind: str  # "image" | "sample" | "video"
    path: str
    frame_id: str
    order: int
    skip: frozenset[int] = field(default_factory=frozenset)  # video frame indices already done
    only: frozenset[int] | None = None  # video frame indices to read, all others passed over (a sample)

    def video_frame_id(self, index: int) -> str:
        return f"{self.frame_id}#{index:06d}"


def video_suffixes() -> tuple[str, ...]:
    from .video import VIDEO_SUFFIXES

    return VIDEO_SUFFIXES


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in video_suffixes()


def _hidden(name: str) -> bool:
    # Dot-files include macOS "._x.jpg" resource forks, which carry an image suffix but no image.
    return name.startswith(".")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _matches(rel: str, pattern: str) -> bool:
    """fnmatch on the relative path ('*' crosses '/'); a leading '**/' also matches at the top."""
    if fnmatch.fnmatch(rel, pattern) or PurePosixPath(rel).match(pattern):
        return True
    return pattern.startswith("**/") and _matches(rel, pattern[3:])


def _walk(folder: Path, recursive: bool, pattern: str | None, exclude: Path | None) -> list[Path]:
    # A pattern naming a sub-folder ("cam0/*.jpg") descends into it without --recursive.
    descend = recursive or (pattern is not None and "/" in pattern)
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(folder):
        rootp = Path(root)
        dirs[:] = [d for d in dirs if descend and not _hidden(d)
                   and not (exclude is not None and (rootp / d).resolve() == exclude)]
        for name in files:
            p = rootp / name
            if _hidden(name) or not (_is_image(p) or _is_video(p)):
                continue
            rel = p.relative_to(folder).as_posix()
            if pattern is not None and not _matches(rel, pattern):
                continue
            found.append((rel, p))
    return [p for _, p in sorted(found)]


def _read_list(path: Path) -> list[Path]:
    """A text file of paths, one per line (``#`` comments and blank lines ignored); relative paths
    are relative to the list file's folder."""
    if not path.is_file():
        raise LsegError(f"list file not found: {path}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LsegError(f"cannot read list file {path}: {exc}") from None
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line)
            out.append(p if p.is_absolute() else path.parent / p)
    return out


def resolve_inputs(
    inputs: Iterable[str | os.PathLike], *, glob: str | None = None, recursive: bool = False,
    exclude: str | os.PathLike | None = None,
) -> list[Unit]:
    """Expand input arguments → units in a fixed order, with unique frame ids (see module docstring).

    Each input is an image or video file, a folder (its images and videos, sorted; ``recursive``:
    sub-folders too; ``glob``: only paths matching the pattern, relative to the folder, e.g.
    ``cam0/*.jpg`` or ``**/*.png``), ``@LIST`` (a text file of paths) or ``sample:NAME``. A missing
    input or an empty folder is a one-line :class:`LsegError`; files named in a list that turn out
    unreadable are skipped later, with the reason recorded. ``exclude`` (the output folder) is never
    listed.
    """
    exclude_p = Path(exclude).resolve() if exclude is not None else None
    entries: list[tuple[str, Any, Path | None]] = []  # (kind, value, root) in order
    roots: list[Path] = []
    for raw in inputs:
        text = str(raw)
        if text.startswith(SAMPLE_PREFIX):
            name = text.removeprefix(SAMPLE_PREFIX)
            if name not in SAMPLES:
                raise LsegError(f"unknown sample image {name!r}; available: {', '.join(sorted(SAMPLES))}")
            entries.append(("sample", name, None))
            continue
        if text.startswith("@"):
            for p in _read_list(Path(text[1:])):
                entries.append(("file", p, p.resolve().parent))
                roots.append(p.resolve().parent)
            continue
        p = Path(text)
        if p.is_dir():
            files = _walk(p, recursive, glob, exclude_p)
            if not files:
                what = f"matching {glob!r}" if glob else "images or videos"
                raise LsegError(f"folder has no {what}: {p}" + ("" if recursive or glob else
                                                                 " (sub-folders need --recursive)"))
            root = p.resolve()
            entries.extend(("file", f, root) for f in files)
            roots.append(root)
        elif p.exists():
            entries.append(("file", p, p.resolve().parent))
            roots.append(p.resolve().parent)
        else:
            raise LsegError(f"input not found: {text}")
    if not entries:
        raise LsegError("no inputs given")
    base = Path(os.path.commonpath([str(r) for r in roots])) if roots else None

    units: list[Unit] = []
    seen_paths: set[Path] = set()
    for kind, value, _ in entries:
        if kind == "sample":
            units.append(Unit("sample", SAMPLE_PREFIX + value, value, len(units)))
            continue
        resolved = value.resolve()
        if resolved in seen_paths:  # the same file named twice (a folder and a file in it)
            continue
        seen_paths.add(resolved)
        rel = resolved.relative_to(base).as_posix()
        kind = "video" if _is_video(value) else "image"
        units.append(Unit(kind, str(value), rel, len(units)))
    _unique_ids(units)
    return units


def _unique_ids(units: list[Unit]) -> None:
    """Ids without suffix, except where two files would share one (x.jpg and x.png keep theirs)."""
    def stem(u: Unit) -> str:
        if u.kind == "sample":
            return u.frame_id
        p = PurePosixPath(u.frame_id)
        return str(p.with_suffix("")) if p.suffix else str(p)

    counts: dict[str, int] = {}
    for u in units:
        counts[stem(u)] = counts.get(stem(u), 0) + 1
    taken: set[str] = set()
    for u in units:
        fid = stem(u) if counts[stem(u)] == 1 else u.frame_id
        k = 2
        base = fid
        while fid in taken:  # a sample named like a file
            fid = f"{base}~{k}"
            k += 1
        taken.add(fid)
        u.frame_id = fid


def check_frame_id(frame_id: str) -> str:
    """A frame id is a relative POSIX path without '..', empty parts or a leading '/' (it names files)."""
    parts = frame_id.split("/")
    if (not frame_id or frame_id.startswith("/") or any(p in ("", ".", "..") for p in parts)
            or "\0" in frame_id or "\\" in frame_id):
        raise LsegError(f"frame id {frame_id!r}: expected a relative path like 'scene/0001' "
                        "(no '..', no empty parts, no leading '/')")
    return frame_id


def image_size(unit: Unit) -> tuple[int, int] | None:
    """(H, W) of a unit's frames from the file header (no decoding); None if it cannot be read."""
    try:
        if unit.kind == "sample":
            from ..images import sample_image

            return sample_image(unit.path.removeprefix(SAMPLE_PREFIX)).shape[:2]
        if unit.kind == "video":
            from .video import probe_video

            info = probe_video(unit.path)
            return info.height, info.width
        from PIL import Image

        with Image.open(unit.path) as img:
            w, h = img.size
            # EXIF orientations 5-8 are quarter turns: load_image returns the transposed size.
            return (w, h) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (h, w)
    except Exception:  # an unreadable first frame only costs the size estimate
        return None


def count_video_frames(unit: Unit, stride: int, fps: float | None) -> int | None:
    """Frames a video will yield (for progress totals), from its header; None if unknown."""
    from .video import probe_video, select_indices

    try:
        chosen = select_indices(probe_video(unit.path), stride, fps)
    except LsegError:
        return None
    return None if chosen is None else len(chosen)


@dataclass(frozen=True)
class ArrayFrame:
    """A frame handed in from Python: its id, position and pixels."""

    frame_id: str
    order: int
    array: np.ndarray


def array_frames(frames: Iterable[Any]) -> Iterator[ArrayFrame]:
    """An iterable of ``(H, W, 3) uint8`` arrays (or ``(frame_id, array)`` pairs) → :class:`ArrayFrame`,
    lazily: nothing is read ahead of what the pipeline asks for."""
    from ..images import as_rgb_array

    seen: set[str] = set()
    for k, item in enumerate(frames):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            fid, array = check_frame_id(item[0]), item[1]
        else:
            fid, array = f"frame-{k:06d}", item
        if fid in seen:
            raise LsegError(f"frame id {fid!r} given twice")
        seen.add(fid)
        yield ArrayFrame(fid, k, as_rgb_array(array))


def spread_sample(units: list[Unit], n: int, video_stride: int = 1, video_fps: float | None = None) -> list[Unit]:
    """Units covering ``n`` frames spread evenly over all of ``units`` (videos: chosen frames via
    ``Unit.only``); a pure function of the unit list, so every shard picks the same sample."""
    from .video import probe_video, select_indices

    counts, chosen_idx = [], []
    for u in units:
        if u.kind != "video":
            counts.append(1)
            chosen_idx.append(None)
            continue
        try:
            idx = select_indices(probe_video(u.path), video_stride, video_fps)
        except LsegError:
            idx = None
        counts.append(len(idx) if idx is not None else n)
        chosen_idx.append(idx)
    total = sum(counts)
    k = min(n, total)
    picks = sorted({round(i * (total - 1) / max(k - 1, 1)) for i in range(k)})
    out, start, p = [], 0, 0
    for u, c, idx in zip(units, counts, chosen_idx):
        mine = []
        while p < len(picks) and picks[p] < start + c:
            mine.append(picks[p] - start)
            p += 1
        start += c
        if not mine:
            continue
        if u.kind != "video":
            out.append(u)
        else:
            indices = [idx[m] if idx is not None else m * video_stride for m in mine]
            out.append(Unit(u.kind, u.path, u.frame_id, u.order, only=frozenset(indices)))
    return out
