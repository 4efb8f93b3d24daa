"""Dynamo's traced code in saved compile builds: when it is on, and what keeps a build bound to its request
(the builds themselves, opened in fresh processes: tests/backends/test_compiled.py)."""

from __future__ import annotations

import pytest
import torch

import lsegrt
from lsegrt.backends import dynamo_cache as traced
from lsegrt.backends.compiled import CompileOptions
from lsegrt.errors import LsegError
from lsegrt.model import branches


def test_saved_builds_carry_traced_code_by_default_and_live_compiles_never():
    assert CompileOptions.parse({}, "vit", "cpu", "fp32", saved=True).dynamo_cache is True
    assert CompileOptions.parse({"fast": True}, "vit", "cpu", "fp32", saved=True).dynamo_cache is True
    assert CompileOptions.parse({}, "vit", "cpu", "fp32").dynamo_cache is False
    assert CompileOptions.parse({"dynamo_cache": False}, "vit", "cpu", "fp32", saved=True).dynamo_cache is False
    with pytest.raises(LsegError, match="dynamo_cache=true serves Dynamo's traced code from a saved build"):
        lsegrt.Encoder.open("compile", variant="vit_tiny", dynamo_cache=True)


def test_not_with_inductors_own_cuda_graphs():
    """Inductor's CUDA graphs are not restored from the saved code: off by default, refused when asked for;
    overlap's own graph is fine."""
    assert CompileOptions.parse({"cuda_graph": True}, "vit", saved=True).dynamo_cache is False
    assert CompileOptions.parse({"mode": "max-autotune"}, "vit", saved=True).dynamo_cache is False
    assert CompileOptions.parse({"mode": "max-autotune-no-cudagraphs"}, "vit", saved=True).dynamo_cache is True
    assert CompileOptions.parse({"cuda_graph": True, "overlap": True}, "vit", saved=True).dynamo_cache is True
    with pytest.raises(LsegError, match="Inductor's own CUDA graphs"):
        CompileOptions.parse({"cuda_graph": True, "dynamo_cache": True}, "vit", saved=True)


def test_a_torch_without_caching_precompile(monkeypatch):
    monkeypatch.delattr(torch._dynamo.config, "caching_precompile", raising=False)
    monkeypatch.setattr(traced, "supported", lambda: False)
    assert CompileOptions.parse({}, "vit", saved=True).dynamo_cache is False
    with pytest.raises(LsegError, match="has no caching precompile"):
        CompileOptions.parse({"dynamo_cache": True}, "vit", saved=True)


def test_claims_refuse_a_second_request_on_installed_code_until_the_last_twin_closes():
    fam = "test-family"
    a = traced.claim(fam, "A", installs=True)
    a_twin = traced.claim(fam, "A", installs=True)  # the same build opened again
    with pytest.raises(LsegError, match="runs a saved build's traced code"):
        traced.claim(fam, "B", installs=False)
    with pytest.raises(LsegError):
        traced.claim(fam, "B", installs=True)
    a([])
    a([])  # once only
    with pytest.raises(LsegError):
        traced.claim(fam, "B", installs=False)
    a_twin([])
    b = traced.claim(fam, "B", installs=False)
    c = traced.claim(fam, "C", installs=False)  # live compiles never conflict with each other
    with pytest.raises(LsegError):
        traced.claim(fam, "A", installs=True)
    b([]), c([])
    traced.claim(fam, "A", installs=True)([])


def test_request_key_ignores_the_option_itself_and_shapes():
    base = {"backend": "compile", "options": {"fold": True, "dynamo_cache": True}, "shapes": [[1, 64, 64]]}
    same = {"backend": "compile", "options": {"fold": True, "dynamo_cache": False}}
    other = {"backend": "compile", "options": {"fold": False, "dynamo_cache": True}}
    assert traced.request_key(base) == traced.request_key(same) != traced.request_key(other)


