"""Dynamo's traced code carried by a saved compile build (the `compile` backend's ``dynamo_cache`` option).

A saved build's compiler caches spare a new process Inductor and kernel compilation, but Dynamo still traces
the model again in every process (seconds for ViT-L/16's ten ``overlap`` pieces). torch's *caching precompile*
(``torch._dynamo.config.caching_precompile``) saves what Dynamo traced, the bytecode and its guards, with the
other artifacts (``torch.compiler.save_cache_artifacts``: "precompile" entries), and installs it on the model's
code objects when ``torch.compile`` wraps the module in a new process.

What that mechanism does, and what this module adds so that a build stays bound to its request:

- Traced code is keyed by a function's qualified name and kept in torch's cache folder (``<inductor cache>/
  dynamo``), where ``torch.compile`` looks it up when it wraps a module. A build therefore first removes what
  an earlier build left there for the code it traces (:func:`forget`), and every step that writes or reads
  that folder runs under one lock (:func:`folder_lock`), so that two processes cannot swap their entries.
- Installed code brings the globals it calls by the names the build's process gave them, numbered by Dynamo's
  process-wide counter, which a new process starts again at 0: its next trace (a shape the build does not
  have) named a global the same and failed ("Name '__builtins_dict___0' already exists in scope", torch 2.11
  and 2.14). :func:`skip_installed_names` moves this process's counter past them.
- Installed code runs for *every* compiled call of that code object whose guards pass, whichever
  ``torch.compile`` made the call, and Dynamo drops its identity guards (``ID_MATCH`` and the like) when it
  saves: two encoders of one process compiling the same code with different options would run one
  encoder's code for both. :func:`claim` refuses such a pair.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import re
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import LsegError

# torch logs one warning per dropped guard (hundreds for ViT-L/16); the request binding is what replaces them
_DROPPED = "is dropped with caching_precompile"
_USERS_LOCK = threading.Lock()
# code family ("whole": the CastEncoder's forward, "pieces": overlap's pieces) → {(request key, installs): open encoders}
_USERS: dict[str, Counter[tuple[str, bool]]] = {}


def supported() -> bool:
    """Whether this torch's Dynamo can save and reload its traced code (caching precompile)."""
    return hasattr(torch._dynamo.config, "caching_precompile")


