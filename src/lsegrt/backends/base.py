"""The one interface every backend implements.

An :class:`Encoder` maps a normalized image batch to per-pixel unit embeddings:

    (B,3,H,W) float32, normalized, on ``encoder.device``  →  (B,512,H/2,W/2) float32, on the same device

Precision (fp32/fp16/bf16) is what the backend computes in; I/O stays float32 everywhere, with
LayerNorm and the final L2 norm in fp32 (docs/ARCHITECTURE.md §8), so every backend is a drop-in replacement
for every other and `compare` can diff them directly.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..errors import LsegError

PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# name → "module:Class", imported only when asked for (Polygraphy style: heavy deps stay lazy).
REGISTRY: dict[str, str] = {
    "torch": "lsegrt.backends.torch_eager:TorchEncoder",
    "compile": "lsegrt.backends.compiled:CompiledEncoder",
    "aoti": "lsegrt.backends.aoti:AOTIEncoder",
    "onnxruntime": "lsegrt.backends.onnxruntime:OnnxRuntimeEncoder",
    "tensorrt": "lsegrt.backends.tensorrt:TensorRTEncoder",
}


from ..devices import canonical_device  # noqa: E402,F401  (lives with the device checks; backends use it from here)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise LsegError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def backend_class(name: str) -> type["Encoder"]:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise LsegError(f"unknown backend {name!r}; choose one of {', '.join(REGISTRY)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def option_value(text: str) -> Any:
    """A ``KEY=VALUE`` option's value as typed as the text allows: bool words, then int, else str.

    "1"/"0" stay integers here; :meth:`Option.parse` turns them into bools where the option is one.
    """
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    try:
        return int(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class Option:
    """One typed backend option: what :meth:`Encoder.open` accepts under its name.

    ``type``: bool, int, float, str or list (of str; a string is split on commas); any other class
    is taken as is if the value is an instance of it (API-only options such as ``BuildOptions``).
    ``choices``: allowed values, or a callable giving them (evaluated only when the option is used).
    ``minimum``: smallest allowed number. ``default`` is used when the option is not given; None
    means "unset" and is always accepted for options whose default is None.
    """

    type: type
    default: Any = None
    help: str = ""
    choices: tuple | Callable[[], tuple] | None = None
    minimum: float | None = None

    def allowed(self) -> tuple | None:
        return self.choices() if callable(self.choices) else self.choices

    def expected(self) -> str:
        choices = self.allowed()
        if choices is not None:
            return "one of " + ", ".join(str(c) for c in choices) + (" (comma-separated)" if self.type is list else "")
        if self.type is bool:
            return "true or false"
        if self.type in (int, float):
            kind = "an integer" if self.type is int else "a number"
            return kind + (f" ≥ {self.minimum:g}" if self.minimum is not None else "")
        if self.type is list:
            return "a comma-separated list"
        return f"a {self.type.__name__}"

    def parse(self, value: Any) -> Any:
        """``value`` as this option's type; ValueError when it is not one."""
        if value is None and self.default is None:
            return None
        if self.type is bool:
            if isinstance(value, bool):
                return value
            low = str(value).strip().lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            raise ValueError
        if self.type in (int, float):
            if isinstance(value, bool):
                raise ValueError
            number = self.type(value)
            if self.type is int and isinstance(value, float) and number != value:
                raise ValueError
            if self.minimum is not None and number < self.minimum:
                raise ValueError
            out = number
        elif self.type is list:
            items = value.split(",") if isinstance(value, str) else list(value)
            out = [str(v).strip() for v in items if str(v).strip()]
            if not out:
                raise ValueError
        elif self.type is str:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError
            out = str(value)
        elif isinstance(value, self.type):
            return value
        else:
            raise ValueError
        choices = self.allowed()
        if choices is not None:
            if any(v not in choices for v in (out if isinstance(out, list) else [out])):
                raise ValueError
        return out


# Declared by backends without a graph mode, so one option set can open every backend in a sweep: they
# run without a graph, describe() reports cuda_graph: false, and bench marks such rows.
NO_CUDA_GRAPH = Option(bool, False, "accepted for sweeps, no effect: this backend has no CUDA-graph mode "
                                    "(describe() reports cuda_graph: false)")


def _variants() -> tuple:
    from ..model.config import VARIANTS

    return tuple(VARIANTS)


@dataclass(frozen=True)
class Candidate:
    """One encoder to run, as bench, compare and profile name it: ``BACKEND[:PREC][:KEY=VALUE,...][@ENGINE]``
    (e.g. ``compile:fp16:fast=true``, ``tensorrt:fp16@x.engine``). Its options add to, and override,
    the verb's shared ``--option`` set."""

    backend: str
    precision: str = "fp32"
    options: dict[str, Any] = field(default_factory=dict)
    engine: str | None = None

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in sorted(self.options.items()))
        return (f"{self.backend}:{self.precision}" + (f":{opts}" if opts else "")
                + (f"@{Path(self.engine).name}" if self.engine else ""))


SPEC = "BACKEND[:PREC][:KEY=VALUE,...][@ENGINE]"


