"""ONNX export + ONNX Runtime parity (tiny configs), sidecars and the cache's refusal to reuse."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import lsegrt
from lsegrt.errors import LsegError

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("variant", ["vit_tiny", "rn_tiny"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_export_matches_pytorch_at_other_sizes_and_batch_2(tmp_path, variant, precision, tiny_vit, tiny_rn):
    from lsegrt.export import export_onnx

    model = {"vit_tiny": tiny_vit, "rn_tiny": tiny_rn}[variant]
    path = tmp_path / "enc.onnx"
    info = export_onnx(model, path, precision=precision, trace_size=(96, 128))
    checks = info["verification"]["checks"]
    assert {tuple(c["shape"]) for c in checks} == {(1, 3, 64, 96), (2, 3, 96, 64)}  # ≠ the trace size
    floor = 0.99999 if precision == "fp32" else 0.9999
    assert all(c["cosine_min"] >= floor for c in checks)
    sidecar = json.loads((tmp_path / "enc.onnx.json").read_text())
    assert sidecar["request"]["precision"] == precision and sidecar["request"]["opset"] == 17
    assert sidecar["request"]["checkpoint_sha256"] == model.sha256
    # and through the backend, at sizes/batches the graph never saw
    with lsegrt.Encoder.open("onnxruntime", engine=path, precision=precision, checkpoint=model) as enc:
        for shape in [(2, 3, 64, 64), (1, 3, 160, 224)]:
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
            ref, out = model.encode_image(x), enc(x)
            assert out.shape == (shape[0], 512, shape[2] // 2, shape[3] // 2) and out.dtype == torch.float32
            assert (ref * out).sum(1).min() >= floor


def test_engine_for_other_precision_is_refused(tmp_path, tiny_vit):
    from lsegrt.export import export_onnx

    path = tmp_path / "enc.onnx"
    export_onnx(tiny_vit, path, precision="fp16", trace_size=(64, 64), verify=False)
    with pytest.raises(LsegError, match="precision: 'fp16' → 'fp32'"):
        lsegrt.Encoder.open("onnxruntime", engine=path, precision="fp32")
    other = lsegrt.random_model("vit_tiny", seed=1)
    with pytest.raises(LsegError, match="built from random:vit_tiny:seed0 .*not from random:vit_tiny:seed1"):
        lsegrt.Encoder.open("onnxruntime", engine=path, precision="fp16", checkpoint=other)


def test_engine_without_sidecar_is_refused(tmp_path, tiny_vit):
    from lsegrt.export import export_onnx

    path = tmp_path / "enc.onnx"
    export_onnx(tiny_vit, path, trace_size=(64, 64), verify=False)
    (tmp_path / "enc.onnx.json").unlink()
    with pytest.raises(LsegError, match="no sidecar"):
        lsegrt.Encoder.open("onnxruntime", engine=path)


def test_cache_never_reuses_a_tampered_sidecar(cache_dir, tiny_vit):
    with lsegrt.Encoder.open("onnxruntime", checkpoint=tiny_vit) as enc:
        first = enc.path
    sidecar = first.with_name(first.name + ".json")
    payload = json.loads(sidecar.read_text())
    payload["request"]["checkpoint_sha256"] = "0" * 64  # as if built from other weights
    sidecar.write_text(json.dumps(payload))
    before = first.stat().st_mtime_ns
    with lsegrt.Encoder.open("onnxruntime", checkpoint=tiny_vit) as enc:
        assert enc.path == first
    assert first.stat().st_mtime_ns != before  # rebuilt, not reused
    assert json.loads(sidecar.read_text())["request"]["checkpoint_sha256"] == tiny_vit.sha256


def test_bad_export_requests(tmp_path, tiny_vit):
    from lsegrt.export import export_onnx

    with pytest.raises(LsegError, match="opset"):
        export_onnx(tiny_vit, tmp_path / "a.onnx", opset=11)
    with pytest.raises(LsegError, match="multiples of 32"):
        export_onnx(tiny_vit, tmp_path / "a.onnx", trace_size=(100, 64))
    with pytest.raises(LsegError, match="folder does not exist"):
        export_onnx(tiny_vit, tmp_path / "missing" / "a.onnx")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def trt():
    """The TensorRT builder module, skipping when neither tensorrt nor tensorrt_rtx is installed."""
    module = pytest.importorskip("lsegrt.backends.tensorrt_build")
    try:
        module.import_tensorrt()
    except LsegError:
        pytest.skip("no tensorrt / tensorrt_rtx installed")
    return module


def test_export_cli(tmp_path, run_cli):
    code, out, err = run_cli("export", "--variant", "rn_tiny", "--out", tmp_path / "r.onnx", "--trace-size", "64x64")
    assert code == 0, err
    assert "cosine mean" in out and (tmp_path / "r.onnx").is_file() and (tmp_path / "r.onnx.json").is_file()


def test_trt_rtx_builds_our_own_export(tmp_path, tiny_rn, trt):
    """A real TensorRT(-RTX) engine from lsegrt's exported graph (build path, CPU-only machine)."""
    from lsegrt.export import export_onnx

    onnx = tmp_path / "r.onnx"
    export_onnx(tiny_rn, onnx, precision="fp16", trace_size=(64, 64), verify=False)
    options = trt.BuildOptions(precision="fp16", min_shape=(1, 64, 64), opt_shape=(1, 128, 128), max_shape=(2, 256, 256))
    info = trt.build_engine(onnx, tmp_path / "r.engine", options, model=tiny_rn)
    assert info["engine_bytes"] > 0 and (tmp_path / "r.engine").stat().st_size == info["engine_bytes"]
    req = json.loads((tmp_path / "r.engine.json").read_text())["request"]
    assert req["checkpoint_sha256"] == tiny_rn.sha256 and req["profile"]["max"] == [2, 256, 256]


