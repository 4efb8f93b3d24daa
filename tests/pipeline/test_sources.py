"""Frame sources: folders (recursive, glob), lists, samples, ids, sharding."""

from __future__ import annotations

import pytest

from lsegrt.errors import LsegError
from lsegrt.pipeline.sources import Shard, array_frames, check_frame_id, resolve_inputs

from .conftest import make_frames


def _ids(units):
    return [u.frame_id for u in units]


def test_folder_recursive_and_glob(tmp_path):
    make_frames(tmp_path / "in", n=5)
    (tmp_path / "in" / "notes.txt").write_text("not a frame")
    (tmp_path / "in" / "._f00.jpg").write_bytes(b"resource fork")
    with pytest.raises(LsegError, match="sub-folders need --recursive"):
        resolve_inputs([tmp_path / "in"])
    assert _ids(resolve_inputs([tmp_path / "in"], recursive=True)) == ["a/f00", "a/f02", "a/f04", "b/f01", "b/f03"]
    assert _ids(resolve_inputs([tmp_path / "in"], glob="*.png", recursive=True)) == ["a/f00", "b/f03"]
    assert _ids(resolve_inputs([tmp_path / "in"], glob="b/*")) == ["b/f01", "b/f03"]


def test_ids_unique_and_stable(tmp_path):
    from PIL import Image

    for rel in ("a/x.jpg", "b/x.jpg", "c/y.jpg", "c/y.png"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / rel)
    units = resolve_inputs([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "c", "sample:coffee"])
    assert _ids(units) == ["a/x", "b/x", "c/y.jpg", "c/y.png", "coffee"]
    assert [u.order for u in units] == list(range(5))
    # the same file twice (folder + file in it) is one frame
    assert len(resolve_inputs([tmp_path / "c", tmp_path / "c" / "y.png"])) == 2


def test_list_file(tmp_path):
    make_frames(tmp_path / "in", n=3, nested=False)
    lst = tmp_path / "in" / "list.txt"
    lst.write_text("# frames\nf02.png\n\nf01.jpg\nmissing.jpg\n")  # relative to the list's folder
    units = resolve_inputs([f"@{lst}"])
    assert _ids(units) == ["f02", "f01", "missing"]  # a missing listed file is skipped at decode time
    with pytest.raises(LsegError, match="list file not found"):
        resolve_inputs([f"@{tmp_path / 'nope.txt'}"])


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(LsegError, match="input not found"):
        resolve_inputs([tmp_path / "nope.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(LsegError, match="folder has no"):
        resolve_inputs([tmp_path / "empty"])
    with pytest.raises(LsegError, match="unknown sample"):
        resolve_inputs(["sample:nope"])


def test_output_folder_is_not_listed(tmp_path):
    make_frames(tmp_path / "in", n=2, nested=False)
    make_frames(tmp_path / "in" / "out" / "labels", n=2, nested=False)
    units = resolve_inputs([tmp_path / "in"], recursive=True, exclude=tmp_path / "in" / "out")
    assert _ids(units) == ["f00", "f01"]


def test_shards_partition_every_frame():
    for world in (1, 2, 3):
        owners = [[r for r in range(world) if Shard(r, world).owns_image(k)] for k in range(10)]
        assert all(len(o) == 1 for o in owners)
        video = [[r for r in range(world) if Shard(r, world).owns_video_frame(4, i)] for i in range(0, 300, 5)]
        assert all(len(o) == 1 for o in video)
        counts = [sum(o == [r] for o in video) for r in range(world)]
        assert min(counts) >= 60 // world // 2  # strided indices still spread over every shard


def test_array_ids():
    import numpy as np

    a = np.zeros((4, 4, 3), np.uint8)
    assert [f.frame_id for f in array_frames([a, a])] == ["frame-000000", "frame-000001"]
    assert [f.frame_id for f in array_frames([("s/1", a)])] == ["s/1"]
    for bad in ("../x", "/abs", "a//b", ""):
        with pytest.raises(LsegError, match="frame id"):
            check_frame_id(bad)
    with pytest.raises(LsegError, match="given twice"):
        list(array_frames([("x", a), ("x", a)]))
