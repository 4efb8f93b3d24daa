"""`lsegrt build`: bad sizes, paths and pairings are one line, exit 2, before any work; nothing written."""

from __future__ import annotations

import errno
import os

import pytest
import torch


def _files(root):
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _check(result, root, before, match):
    code, out, err = result
    assert code == 2, (out, err)
    assert err.startswith("lsegrt: error:") and err.count("\n") == 1 and "Traceback" not in err + out, err
    assert match in err, err
    assert _files(root) == before
    return err


def _trt_or_skip():
    from lsegrt.backends.tensorrt_build import import_tensorrt
    from lsegrt.errors import LsegError

    try:
        import_tensorrt()
    except LsegError:
        pytest.skip("neither tensorrt nor tensorrt_rtx is installed")


AOTI = ["build", "--backend", "aoti", "--variant", "rn_tiny", "--device", "cpu", "--precision", "fp32"]


@pytest.mark.parametrize("args, match", [
    (["--max-batch", "0"], "max batch 0: expected an integer from 1"),
    (["--max-batch", "-1"], "max batch -1"),
    (["--max-side", "100"], "max side 100: expected a multiple of 32"),
    (["--max-side", "0"], "max side 0"),
    (["--max-side", "99968"], "max side 99968"),
])
def test_nonsensical_aoti_sizes(tmp_path, run_cli, args, match):
    before = _files(tmp_path)
    _check(run_cli(*AOTI, *args, "--out", tmp_path / "m.pt2"), tmp_path, before, match)


@pytest.mark.parametrize("args, match", [
    (["--max", "1x99968x1024"], "at most batch 1024 and side 8192"),
    (["--min", "0x256x256"], "positive integers"),
    (["--workspace", "0"], "--workspace 0: expected a positive number"),
])
def test_nonsensical_tensorrt_sizes(tmp_path, run_cli, args, match):
    _trt_or_skip()
    before = _files(tmp_path)
    _check(run_cli("build", "--backend", "tensorrt", "--variant", "rn_tiny", *args, "--out", tmp_path / "m.engine"),
           tmp_path, before, match)


def test_missing_onnx(tmp_path, run_cli):
    _trt_or_skip()
    before = _files(tmp_path)
    _check(run_cli("build", "--backend", "tensorrt", "--onnx", tmp_path / "nope.onnx", "--out", tmp_path / "m.engine"),
           tmp_path, before, "ONNX file not found")


def test_output_is_a_folder(tmp_path, run_cli):
    (tmp_path / "m.pt2").mkdir()
    before = _files(tmp_path)
    _check(run_cli(*AOTI, "--out", tmp_path / "m.pt2"), tmp_path, before, "is a folder")


def test_output_folder_missing(tmp_path, run_cli):
    before = _files(tmp_path)
    _check(run_cli(*AOTI, "--out", tmp_path / "no" / "m.pt2"), tmp_path, before, "does not exist")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, run_cli):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        before = _files(tmp_path)
        _check(run_cli(*AOTI, "--out", ro / "m.pt2"), tmp_path, before, "permission denied")
    finally:
        ro.chmod(0o755)


def test_os_error_while_writing_is_one_line(tmp_path, run_cli, monkeypatch):
    """A folder that turns read-only (or a full disk) during the build: one line, exit 2, nothing left."""
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    before = _files(tmp_path)
    err = _check(run_cli(*AOTI, "--max-side", "64", "--out", tmp_path / "m.pt2"), tmp_path, before,
                 "Read-only file system")
    assert "internal error" not in err


def test_output_equal_to_an_input_is_refused(tmp_path, run_cli):
    from lsegrt.synthetic import official_state_dict

    sd = {k.removeprefix("net."): v for k, v in official_state_dict("rn_tiny").items()}
    torch.save(sd, tmp_path / "model.pt2")  # a checkpoint under the output's suffix
    before = _files(tmp_path)
    _check(run_cli("build", "--backend", "aoti", "--checkpoint", tmp_path / "model.pt2", "--device", "cpu",
                   "--out", tmp_path / "model.pt2"), tmp_path, before, "is the input")


def test_onnx_from_another_checkpoint_is_refused(tmp_path, run_cli):
    """`build --checkpoint A --onnx B` where B was exported from another checkpoint: today A's hash would be
    written into the engine's sidecar; it must be refused, naming both files."""
    _trt_or_skip()
    from lsegrt.synthetic import official_state_dict, save_lightning_checkpoint

    a = save_lightning_checkpoint(tmp_path / "a.ckpt", official_state_dict("rn_tiny", seed=0))
    b = save_lightning_checkpoint(tmp_path / "b.ckpt", official_state_dict("rn_tiny", seed=1))
    code, _, err = run_cli("export", "--checkpoint", b, "--trace-size", "64x64", "--no-verify",
                           "--out", tmp_path / "b.onnx")
    assert code == 0, err
    before = _files(tmp_path)
    shape = ["--min", "1x64x64", "--opt", "1x64x64", "--max", "1x64x64", "--precision", "fp32"]
    err = _check(run_cli("build", "--backend", "tensorrt", "--checkpoint", a, "--onnx", tmp_path / "b.onnx", *shape,
                         "--out", tmp_path / "b.engine"), tmp_path, before, "b.onnx was exported from")
    assert str(b) in err and str(a) in err
    code, out, err = run_cli("build", "--backend", "tensorrt", "--checkpoint", b, "--onnx", tmp_path / "b.onnx",
                             *shape, "--out", tmp_path / "b.engine")
    assert code == 0, err
    from lsegrt.sidecar import read_sidecar

    payload = read_sidecar(tmp_path / "b.engine")
    assert payload["info"]["checkpoint_file"] == str(b)
    assert payload["request"]["checkpoint_sha256"] == read_sidecar(tmp_path / "b.onnx")["request"]["checkpoint_sha256"]