def test_trt_rtx_builds_a_bf16_vit(tmp_path, tiny_vit, trt):
    """bf16 ViT graphs keep the reassemble ConvTranspose in fp32, which TensorRT-RTX needs to build them."""
    from lsegrt.backends.common import encoder_module
    from lsegrt.export import export_onnx

    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = encoder_module(tiny_vit, "bf16", torch.device("cpu"))(x)
    assert float((out * tiny_vit.encode_image(x)).sum(1).mean()) > 0.999
    onnx = tmp_path / "v.onnx"
    export_onnx(tiny_vit, onnx, precision="bf16", trace_size=(64, 64))
    options = trt.BuildOptions(precision="bf16", min_shape=(1, 64, 64), opt_shape=(1, 128, 128), max_shape=(1, 256, 256))
    assert trt.build_engine(onnx, tmp_path / "v.engine", options, model=tiny_vit)["engine_bytes"] > 0


# -- engines bound to their bytes, checkpoints to their weights ------------------------------------
def _x(b=1, h=64, w=96):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def seed1_vit():
    return lsegrt.random_model("vit_tiny", seed=1)


def _cos(a, b):
    return float((a * b).sum(1).min())


def test_seed1_onnx_beside_seed0_sidecar_is_refused(tmp_path, tiny_vit, seed1_vit, run_cli):
    from lsegrt.export import export_onnx

    export_onnx(tiny_vit, tmp_path / "a.onnx", trace_size=(64, 64), verify=False)
    export_onnx(seed1_vit, tmp_path / "b.onnx", trace_size=(64, 64), verify=False)
    shutil.copyfile(tmp_path / "b.onnx", tmp_path / "a.onnx")  # a.onnx.json still says seed 0
    with pytest.raises(LsegError, match="a.onnx is not the file its sidecar a.onnx.json describes") as exc:
        lsegrt.Encoder.open("onnxruntime", engine=tmp_path / "a.onnx")
    assert "\n" not in str(exc.value)
    code, _, err = run_cli("encode", "--variant", "vit_tiny", "--backend", "onnxruntime", "--engine",
                           tmp_path / "a.onnx", "--size", "64", "--out", tmp_path / "f.npy")
    assert code == 2 and "is not the file its sidecar" in err and not (tmp_path / "f.npy").exists()