def parse_candidate(text: str, defaults: Mapping[str, Any] | None = None) -> Candidate:
    """A :class:`Candidate` from its text (options split by ``,`` or ``:``); ``defaults`` apply unless the
    text overrides them. Backend, precision and option names/values are checked: one-line errors."""
    spec, _, engine = str(text).partition("@")
    backend, *rest = spec.split(":", 2)
    if backend not in REGISTRY:
        raise LsegError(f"candidate {text!r}: unknown backend {backend!r}; expected {SPEC} with backend one of "
                        f"{', '.join(REGISTRY)}")
    options: dict[str, Any] = {}
    for item in re.split(r"[,:]", rest[1]) if len(rest) > 1 else []:
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LsegError(f"candidate {text!r}: option {item!r} is not KEY=VALUE")
        options[key.strip().replace("-", "_")] = option_value(value.strip())
    backend_class(backend).check_options(options)
    precision = check_precision((rest[0] if rest else "") or "fp32")
    return Candidate(backend, precision, {**(defaults or {}), **options}, engine or None)


def options_for(backend: str, options: Mapping[str, Any] | None, sweep: Iterable[str] = ()) -> dict[str, Any]:
    """The part of one shared option set that ``backend`` declares, for verbs that open several backends.

    bench and compare pass one ``--option`` set to every backend they open (``dynamic=true`` is for
    compile, while the torch reference runs beside it): each backend gets the options it declares. A
    name that no backend of the ``sweep`` declares, or a bad value for a backend that declares it, is
    a one-line error before any work.
    """
    options = dict(options or {})
    classes = {name: backend_class(name) for name in dict.fromkeys([*sweep, backend])}
    known = sorted(set().union(*(klass.options for klass in classes.values())))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise LsegError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
                        f"{', '.join(classes)}; their options are: {', '.join(known)}")
    for klass in classes.values():  # values checked for every backend that takes them, up front
        klass.check_options({k: v for k, v in options.items() if k in klass.options})
    return {k: v for k, v in options.items() if k in classes[backend].options}


class Encoder(ABC):
    """Image encoder behind one call signature. Use :meth:`open`; close it (or use ``with``).

    A backend declares its options in ``options`` (name → :class:`Option`); :meth:`open` checks every
    given option against them (unknown names and bad values are one-line errors naming the valid
    ones), fills in the defaults, and passes them to :meth:`create` as keyword arguments. Adding an
    option is one line there plus its use in ``create``.
    """

    name: ClassVar[str] = "?"
    options: ClassVar[Mapping[str, Option]] = {
        "variant": Option(str, None, "architecture of the random default when no checkpoint is given",
                          choices=_variants),
    }

    def __init__(self, device: torch.device | str, precision: str):
        self.device = canonical_device(device)
        self.precision = check_precision(precision)

    @classmethod
    def open(
        cls,
        backend: str,
        *,
        checkpoint: Any = None,
        engine: str | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        **options: Any,
    ) -> "Encoder":
        """Open ``backend`` ("torch", "compile", "aoti", "onnxruntime", "tensorrt").

        ``checkpoint`` is a path, an already loaded :class:`lsegrt.LSegModel`, or None for the
        embedded random default. Engine backends take ``engine`` (a built file with its JSON
        sidecar); without one they build into the cache, keyed by every input that matters.
        """
        klass = backend_class(backend)
        check_precision(precision)
        return klass.create(checkpoint=checkpoint, engine=engine, device=device, precision=precision,
                            **klass.check_options(options))

    @classmethod
    def check_options(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` checked against ``cls.options`` and completed with the defaults; else LsegError."""
        unknown = sorted(set(given) - set(cls.options))
        if unknown:
            valid = ", ".join(sorted(cls.options)) or "none"
            raise LsegError(f"{cls.name} backend: unknown option{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)}; its options are: {valid}")
        out = {}
        for key, option in cls.options.items():
            if key not in given:
                out[key] = option.default
                continue
            try:
                out[key] = option.parse(given[key])
            except (ValueError, TypeError):
                raise LsegError(f"{cls.name} backend: option {key}={given[key]!r}: expected {option.expected()}") from None
        return out

    @classmethod
    @abstractmethod
    def create(cls, *, checkpoint, engine, device, precision, **options) -> "Encoder":
        """Backend-specific constructor behind :meth:`open`."""

    @abstractmethod
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) float32 normalized on ``self.device`` → (B,512,H/2,W/2) float32 unit vectors."""

    def describe(self) -> dict[str, Any]:
        """What runs: backend, device, precision and backend-specific details (engine path, versions)."""
        return {"backend": self.name, "device": str(self.device), "precision": self.precision}

    def close(self) -> None:
        """Release engines, sessions and device memory."""

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise LsegError(f"{self.name}: expected a (B,3,H,W) tensor, got {tuple(x.shape)}")
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise LsegError(f"{self.name}: H and W must be multiples of 32, got {x.shape[-2]}x{x.shape[-1]}")
        if x.device != self.device:
            raise LsegError(f"{self.name}: input is on {x.device}, encoder runs on {self.device}")