class _QuietDroppedGuards(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _DROPPED not in record.getMessage()


def scope(on: bool | None):
    """Dynamo's caching precompile, on while ``on``: it must be on when ``torch.compile`` wraps a module (the
    wrapper looks its traced code up then), while it traces and runs, and while the caches are saved."""
    if not on:
        return contextlib.nullcontext()
    guards_log = logging.getLogger("torch._dynamo.guards")
    if not any(isinstance(f, _QuietDroppedGuards) for f in guards_log.filters):
        guards_log.addFilter(_QuietDroppedGuards())
    return torch._dynamo.config.patch(caching_precompile=True)


def folder() -> Path:
    """torch's folder of saved traced code (it follows ``TORCHINDUCTOR_CACHE_DIR``)."""
    from torch._dynamo.package import DynamoCache

    return Path(DynamoCache.path_prefix())


def folder_lock(on: bool | None):
    """Exclusive use of :func:`folder` (:func:`lsegrt.sidecar.engine_lock` on it: other processes and threads wait,
    the holder may take it again): between writing a build's traced code there and ``torch.compile`` reading it
    back, nobody else writes."""
    from ..sidecar import engine_lock

    return engine_lock(folder()) if on else contextlib.nullcontext()


def key_of(forward: Callable) -> str:
    """The name torch saves ``forward``'s traced code under."""
    from torch._dynamo.package import CompilePackage

    return CompilePackage.source_id_from_fn(forward)


def forget(module: torch.nn.Module) -> None:
    """Remove what an earlier build saved in :func:`folder` for ``module``'s forward, so that wrapping it traces
    afresh instead of installing another request's code."""
    entry = folder() / key_of(type(module).forward)
    if entry.is_dir():
        shutil.rmtree(entry)
    elif entry.exists():
        entry.unlink()


# a global Dynamo installs: "__<prefix>_<n>", compiled functions with a uuid after the number
_NUMBERED = re.compile(r"^__[A-Za-z_]*?_(\d+)(_[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})?$")


def skip_installed_names(package: str = "lsegrt") -> int:
    """Advance Dynamo's name counter past every numbered global installed in ``package``'s modules (where the
    traced code of its forwards lives), so that the next trace names nothing the same. Returns the counter's
    next value."""
    from torch._dynamo.bytecode_transformation import unique_id

    highest = -1
    for name, module in list(sys.modules.items()):
        if module is not None and (name == package or name.startswith(package + ".")):
            for key in list(vars(module)):
                if (found := _NUMBERED.match(key)) is not None:
                    highest = max(highest, int(found.group(1)))
    while True:
        taken = int(unique_id("").rsplit("_", 1)[1])
        if taken > highest:
            return taken + 1


def family(overlap: bool) -> str:
    """Which code objects an encoder compiles: the whole CastEncoder's forward, or ``overlap``'s pieces (the same
    piece classes for every model of a backbone)."""
    return "pieces" if overlap else "whole"


def request_key(request: dict) -> str:
    """A request (:func:`lsegrt.backends.compiled.build_request`) as compared here: ``dynamo_cache`` itself
    left out (a build's traced code is what the same options would trace) and ``shapes`` too."""
    options = {k: v for k, v in request.get("options", {}).items() if k != "dynamo_cache"}
    return json.dumps({**{k: v for k, v in request.items() if k != "shapes"}, "options": options}, sort_keys=True)


def claim(code_family: str, key: str, installs: bool) -> Callable[[list], None]:
    """Register an encoder of this process that compiles ``code_family`` for request ``key`` (``installs``: it
    runs a build's traced code, installed on the family's code objects). Refused (LsegError) when it and an
    open encoder differ in request and either of them installs. Returns the release, for when the encoder
    closes (once), given the encoder's CompilePackages (:func:`packages`): the last installing encoder of a
    request to close takes the traced code off the code objects, so that no later encoder can run it."""
    entry = (key, installs)

    def conflict() -> bool:
        return any(other != key and (installs or other_installs) for other, other_installs in users)

    with _USERS_LOCK:
        users = _USERS.setdefault(code_family, Counter())
        clash = conflict()
    if clash:  # an encoder the caller dropped without closing may only wait for the cycle collector
        gc.collect()  # (outside the lock: its finalizer releases its claim)
    with _USERS_LOCK:
        if conflict():
            raise LsegError("this process already serves a compile encoder whose code differs from this one's, and "
                            "one of the two runs a saved build's traced code (dynamo_cache), which would run for "
                            "both: close the other first, open them in separate processes, or open the build with "
                            "dynamo_cache=false")
        users[entry] += 1
    released = []

    def release(installed: list) -> None:
        with _USERS_LOCK:
            if released:
                return
            released.append(True)
            users[entry] -= 1
            if users[entry] > 0:
                return
            del users[entry]
            if installs:
                _take_off(installed)

    return release


def packages(compiled: list) -> list:
    """The CompilePackages of ``torch.compile``'d modules (those made under caching precompile)."""
    found = (getattr(getattr(m, "dynamo_ctx", None), "_package", None) for m in compiled)
    return [p for p in found if p is not None]


def _take_off(installed: list) -> None:
    """Drop the precompiled entries of ``installed`` packages from their code objects. Their globals stay: another
    encoder's code may share an import alias (torch's own ``uninstall`` removes them, and in torch 2.11 raised
    KeyError on the second package sharing one), and nothing runs them once the entries are gone."""
    from torch._C._dynamo.eval_frame import _reset_precompile_entries

    for package in installed:
        for code in list(getattr(package, "_codes", {})):
            _reset_precompile_entries(code)