def test_swapped_external_data_is_refused(tmp_path, tiny_vit, seed1_vit):
    from lsegrt.export import export_onnx

    info = export_onnx(tiny_vit, tmp_path / "a.onnx", trace_size=(64, 64), external_data=True, verify=False)
    assert info["external_data"] and (tmp_path / "a.onnx.data").is_file()
    with lsegrt.Encoder.open("onnxruntime", engine=tmp_path / "a.onnx", checkpoint=tiny_vit) as enc:
        assert _cos(enc(_x()), tiny_vit.encode_image(_x())) >= 0.9999
    (tmp_path / "b").mkdir()
    export_onnx(seed1_vit, tmp_path / "b" / "a.onnx", trace_size=(64, 64), external_data=True, verify=False)
    shutil.copyfile(tmp_path / "b" / "a.onnx.data", tmp_path / "a.onnx.data")  # seed-1 weights, same graph
    with pytest.raises(LsegError, match="a.onnx.data is not the file its sidecar a.onnx.json describes"):
        lsegrt.Encoder.open("onnxruntime", engine=tmp_path / "a.onnx")


def test_second_open_does_not_rehash(tmp_path, tiny_vit, cache_dir, monkeypatch):
    import lsegrt.sidecar as S
    from lsegrt.export import export_onnx

    path = tmp_path / "a.onnx"
    export_onnx(tiny_vit, path, trace_size=(64, 64), verify=False)
    (cache_dir / "file_digests.json").unlink(missing_ok=True)  # forget what the export remembered
    reads = []
    real = S.sha256_file
    monkeypatch.setattr(S, "sha256_file", lambda p, *a: reads.append(str(p)) or real(p, *a))
    lsegrt.Encoder.open("onnxruntime", engine=path).close()
    assert reads == [str(path.resolve())]
    lsegrt.Encoder.open("onnxruntime", engine=path).close()
    lsegrt.Encoder.open("onnxruntime", engine=path, checkpoint=tiny_vit).close()
    assert len(reads) == 1  # remembered by (path, size, mtime_ns, ctime_ns, inode)
    path.touch()  # same bytes, new stamp: read again, and accepted
    lsegrt.Encoder.open("onnxruntime", engine=path).close()
    assert len(reads) == 2


def _identity_onnx(path, channels_out):
    onnx = pytest.importorskip("onnx")
    h, T = onnx.helper, onnx.TensorProto
    graph = h.make_graph([h.make_node("Identity", ["image"], ["features"])], "identity",
                         [h.make_tensor_value_info("image", T.FLOAT, ["B", 3, "H", "W"])],
                         [h.make_tensor_value_info("features", T.FLOAT, ["B", channels_out, "H", "W"])])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("channels_out", [3, "C"], ids=["declared-3", "symbolic"])
def test_identity_onnx_with_a_forged_sidecar_is_refused(tmp_path, tiny_vit, channels_out):
    """A graph that is not an LSeg encoder never yields "features", even beside a well-formed sidecar."""
    from lsegrt.export import onnx_request
    from lsegrt.sidecar import write_sidecar

    path = _identity_onnx(tmp_path / "id.onnx", channels_out)
    write_sidecar(path, onnx_request(tiny_vit, "fp32", 17), {})  # bound to these very bytes
    with pytest.raises(LsegError, match="expected float32 \\(B,512,H,W\\)|returned .* an lsegrt graph returns"):
        with lsegrt.Encoder.open("onnxruntime", engine=path, checkpoint=tiny_vit) as enc:
            enc(_x())