def test_pieces_have_code_of_their_own_under_their_own_names():
    """Dynamo keys saved code by qualified name and installs it on the code object: the four segments (and
    the four branches) must not share either, and a new process must find each code by its name."""
    for group in (branches._VIT_SEGMENTS, branches._RESNET_SEGMENTS, branches._BRANCHES):
        codes = {id(cls.forward.__code__) for cls in group}  # equal by value (qualname aside), not one object
        keys = {traced.key_of(cls.forward) for cls in group}
        assert len(codes) == len(keys) == 4
        for cls in group:
            assert getattr(branches, cls.__name__) is cls and cls.forward.__qualname__ == f"{cls.__name__}.forward"
            assert cls.forward.__code__.co_code == cls.__mro__[1].forward.__code__.co_code  # the same source
    split = branches.split_encoder(lsegrt.random_model("vit_tiny").image_encoder())
    assert [type(s).__name__ for s in split.segments] == [f"_ViTSegment_{k}" for k in range(1, 5)]


def test_forget_removes_what_an_earlier_build_left_for_a_module(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    module = branches._Tail(torch.nn.Module())
    stale = traced.folder() / traced.key_of(type(module).forward)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"another build's traced code")
    other = traced.folder() / traced.key_of(branches._Finish.forward)
    other.write_bytes(b"kept")
    traced.forget(module)
    assert not stale.exists() and other.exists()
    traced.forget(module)  # nothing there: fine


def test_folder_lock_is_reentrant_in_a_thread_and_excludes_another(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setenv("LSEGRT_CACHE", str(tmp_path / "lsegrt"))
    entered = threading.Event()

    def other():
        with traced.folder_lock(True):
            entered.set()

    with traced.folder_lock(True), traced.folder_lock(True):  # nested in one thread: taken once
        thread = threading.Thread(target=other)
        thread.start()
        assert not entered.wait(0.5)  # another thread waits while this one holds it
    thread.join(5)
    assert entered.is_set()
    with traced.folder_lock(False):
        pass


def test_name_counter_moves_past_installed_globals(monkeypatch):
    """Code installed from a build names its globals with the build process's counter; this process's next
    trace must not reuse one ("Name '__builtins_dict___0' already exists in scope")."""
    from torch._dynamo.bytecode_transformation import unique_id

    monkeypatch.setattr(branches, "__builtins_dict___4242", {}, raising=False)
    monkeypatch.setattr(branches, "__compiled_fn_4243_0a0d3fd3_b366_48ff_9adb_7f3d931c69be", None, raising=False)
    assert traced.skip_installed_names() > 4243
    assert int(unique_id("x").rsplit("_", 1)[1]) > 4243


def test_dropped_guard_warnings_are_quiet_only_for_that_message(caplog):
    import logging

    with traced.scope(True):
        assert torch._dynamo.config.caching_precompile is True
        log = logging.getLogger("torch._dynamo.guards")
        with caplog.at_level(logging.WARNING, logger="torch._dynamo.guards"):
            log.warning("ID_MATCH guard on x is dropped with caching_precompile=True.")
            log.warning("something else")
    assert [r.getMessage() for r in caplog.records if r.name == "torch._dynamo.guards"] == ["something else"]
    assert torch._dynamo.config.caching_precompile is False


def test_an_encoder_dropped_unclosed_does_not_hold_its_claim(tmp_path):
    """A live compile encoder in a reference cycle, dropped without close: the claim waits for the cycle collector,
    which a conflicting claim runs before refusing."""
    import gc

    enc = lsegrt.Encoder.open("compile", variant="vit_tiny")  # claims the whole-model family, not installing
    enc.cycle = enc
    del enc
    gc.disable()
    try:
        traced.claim(traced.family(False), "another request", installs=True)([])
    finally:
        gc.enable()


def test_an_encoder_that_fails_to_compile_leaves_no_claim(monkeypatch):
    from lsegrt.backends import compiled

    def fail(*args, **kwargs):
        raise RuntimeError("compile failed")

    monkeypatch.setattr(compiled, "compile_module", fail)
    with pytest.raises(RuntimeError, match="compile failed"):
        lsegrt.Encoder.open("compile", variant="vit_tiny")
    traced.claim(traced.family(False), "another request", installs=True)([])  # not refused
