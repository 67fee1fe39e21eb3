"""docs/architecture.md is drawn from the code: its module table names every module there is."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _table() -> list[str]:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = doc.index("| module | concern |")
    return doc[start:doc.index("\n\n", start)].splitlines()[2:]


def _modules() -> set[str]:
    found = set()
    for path in (ROOT / "home_energy").rglob("*.py"):
        parts = path.relative_to(ROOT / "home_energy").with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if parts:
            found.add(".".join(parts))
    return found


def test_every_module_has_a_row_or_a_place_in_its_packages_row():
    rows = {m.group(1): line for line in _table() if (m := re.match(r"\| `([\w.]+)` \|", line))}
    missing = []
    for module in sorted(_modules()):
        package, _, leaf = module.rpartition(".")
        if module in rows or (package in rows and f"`{leaf}`" in rows[package]):
            continue
        missing.append(module)
    assert missing == []


def test_the_table_names_no_module_that_is_gone():
    rows = {m.group(1) for line in _table() if (m := re.match(r"\| `([\w.]+)` \|", line))}
    assert sorted(rows - _modules()) == []