def test_swapped_cache_entry_is_rebuilt(cache_dir, tiny_vit, seed1_vit, tmp_path):
    from lsegrt.export import export_onnx

    with lsegrt.Encoder.open("onnxruntime", checkpoint=tiny_vit) as enc:
        cached = enc.path
    export_onnx(seed1_vit, tmp_path / "other.onnx", trace_size=(64, 64), verify=False)
    shutil.copyfile(tmp_path / "other.onnx", cached)  # seed-1 graph under the seed-0 cache name
    with lsegrt.Encoder.open("onnxruntime", checkpoint=tiny_vit) as enc:
        assert enc.path == cached
        assert _cos(enc(_x()), tiny_vit.encode_image(_x())) >= 0.9999  # rebuilt, seed 0 again


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_cache_entry_is_rebuilt(cache_dir, tiny_vit, damage):
    with lsegrt.Encoder.open("onnxruntime", checkpoint=tiny_vit) as enc:
        cached = enc.path
    data = cached.read_bytes()
    cached.write_bytes(data[: len(data) // 3] if damage == "truncated" else bytes(len(data)))
    with lsegrt.Encoder.open("onnxruntime", checkpoint=tiny_vit) as enc:
        assert _cos(enc(_x()), tiny_vit.encode_image(_x())) >= 0.9999
    assert cached.read_bytes() != bytes(len(data))


def test_concurrent_exports_to_one_path(tmp_path, tiny_vit, seed1_vit):
    """Two processes export to one path: writers take turns and stage in their own folders, so both
    succeed (verifying their own graphs) and the pair left behind is consistent."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "enc.onnx"
    code = textwrap.dedent("""
        import pathlib, sys, time, lsegrt
        from lsegrt.export import export_onnx
        seed, path, ready = int(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
        model = lsegrt.random_model("vit_tiny", seed)
        (ready / str(seed)).touch()
        while len(list(ready.iterdir())) < 2:  # start both exports together
            time.sleep(0.005)
        export_onnx(model, path, trace_size=(64, 64))
    """)
    ready = tmp_path.parent / (tmp_path.name + "-ready")
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(seed), str(path), str(ready)], stderr=subprocess.PIPE,
                              text=True) for seed in (0, 1)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.onnx", "enc.onnx.json"]
    recorded = json.loads((tmp_path / "enc.onnx.json").read_text())["request"]["checkpoint_sha256"]
    model = tiny_vit if recorded == tiny_vit.sha256 else seed1_vit
    with lsegrt.Encoder.open("onnxruntime", engine=path, checkpoint=model) as enc:
        assert _cos(enc(_x()), model.encode_image(_x())) >= 0.9999


def test_export_verifies_its_own_graph_while_another_writes_the_path(tmp_path, tiny_vit, seed1_vit, monkeypatch):
    """Deterministic interleaving: a second export to the same path lands while the first is verifying.
    The first must verify the graph it exported (not the path's current file) and leave a matching pair."""
    import lsegrt.export as E

    path = tmp_path / "enc.onnx"
    real, calls = E.verify_onnx, []

    def verify_after_a_rival_export(*args, **kwargs):
        if not calls:
            calls.append(1)
            E.export_onnx(seed1_vit, path, trace_size=(64, 64), verify=False)
        return real(*args, **kwargs)

    monkeypatch.setattr(E, "verify_onnx", verify_after_a_rival_export)
    info = E.export_onnx(tiny_vit, path, trace_size=(64, 64))
    assert min(c["cosine_min"] for c in info["verification"]["checks"]) >= 0.9999
    recorded = json.loads((tmp_path / "enc.onnx.json").read_text())["request"]["checkpoint_sha256"]
    model = tiny_vit if recorded == tiny_vit.sha256 else seed1_vit
    with lsegrt.Encoder.open("onnxruntime", engine=path, checkpoint=model) as enc:
        assert _cos(enc(_x()), model.encode_image(_x())) >= 0.9999


def test_interrupted_reexport_never_pairs_new_graph_with_old_sidecar(tmp_path, tiny_vit, seed1_vit, monkeypatch):
    import lsegrt.export as E
    import lsegrt.sidecar as S

    path = tmp_path / "enc.onnx"
    E.export_onnx(tiny_vit, path, trace_size=(64, 64), verify=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    for module in (E, S):  # wherever the sidecar write happens
        monkeypatch.setattr(module, "write_sidecar", interrupted, raising=False)
    with pytest.raises(KeyboardInterrupt):
        E.export_onnx(seed1_vit, path, trace_size=(64, 64), verify=False)
    monkeypatch.undo()
    with pytest.raises(LsegError, match="no sidecar|is not the file its sidecar"):
        lsegrt.Encoder.open("onnxruntime", engine=path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_failed_parity_fails_the_export(tmp_path, tiny_vit, monkeypatch, run_cli):
    """An export whose graph does not reproduce the model is an error, and leaves the old pair intact."""
    import onnxruntime as ort

    from lsegrt.export import export_onnx

    path = tmp_path / "enc.onnx"
    export_onnx(tiny_vit, path, trace_size=(64, 64))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = ort.InferenceSession.run
    monkeypatch.setattr(ort.InferenceSession, "run", lambda self, *a, **k: [-t for t in real(self, *a, **k)])
    with pytest.raises(LsegError, match="does not reproduce the model .* cosine to PyTorch mean -1") as exc:
        export_onnx(tiny_vit, path, trace_size=(64, 64))
    assert "\n" not in str(exc.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    code, _, err = run_cli("export", "--variant", "vit_tiny", "--trace-size", "64x64", "--out", tmp_path / "new.onnx")
    assert code == 2 and err.count("\n") == 1 and "does not reproduce" in err
    assert not (tmp_path / "new.onnx").exists() and not (tmp_path / "new.onnx.json").exists()


def test_converted_safetensors_keeps_engines_valid(tmp_path, official_ckpt, run_cli):
    from lsegrt.convert import convert_checkpoint
    from lsegrt.export import export_onnx
    from lsegrt.synthetic import official_state_dict, save_lightning_checkpoint

    ckpt = official_ckpt("vit_tiny")
    export_onnx(lsegrt.load(ckpt), tmp_path / "enc.onnx", trace_size=(64, 64), verify=False)
    st = tmp_path / "vit_tiny.safetensors"
    convert_checkpoint(ckpt, st)
    for checkpoint in (st, lsegrt.load(st)):  # by path (identity read once) and as a loaded model
        lsegrt.Encoder.open("onnxruntime", engine=tmp_path / "enc.onnx", checkpoint=checkpoint).close()
    code, _, err = run_cli("encode", "--checkpoint", st, "--backend", "onnxruntime", "--engine", tmp_path / "enc.onnx",
                           "--size", "64", "--out", tmp_path / "f.npy")
    assert code == 0, err
    other = save_lightning_checkpoint(tmp_path / "other.ckpt", official_state_dict("vit_tiny", seed=1))
    with pytest.raises(LsegError, match=f"enc.onnx was built from {ckpt} .*not from {other}"):
        lsegrt.Encoder.open("onnxruntime", engine=tmp_path / "enc.onnx", checkpoint=other)


def test_export_refuses_to_overwrite_its_checkpoint(tmp_path, run_cli):
    from lsegrt.synthetic import official_state_dict

    sd = {k.removeprefix("net."): v for k, v in official_state_dict("vit_tiny").items()}
    torch.save(sd, tmp_path / "weights.onnx")  # a state dict under an unlucky name
    before = (tmp_path / "weights.onnx").read_bytes()
    code, _, err = run_cli("export", "--checkpoint", tmp_path / "weights.onnx", "--out", tmp_path / "weights.onnx")
    assert code == 2 and "is the input" in err
    assert (tmp_path / "weights.onnx").read_bytes() == before
