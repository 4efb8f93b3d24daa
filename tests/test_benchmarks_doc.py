"""docs/BENCHMARKS.md shows measured numbers only: every table in it is rendered from a JSON record in
docs/measurements by tools/bench_tables.py, verbatim, and every record there is shown."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "docs" / "measurements"
DOC = (ROOT / "docs" / "BENCHMARKS.md").read_text()


def _tables():
    spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "tools" / "bench_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(MEASURED.glob("bench_*.json")), ids=lambda p: p.stem)
def test_bench_table_in_doc_matches_its_json(path):
    table = _tables().bench_table(path)
    assert table in DOC, f"{path.name}: the table in BENCHMARKS.md differs from the JSON (re-render it)"


@pytest.mark.parametrize("path", sorted(MEASURED.glob("compare_*.json")), ids=lambda p: p.stem)
def test_compare_table_in_doc_matches_its_json(path):
    table = _tables().compare_table(path)
    assert table in DOC, f"{path.name}: the table in BENCHMARKS.md differs from the JSON (re-render it)"


def test_headline_numbers_are_in_the_records():
    def p50(name, size, batch=1, precision="fp16"):
        recs = json.loads((MEASURED / name).read_text())["records"]
        (r,) = [r for r in recs if str(r["size"]) == str(size) and r["batch"] == batch and r["precision"] == precision]
        return f"{r['gpu_ms_p50']:.2f} ms"

    for cell in (p50("bench_compile_static_vit_l16.json", 384), p50("bench_compile_static_vit_l16.json", 1024),
                 p50("bench_compile_fp16_vit_l16.json", 384), p50("bench_compile_fp16_vit_l16.json", "480x640"),
                 p50("bench_torch_vit_l16.json", 384, precision="fp32"),
                 p50("bench_torch480x640_vit_l16.json", "480x640", precision="fp32")):
        assert f"| {cell} |" in DOC or f"**{cell}**" in DOC, cell
