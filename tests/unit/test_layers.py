"""The layering of DESIGN: the sans-I/O core imports no I/O, and imports point down only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sipstack"
SANS_IO = ["message", "sdp", "offeranswer", "transaction", "dialog", "auth", "errors", "flow"]
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "uvloop", "threading"}
# Floors (a module may import its own floor and below, never above).
FLOORS = {
    "errors": 1,
    "net": 1,
    "deadlines": 1,
    "storage": 1,
    "message": 2,
    "flow": 2,
    "sdp": 2,
    "offeranswer": 2,
    "transaction": 3,
    "dialog": 3,
    "auth": 3,
    "transport": 3,
    "endpoint": 4,
    "testing": 4,
    "proxy": 5,
    "registrar": 5,
    "ua": 5,
    "ext": 6,
    "server": 7,
    "cli": 8,
    "__main__": 9,
}


def _modules(part: str) -> list[Path]:
    path = SRC / part
    if path.is_dir():
        return sorted(path.rglob("*.py"))
    file = SRC / f"{part}.py"
    return [file] if file.exists() else []


def _imports(path: Path) -> list[str]:
    """Absolute names imported by a module of the sipstack package (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


@pytest.mark.parametrize("part", [p for p in SANS_IO if _modules(p)])
def test_sans_io_core_imports_no_io(part: str) -> None:
    for path in _modules(part):
        bad = {name for name in _imports(path) if name.split(".")[0] in IO_MODULES}
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_imports_point_down() -> None:
    for top in FLOORS:
        for path in _modules(top):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] != "sipstack" or len(parts) < 2 or parts[1] == top:
                    continue
                target = FLOORS.get(parts[1])
                assert target is not None, f"{path.relative_to(SRC)} imports unplaced {name}"
                assert target <= FLOORS[top], f"{path.relative_to(SRC)} (floor {FLOORS[top]}) imports {name}"


def test_every_module_is_placed() -> None:
    for path in SRC.iterdir():
        name = path.stem if path.suffix == ".py" else path.name
        if name in ("__init__", "py", "__pycache__") or path.suffix not in (".py", ""):
            continue
        assert name in FLOORS, f"sipstack.{name} has no floor in DESIGN's layering"
