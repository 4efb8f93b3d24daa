"""The repository is self-contained: every architecture citation points at docs/ARCHITECTURE.md, which
exists and has the sections the code cites."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL_SPEC = "LSEG" + "_SPEC"  # not spelled out, so that this file does not match itself


def _texts():
    for folder in ("src", "tests", "tools", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md", ".sh", ".toml") and path.is_file():
                yield path, path.read_text(encoding="utf-8")
    yield ROOT / "README.md", (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_citation_of_a_file_outside_the_repository():
    offenders = [str(p.relative_to(ROOT)) for p, text in _texts() if EXTERNAL_SPEC in text]
    assert offenders == []


def test_cited_sections_exist():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", doc, flags=re.M)}
    assert sections == set(range(1, 11))
    cited = {int(n) for _, text in _texts() for n in re.findall(r"ARCHITECTURE\.md §(\d+)", text)}
    assert cited and cited <= sections
