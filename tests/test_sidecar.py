"""Sidecars: bound to the engine's bytes, versioned, written last; one writer per engine path at a time."""

from __future__ import annotations

import json
import threading
import time

import pytest

from lsegrt.errors import LsegError
from lsegrt.sidecar import (SIDECAR_VERSION, check_engine_output, check_sidecar, engine_lock, publish, read_sidecar,
                            sidecar_path, staging, write_sidecar)

REQUEST = {"backend": "onnx", "precision": "fp32", "checkpoint_sha256": "ab" * 32, "checkpoint_name": "m"}


def test_published_engine_is_bound_to_its_bytes(tmp_path, cache_dir):
    out = tmp_path / "out"
    out.mkdir()
    engine = out / "m.onnx"
    with staging(engine) as stage:
        (stage / "m.onnx").write_bytes(b"graph")
        (stage / "d").write_bytes(b"weights")
        publish(engine, stage / "m.onnx", REQUEST, {"checkpoint_file": "/ckpt/m.ckpt"}, data_files={"m.onnx.data": stage / "d"})
    assert sorted(p.name for p in out.iterdir()) == ["m.onnx", "m.onnx.data", "m.onnx.json"]  # staging gone
    payload = check_sidecar(engine, {"precision": "fp32"})
    assert payload["sidecar_version"] == SIDECAR_VERSION and payload["contents"]["engine"]["bytes"] == 5
    (out / "m.onnx.data").write_bytes(b"WEIGHTS")
    with pytest.raises(LsegError, match="m.onnx.data is not the file its sidecar m.onnx.json describes"):
        check_sidecar(engine, {"precision": "fp32"})


def test_checkpoint_refusal_names_both_files(tmp_path, cache_dir):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    write_sidecar(engine, REQUEST, {"checkpoint_file": "/data/demo_e200.ckpt"})
    with pytest.raises(LsegError, match=r"built from /data/demo_e200.ckpt \(weights sha256 abababababab…\), "
                                        r"not from other.safetensors \(weights sha256 cdcdcdcdcdcd…\)"):
        check_sidecar(engine, {"checkpoint_sha256": "cd" * 32}, checkpoint="other.safetensors")


@pytest.mark.parametrize("edit, match", [
    (lambda p: p.pop("contents"), "does not record the engine's contents"),
    (lambda p: p["contents"]["data_files"].update({"../../etc/passwd": {"sha256": "0", "bytes": 1}}),
     "does not record the engine's contents"),
    (lambda p: p.update(sidecar_version=1), "has version 1, this lsegrt writes"),
    (lambda p: p.pop("request"), "not a valid lsegrt sidecar"),
])
def test_stale_or_forged_sidecars_are_refused(tmp_path, cache_dir, edit, match):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    write_sidecar(engine, REQUEST, {})
    payload = json.loads(sidecar_path(engine).read_text())
    edit(payload)
    sidecar_path(engine).write_text(json.dumps(payload))
    with pytest.raises(LsegError, match=match):
        read_sidecar(engine)


def test_output_checks(tmp_path):
    (tmp_path / "dir.onnx").mkdir()
    (tmp_path / "in.onnx").write_bytes(b"x")
    with pytest.raises(LsegError, match="is a folder"):
        check_engine_output(tmp_path / "dir.onnx")
    with pytest.raises(LsegError, match="must end in .pt2"):
        check_engine_output(tmp_path / "x.onnx", (".pt2",))
    with pytest.raises(LsegError, match="is the input"):
        check_engine_output(tmp_path / "." / "in.onnx", inputs=(tmp_path / "in.onnx",))
    (tmp_path / "in.json").touch()
    with pytest.raises(LsegError, match="is the input"):  # nor the input's sidecar
        check_engine_output(tmp_path / "in", inputs=(tmp_path / "in.json",))
    (tmp_path / "b.compiled.cpp-kernels.zip").touch()
    with pytest.raises(LsegError, match="is the input"):  # nor a data file written beside the engine
        check_engine_output(tmp_path / "b.compiled", inputs=(tmp_path / "b.compiled.cpp-kernels.zip",),
                            data_suffixes=(".cpp-kernels.zip",))


def test_writers_of_one_path_take_turns(tmp_path, cache_dir):
    events = []

    def writer(name):
        with engine_lock(tmp_path / "m.engine"):
            events.append(f"{name} in")
            time.sleep(0.2)
            with engine_lock(tmp_path / "m.engine"):  # re-entrant in the holding thread
                events.append(f"{name} out")

    threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
