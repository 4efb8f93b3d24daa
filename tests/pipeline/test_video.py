"""Video source: small videos written here with PyAV, read back by lsegrt.pipeline.video."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from lsegrt.errors import LsegError  # noqa: E402
from lsegrt.pipeline.video import (  # noqa: E402
    VIDEO_SUFFIXES,
    probe_video,
    read_video_frames,
    select_indices,
)

N, H, W, FPS = 24, 64, 96, 24


def frame_pixels(k: int) -> np.ndarray:
    """A picture per frame that differs from every other one: gradients shifted by k."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([(x * 2 + k * 9) % 256, (y * 3 + k * 5) % 256, ((x + y) + k * 17) % 256], axis=-1)
    return img.astype(np.uint8)


def write_video(path, codec: str, pix_fmt: str, n: int = N, fps: int = FPS, options=None, gop=None) -> None:
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(frame_pixels(k), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def lossless(tmp_path_factory):
    # FFV1 with 8-bit RGB storage (bgr0) round-trips pixels exactly; version 3 with slice CRCs and
    # every frame a keyframe, so damage to one frame stays in that frame.
    path = tmp_path_factory.mktemp("video") / "clip.mkv"
    write_video(path, "ffv1", "bgr0", options={"level": "3", "slicecrc": "1"}, gop=1)
    return path


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, "mpeg4", "yuv420p")
    return path


def test_suffixes():
    assert ".mp4" in VIDEO_SUFFIXES and ".mkv" in VIDEO_SUFFIXES and all(s == s.lower() for s in VIDEO_SUFFIXES)


def test_probe(mp4, lossless):
    info = probe_video(mp4)
    assert (info.frames, info.width, info.height) == (N, W, H)
    assert info.fps == pytest.approx(FPS)
    assert info.duration == pytest.approx(N / FPS, abs=0.05)
    # Matroska records no frame count; the rest must still be there.
    info = probe_video(lossless)
    assert (info.width, info.height) == (W, H) and info.fps == pytest.approx(FPS)
    assert info.frames in (None, N)


def test_all_frames_exact(lossless):
    got = list(read_video_frames(lossless))
    assert [i for i, _ in got] == list(range(N))
    for i, img in got:
        assert img.dtype == np.uint8 and img.shape == (H, W, 3) and img.flags.c_contiguous
        np.testing.assert_array_equal(img, frame_pixels(i))


def test_lossy_codec_close(mp4):
    got = list(read_video_frames(mp4))
    assert [i for i, _ in got] == list(range(N))
    for i, img in got:
        err = np.abs(img.astype(np.int16) - frame_pixels(i).astype(np.int16))
        # yuv420p + mpeg4: chroma subsampling and quantisation, but the frame is the right one.
        assert err.mean() < 12, (i, err.mean())
        if i:
            other = np.abs(img.astype(np.int16) - frame_pixels(i - 1).astype(np.int16)).mean()
            assert err.mean() < other


def test_stride(lossless):
    got = list(read_video_frames(lossless, stride=5))
    assert [i for i, _ in got] == [0, 5, 10, 15, 20]
    for i, img in got:
        np.testing.assert_array_equal(img, frame_pixels(i))


@pytest.mark.parametrize("target, expected", [
    (6, [0, 4, 8, 12, 16, 20]),
    (8, [0, 3, 6, 9, 12, 15, 18, 21]),
    (10, [0, 3, 5, 8, 10, 12, 15, 17, 20, 22]),  # first frame of every 0.1 s slot
    (24, list(range(N))),
    (60, list(range(N))),
])
def test_fps_sampling(mp4, lossless, target, expected):
    for path in (mp4, lossless):
        got = [i for i, _ in read_video_frames(path, fps=target)]
        assert got == expected, (path.suffix, target)
    assert select_indices(probe_video(mp4), fps=target) == expected


def test_select_indices(mp4, lossless):
    info = probe_video(mp4)
    assert select_indices(info) == list(range(N))
    assert select_indices(info, stride=7) == [0, 7, 14, 21]
    if probe_video(lossless).frames is None:
        assert select_indices(probe_video(lossless), stride=2) is None


def test_skip_resumes(lossless):
    done = frozenset({0, 2, 4, 5, 23})
    got = list(read_video_frames(lossless, skip=done))
    assert [i for i, _ in got] == [i for i in range(N) if i not in done]
    for i, img in got:
        np.testing.assert_array_equal(img, frame_pixels(i))
    # skip works with sampling too: indices stay those of the full decode.
    assert [i for i, _ in read_video_frames(lossless, stride=4, skip={8})] == [0, 4, 12, 16, 20]


