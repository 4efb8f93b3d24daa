"""Video frames through extract: ids, stride, sharding across shards, resume."""

from __future__ import annotations

import numpy as np
import pytest

import lsegrt

pytest.importorskip("av")

from .test_video import frame_pixels, write_video  # noqa: E402


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "in" / "clip.mkv"
    path.parent.mkdir()
    write_video(path, "ffv1", "bgr0", n=12, options={"level": "3"}, gop=1)  # lossless
    return path


def _run(inp, out, model, **kw):
    return lsegrt.extract([inp], out, checkpoint=model, size=64, dtype="fp32", workers=0, batch_size=2,
                          progress=False, say=lambda *_: None, **kw)


def test_video_frames_by_stride_and_shards(tmp_path, clip, tiny_vit):
    one = _run(clip, tmp_path / "one", tiny_vit, video_stride=3)
    ds = lsegrt.open_features(tmp_path / "one")
    assert one.written == 4 and ds.ids == ["clip#000000", "clip#000003", "clip#000006", "clip#000009"]
    assert [e["frame_index"] for e in ds.frames] == [0, 3, 6, 9]
    ref = tiny_vit.encode_image(tiny_vit.preprocess(frame_pixels(6), 64))[0].numpy()
    assert np.abs(ds["clip#000006"]["features"] - ref).max() < 1e-5
    # two shards split the one video between them and together equal the single run
    a = _run(clip, tmp_path / "two", tiny_vit, video_stride=3, shard="0/2")
    b = _run(clip, tmp_path / "two", tiny_vit, video_stride=3, shard="1/2")
    assert a.written + b.written == 4 and a.written and b.written
    two = lsegrt.open_features(tmp_path / "two")
    assert two.ids == ds.ids and all(np.array_equal(two[i]["features"], ds[i]["features"]) for i in ds.ids)


def test_video_resume_reads_only_the_rest(tmp_path, clip, tiny_vit):
    out = tmp_path / "ds"
    _run(clip, out, tiny_vit, video_stride=4)
    manifest = out / "manifest-0-of-1.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:1]) + "\n" + lines[1][:10])  # as if killed: one line and a torn one
    summary = _run(clip, out, tiny_vit, video_stride=4, resume=True)
    assert summary.already_done == 1 and summary.written == 2
    assert lsegrt.open_features(out).ids == ["clip#000000", "clip#000004", "clip#000008"]
