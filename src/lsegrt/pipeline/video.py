"""Video files as a frame source: probe, choose frames (stride or target fps), stream them as RGB.

Decoding uses PyAV (FFmpeg bindings that install as wheels from PyPI). Frames are streamed one at a
time, so memory does not grow with the length of the video.

Frame indices are positions in the *decoded* stream, counted from 0: the same file always gives the
same index for the same picture, which is what makes resuming (``skip=``) and sharding by frame
reference safe.

Choosing frames at a target rate (``fps=``) is done on presentation timestamps, relative to the first
decoded frame: time ``t`` falls in slot ``floor((t + 1/(8F)) * fps)``, where ``F`` is the stream's
nominal rate, and the *first* frame of every slot is kept. The eighth of a frame interval absorbs
timestamp rounding (Matroska stores milliseconds: frame 8 of a 24 fps clip sits at 0.333 s, not
1/3 s). For a constant-rate video that keeps frame ``i`` exactly when ``floor((i + 1/8) * fps / F)`` is
larger than for frame ``i - 1`` (frame 0 is always kept); when ``fps >= F`` every frame is kept.
:func:`select_indices` evaluates that rule from the nominal rate, for counting frames ahead of time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import LsegError, require

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")

# Fraction of a source frame interval added to a timestamp before slotting it (see module docstring).
_SLOT_SLACK = 0.125
# A damaged stream yields one decode error per damaged packet; this many in a row means the rest of
# the file is not video any more, and it is better to stop with an error than to grind through it.
_MAX_CONSECUTIVE_ERRORS = 64


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream.

    ``width``/``height`` are those of the yielded (upright) frames; ``frames`` is the container's frame count (``None`` when the container does not record one, e.g.
    some .webm/.mkv files); ``fps`` the nominal frame rate; ``duration`` seconds (``None`` if unknown).
    """

    frames: int | None
    fps: float
    width: int
    height: int
    duration: float | None


def _av():
    return require("av", "reading video files", "av")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _open(path: str | os.PathLike):
    av = _av()
    p = Path(path)
    if not p.exists():
        raise LsegError(f"cannot read video {path}: no such file")
    if p.is_dir():
        raise LsegError(f"cannot read video {path}: is a folder")
    try:
        container = av.open(str(p), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise LsegError(f"cannot read video {path}: {_one_line(exc)}") from exc
    if not container.streams.video:
        container.close()
        raise LsegError(f"cannot read video {path}: it has no video stream")
    return container


def _nominal_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    return 0.0


def _quarter_turns(frame) -> int:
    # The display matrix (phone videos shot in portrait) as counterclockwise quarter turns, which is how
    # players show the frame; other angles do not occur in practice and are left alone, like flips.
    try:
        angle = frame.rotation
    except (AttributeError, ValueError):
        return 0
    turns, rest = divmod(round(angle), 90)
    return turns % 4 if rest == 0 else 0


def _upright(frame) -> np.ndarray:
    """Decoded frame → ``(H, W, 3) uint8`` RGB as a player shows it (display rotation applied)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's header and first frame → :class:`VideoInfo`.

    ``width``/``height`` are those of the frames :func:`read_video_frames` yields, i.e. after the
    display rotation. A missing, unreadable or frameless file raises a one-line :class:`LsegError`.
    """
    av = _av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise LsegError(f"cannot read video {path}: {_one_line(exc)}") from exc
        if first is None:
            raise LsegError(f"cannot read video {path}: no frame could be decoded")
        width, height = int(first.width), int(first.height)
        if _quarter_turns(first) % 2:
            width, height = height, width
        fps = _nominal_fps(stream)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        frames = int(stream.frames) if stream.frames and stream.frames > 0 else None
        return VideoInfo(frames=frames, fps=fps, width=width, height=height, duration=duration)
    finally:
        container.close()


def _check_sampling(stride: int, fps: float | None) -> None:
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise LsegError(f"video stride must be a whole number >= 1, got {stride!r}")
    if fps is not None:
        if stride != 1:
            raise LsegError("give a video frame stride or a target fps, not both")
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise LsegError(f"video fps must be a positive number, got {fps!r}")


def _slot(t: float, fps: float, source_fps: float) -> int:
    slack = _SLOT_SLACK / source_fps if source_fps > 0 else 1e-6
    return math.floor((t + slack) * fps)


def select_indices(info: VideoInfo, stride: int = 1, fps: float | None = None) -> list[int] | None:
    """Frame indices :func:`read_video_frames` will yield, from the header alone.

    Exact for constant-rate videos whose container records a frame count; ``None`` when the count is
    unknown. For variable-rate videos with ``fps=`` it is an estimate (the reader uses the real
    timestamps), good for progress totals only.
    """
    _check_sampling(stride, fps)
    if info.frames is None:
        return None
    if fps is None:
        return list(range(0, info.frames, stride))
    if info.fps <= 0 or fps >= info.fps:
        return list(range(info.frames))
    kept, last = [], None
    for i in range(info.frames):
        s = _slot(i / info.fps, fps, info.fps)
        if s != last:
            kept.append(i)
            last = s
    return kept


def read_video_frames(
    path: str | os.PathLike,
    *,
    stride: int = 1,
    fps: float | None = None,
    skip: frozenset[int] | set[int] = frozenset(),
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(index, (H, W, 3) uint8 RGB)`` for the chosen frames of a video.

    ``stride=k`` keeps frames 0, k, 2k, …; ``fps=r`` keeps the first frame of every ``1/r`` s slot of
    presentation time (see the module docstring); ``skip`` holds indices already done (resume): they are
    decoded, since later frames depend on them, but neither converted nor yielded.

    A damaged packet is passed over and decoding continues with the next one (indices count the frames
    actually decoded, so the same file always gives the same numbering); a file that cannot be opened
    or stops being decodable raises a one-line :class:`LsegError`.
    """
    _check_sampling(stride, fps)
    av = _av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        # Frame + slice threads inside FFmpeg: decoding then runs on several cores without Python.
        stream.thread_type = "AUTO"
        nominal = _nominal_fps(stream)
        index = -1
        t0 = None
        last_slot = None
        errors = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                raise LsegError(f"cannot read video {path}: after frame {index}: {_one_line(exc)}") from exc
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                errors += 1
                if errors >= _MAX_CONSECUTIVE_ERRORS:
                    raise LsegError(
                        f"cannot read video {path}: {errors} damaged packets in a row after frame {index} "
                        f"({_one_line(exc)})"
                    ) from exc
                continue
            errors = 0
            for frame in frames:
                index += 1
                if fps is not None:
                    t = frame.time
                    if t is None:
                        t = index / nominal if nominal > 0 else float(index)
                    if t0 is None:
                        t0 = t
                    slot = _slot(t - t0, fps, nominal)
                    if last_slot is not None and slot <= last_slot:
                        continue
                    last_slot = slot
                elif index % stride:
                    continue
                if index in skip:
                    continue
                yield index, _upright(frame)
    finally:
        container.close()