def test_bad_arguments(lossless):
    for kwargs in ({"stride": 0}, {"stride": 1.5}, {"fps": 0}, {"fps": float("nan")}, {"stride": 2, "fps": 5}):
        with pytest.raises(LsegError):
            next(read_video_frames(lossless, **kwargs))


def one_line_error(fn) -> str:
    with pytest.raises(LsegError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_missing_and_not_video(tmp_path):
    assert "no such file" in one_line_error(lambda: probe_video(tmp_path / "nope.mp4"))
    assert "folder" in one_line_error(lambda: probe_video(tmp_path))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert "junk.mp4" in one_line_error(lambda: probe_video(junk))
    assert "junk.mp4" in one_line_error(lambda: list(read_video_frames(junk)))
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    one_line_error(lambda: probe_video(empty))


def test_damaged_frame_mid_stream(lossless, tmp_path):
    """Garbage inside one frame's data: every frame still comes, and all but the damaged one exactly."""
    data = bytearray(lossless.read_bytes())
    # The middle of the file is some frame's payload, far from the Matroska header and cues.
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    got = list(read_video_frames(damaged))
    assert [i for i, _ in got] == list(range(N))
    bad = [i for i, img in got if not np.array_equal(img, frame_pixels(i))]
    assert len(bad) == 1 and 0 < bad[0] < N - 1


class _Deadline(Exception):
    pass


@pytest.mark.parametrize("codec, suffix", [("mpeg4", ".mp4"), ("libx264", ".mp4"), ("mpeg4", ".mkv")])
def test_random_damage_never_hangs(tmp_path, codec, suffix):
    """Random garbage anywhere in the stream: frames or a one-line LsegError, within seconds."""
    import signal

    clean = tmp_path / f"clean{suffix}"
    try:
        write_video(clean, codec, "yuv420p")
    except av.FFmpegError:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    data = clean.read_bytes()
    rng = np.random.default_rng(0)

    def deadline(*_):
        raise _Deadline

    old = signal.signal(signal.SIGALRM, deadline)
    try:
        for trial in range(6):
            damaged = bytearray(data)
            at = int(len(data) * rng.uniform(0.1, 0.9))
            damaged[at : at + 100] = rng.integers(0, 256, 100, dtype=np.uint8).tobytes()
            path = tmp_path / f"damaged{trial}{suffix}"
            path.write_bytes(bytes(damaged))
            signal.alarm(20)
            try:
                got = list(read_video_frames(path))
            except LsegError as exc:
                assert "\n" not in str(exc)
            else:
                assert [i for i, _ in got] == list(range(len(got)))
                assert all(img.shape == (H, W, 3) for _, img in got)
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)


def test_truncated_file(tmp_path):
    """A Matroska file cut short: the frames before the cut come, then the stream ends (or one-line error)."""
    clean = tmp_path / "clip.mkv"
    write_video(clean, "mpeg4", "yuv420p")
    data = clean.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    try:
        got = list(read_video_frames(cut))
    except LsegError as exc:
        assert "\n" not in str(exc)
    else:
        assert 0 < len(got) < N


def test_variable_rate_by_timestamps(tmp_path):
    """fps sampling follows real timestamps, not the nominal rate: a 4-frame burst then a gap."""
    path = tmp_path / "vfr.mkv"
    times = [0.0, 0.01, 0.02, 0.03, 0.5, 1.0, 1.01]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("ffv1", rate=100)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        stream.codec_context.time_base = Fraction(1, 100)
        for k, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_pixels(k), format="rgb24")
            frame.pts, frame.time_base = round(t * 100), Fraction(1, 100)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert [i for i, _ in read_video_frames(path, fps=4)] == [0, 4, 5]


@pytest.mark.parametrize("degrees, turns", [(90, 1), (-90, 3), (180, 2)])
def test_display_rotation_applied(tmp_path, degrees, turns):
    """Phone videos store landscape frames plus a display rotation; frames come out as players show them."""
    path = tmp_path / f"rot{degrees}.mp4"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.bit_rate = 4_000_000
        stream.set_display_rotation(degrees)
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame_pixels(0), format="rgb24")):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    # FFmpeg's convention (av_display_rotation_get): the angle the display turns the frame counterclockwise.
    expected = np.rot90(frame_pixels(0), turns)
    info = probe_video(path)
    assert (info.height, info.width) == expected.shape[:2]
    (_, img), = read_video_frames(path)
    assert img.shape == expected.shape
    assert np.abs(img.astype(np.int16) - expected.astype(np.int16)).mean() < 12
