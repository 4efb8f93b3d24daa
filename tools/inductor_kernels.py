"""What each of Inductor's graphs runs per call, from the `code` phase's archive of `output_code.py` files.

    python tools/inductor_kernels.py docs/measurements/code_tenth_vit_l16_384_h100_2026-12-06.tar.gz [--json F]

For every graph: the Triton kernels its ``call`` launches (a kernel launched twice counts twice), the
library calls (``extern_kernels.*``, ``torch.ops.*``), and the launches of *copy kernels*: Triton kernels
with one load and one store (Inductor's own counts) that store what they load, so only move data: a layout
change, a weight converted on every call, or a GEMM input copied into a padded buffer. A copy kernel that reads
behind a row bound (``xindex // cols < rows`` as a mask, zeros past it) is marked as padding, with the rows it
pads from and to. Read-only: the archive is opened in place.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
from pathlib import Path

KERNEL_DEF = re.compile(r"^(\w+) = async_compile\.triton\('(\w+)', '''(.*?)''', device_str=", re.S | re.M)
META = re.compile(r"inductor_meta=(\{.*?\}),\n")
LAUNCH = re.compile(r"^\s+(\w+)\.run\(", re.M)
LIBRARY = re.compile(r"^\s+(?:\w+ = )?(extern_kernels\.\w+|torch\.ops\.[\w.]+)\(", re.M)
XNUMEL = re.compile(r"xnumel = (\d+)")
ROW_BOUND = re.compile(r"tmp\d+ = tl\.full\(\[1\], (\d+), tl\.int64\)")


def _meta(source: str) -> dict:
    m = META.search(source)
    if not m:
        return {}
    # the dict holds only literals but for ``set()``; read the counts we need without evaluating the rest
    counts = {}
    for key in ("num_load", "num_store", "num_reduction"):
        k = re.search(rf"'{key}': (\d+)", m.group(1))
        if k:
            counts[key] = int(k.group(1))
    return counts


def _stores_what_it_loads(source: str) -> bool:
    """Whether the kernel's one store writes the value its one load read (cast at most): no arithmetic."""
    store = re.search(r"tl\.store\([^,]+, (tmp\d+)", source)
    return bool(store and re.search(rf"^\s+{store.group(1)} = tl\.load\(", source, re.M))


def kernels(code: str) -> dict[str, dict]:
    """Each Triton kernel defined in one output_code.py → what it is (copy or not, padding rows)."""
    out = {}
    for var, name, source in KERNEL_DEF.findall(code):
        meta = _meta(source)
        copy = (meta.get("num_load") == 1 and meta.get("num_store") == 1 and meta.get("num_reduction", 0) == 0
                and _stores_what_it_loads(source))
        info = {"name": name, "copy": copy}
        numel = XNUMEL.search(source)
        if numel:
            info["numel"] = int(numel.group(1))
        bound = ROW_BOUND.search(source)
        cols = re.search(r"x1 = xindex // (\d+)", source)
        if copy and bound and cols and "other=0.0" in source and info.get("numel"):
            rows, width = int(bound.group(1)), int(cols.group(1))
            info["pads_rows"] = [rows, info["numel"] // width]
        out[var] = info
    return out


def call_body(code: str) -> str:
    """The graph's ``call`` (what runs per call), not the kernels' definitions or benchmark harness."""
    start = code.find("    def call(self, args):")
    if start < 0:
        start = code.find("def call(args):")
    end = code.find("\ndef benchmark_compiled_module", start)
    return code[start:end if end > 0 else None]


def summarize(code: str) -> dict:
    defs = kernels(code)
    body = call_body(code)
    launches = [v for v in LAUNCH.findall(body) if v in defs]
    copies = [defs[v] for v in launches if defs[v]["copy"]]
    return {"triton_launches": len(launches), "library_calls": len(LIBRARY.findall(body)),
            "copy_launches": len(copies), "padding_launches": sum("pads_rows" in c for c in copies),
            "copies": [{k: c[k] for k in ("name", "numel", "pads_rows") if k in c} for c in copies]}


def read_archive(path: Path) -> dict[str, dict]:
    """graph folder name → summary, for every output_code.py the archive lists."""
    out = {}
    with tarfile.open(path) as tar:
        names = tar.extractfile("files.txt").read().decode().split()
        for name in names:
            graph = Path(name).parent.name
            out[graph] = summarize(tar.extractfile(name).read().decode())
    return dict(sorted(out.items()))


def table(path: Path, summary: dict[str, dict]) -> str:
    lines = [f"`{path.name}`", "", "| graph | Triton launches | library calls | copy launches | of them padding |",
             "|---|---|---|---|---|"]
    for graph, s in summary.items():
        pads = sorted({tuple(c["pads_rows"]) for c in s["copies"] if "pads_rows" in c})
        padding = f"{s['padding_launches']} ({', '.join(f'{a}→{b} rows' for a, b in pads)})" if pads else "0"
        lines.append(f"| {graph} | {s['triton_launches']} | {s['library_calls']} | {s['copy_launches']} | {padding} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archive", type=Path, help="a code9_*.tar.gz from tools/issue9_gpu.sh code:V:S")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args()
    if not args.archive.is_file():
        print(f"error: {args.archive}: no such file", file=sys.stderr)
        return 2
    try:
        summary = read_archive(args.archive)
    except (tarfile.TarError, KeyError, OSError) as e:
        print(f"error: {args.archive}: not a code archive ({type(e).__name__})", file=sys.stderr)
        return 2
    print(table(args.archive, summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
