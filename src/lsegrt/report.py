"""Writing results: strict JSON, flat CSV, table cells and one-line failure texts.

Shared by `bench` and `compare` (and anything else that reports measurements): every JSON carries
the lsegrt version and its creation time, NaN/inf are written as null (strict JSON), and every file
is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import LsegError


def stamp() -> dict[str, str]:
    """``{"lsegrt_version", "created"}``: the first keys of every report."""
    from . import __version__

    return {"lsegrt_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def clean(value: Any) -> Any:
    """NaN/inf → None, recursively through dicts, lists and tuples (JSON has no non-finite numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def to_json(payload: Any) -> str:
    """Strict JSON (NaN/inf become null), keys in insertion order, objects str()-ed as a last resort."""
    return json.dumps(clean(payload), indent=2, allow_nan=False, default=str) + "\n"


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    from .fileio import write_text

    return write_text(path, to_json(payload))


def to_csv(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> str:
    """One row per dict, columns ``fields`` in order; dict values as sorted JSON, None as empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        row = clean(row)
        writer.writerow({k: json.dumps(row[k], sort_keys=True) if isinstance(row[k], dict) else row[k]
                         for k in fields})
    return buf.getvalue()


def write_csv(path: str | os.PathLike, rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> Path:
    from .fileio import write_text

    return write_text(path, to_csv(rows, fields))


def error_text(exc: BaseException) -> str:
    """One line for a failed configuration: the LsegError message, or the exception type and first line."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if not isinstance(exc, LsegError) else first


def cell(value: Any, digits: int = 2) -> str:
    """A table cell: None → "—", floats with thousands separators and ``digits`` decimals."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def console():
    """A rich console; when not writing to a terminal (logs, CI), wide enough that tables do not truncate."""
    from rich.console import Console

    con = Console()
    return con if con.is_terminal else Console(width=max(con.width, 220))
