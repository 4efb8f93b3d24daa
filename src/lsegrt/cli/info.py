"""`lsegrt info`: the machine and software a result came from (paste it into bug reports and benchmarks).

OS, Python, CPU, RAM, GPUs (name, memory, compute capability), NVIDIA driver, CUDA, and the versions of
the packages lsegrt can use, each "not installed" when absent. Versions come from package metadata, so
optional packages are not imported (onnxruntime only to list its execution providers).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..environment import collect


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="OS, CPU, GPUs, driver, CUDA and package versions",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


# -- output ------------------------------------------------------------------------------------------
def rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    cores = info["cpu_cores"]
    out = [
        ("OS", info["os"]),
        ("Python", info["python"]),
        ("CPU", f"{info['cpu']} ({cores['logical']} logical cores, {cores['usable']} usable)"),
        ("RAM", f"{info['ram_gib']} GiB" if info["ram_gib"] else "unknown"),
    ]
    if info["gpus"]:
        for g in info["gpus"]:
            out.append((f"GPU {g['index']}", f"{g['name']}, {g['memory_gib']} GiB, "
                                             f"compute capability {g['compute_capability'] or 'unknown'}"))
    else:
        out.append(("GPU", "none"))
    out += [("NVIDIA driver", info["nvidia_driver"]), ("CUDA (torch build)", info["cuda"]), ("cuDNN", info["cudnn"])]
    for name, version in info["packages"].items():
        if name == "onnxruntime" and info["onnxruntime_providers"]:
            version = f"{version} (providers: {', '.join(info['onnxruntime_providers'])})"
        out.append((name, version))
    return out


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lsegrt info", show_header=True, header_style="bold")
    table.add_column("item", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows(info):
        table.add_row(key, value)
    Console().print(table)
    return 0
