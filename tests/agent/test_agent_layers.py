"""The agent's subpackages import in one direction: chat -> diagnosis -> rules -> playbooks -> base."""

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
ORDER = ["base", "playbooks", "rules", "diagnosis", "chat"]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "agent" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_sits_in_a_subpackage():
    assert [p.name for p in AGENT.glob("*.py")] == ["__init__.py"]
    assert sorted(p.name for p in AGENT.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(ORDER)


def test_no_subpackage_imports_one_above_it():
    upward = []
    for rank, package in enumerate(ORDER):
        for path in (AGENT / package).glob("*.py"):
            above = {p for p in imported_packages(path) if p in ORDER and ORDER.index(p) > rank}
            upward += [f"{package}/{path.name} imports agent.{p}" for p in sorted(above)]
    assert upward == []
