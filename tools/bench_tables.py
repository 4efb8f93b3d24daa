"""Render the Markdown tables and PNG plots of docs/BENCHMARKS.md from `lsegrt bench`/`compare` JSON.

    python tools/bench_tables.py docs/measurements > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lsegrt.viz import latency_plot


def bench_table(path: Path) -> str:
    data = json.loads(path.read_text())
    rows = [r for r in data["records"] if r["status"] == "ok"]
    out = ["| backend | precision | size | batch | GPU p50 ms | mean ± std ms | p99 ms | img/s | H2D ms | D2H ms | peak MB | TFLOP/s | % fp16 peak |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['backend']} | {r['precision']} | {r['height']} | {r['batch']} | {r['gpu_ms_p50']:.2f} | "
                   f"{r['gpu_ms_mean']:.2f} ± {r['gpu_ms_std']:.2f} | {r['gpu_ms_p99']:.2f} | {r['images_per_s']:.1f} | "
                   f"{r['h2d_ms']:.2f} | {r['d2h_ms']:.2f} | {r['gpu_peak_mem_mb']:,.0f} | {r['tflops_per_s']:.1f} | "
                   f"{r['pct_fp16_peak']:.1f} |")
    return "\n".join(out)


def compare_table(path: Path) -> str:
    data = json.loads(path.read_text())
    out = ["| candidate | image | size | mean cos | p0.1 cos | min cos | rel. L2 | max abs | label agr. % | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for pair in data["pairs"]:
        for r in pair["items"] + [{**pair["aggregate"], "image": "all", "input": "", "passed": pair["passed"]}]:
            out.append(f"| {pair['candidate']} | {r['image']} | {r['input']} | {r['mean_cosine']:.7f} | "
                       f"{r['p01_cosine']:.6f} | {r['min_cosine']:.6f} | {r['rel_l2']:.2e} | {r['max_abs']:.2e} | "
                       f"{r['agreement']:.3f} | {'pass' if r['passed'] else 'FAIL'} |")
    return "\n".join(out)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    for path in sorted(folder.glob("bench_*.json")):
        print(f"\n#### {path.name}\n\n{bench_table(path)}")
        recs = [r for r in json.loads(path.read_text())["records"] if r["status"] == "ok"]
        if len(recs) > 1:
            latency_plot([{**r, "size": r["height"]} for r in recs], folder / (path.stem + ".png"),
                         y="gpu_ms_p50", title=path.stem)
    for path in sorted(folder.glob("compare_*.json")):
        print(f"\n#### {path.name}\n\n{compare_table(path)}")
