"""The layers contract of docs/architecture.md: imports only go downwards.

Each sampan module belongs to a layer; it may import modules of its own
package and of layers strictly below it.  Siblings (runtime, image,
network) never import each other.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2] / "sampan"

# Layer rank by top-level package; a module may import a strictly lower rank.
RANK = {
    "errors": 0,
    "_json": 0,
    "units": 0,
    "oci": 1,
    "linux": 2,
    "cgroups": 3,
    "runtime": 4,
    "image": 4,
    "network": 4,
    "engine": 5,
    "build": 6,
    "cluster": 6,
    "compose": 7,
    "api": 8,
    "cli": 9,
}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("sampan")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sampan":
                found += [(node.lineno, f"sampan.{a.name}") for a in node.names]
            elif node.module.startswith("sampan."):
                found.append((node.lineno, node.module))
    return found


def test_every_package_has_a_layer() -> None:
    for child in ROOT.iterdir():
        if child.name.startswith("__"):
            continue
        name = child.stem if child.suffix == ".py" else child.name
        assert name in RANK, f"sampan/{child.name} has no layer in this test and architecture.md"


def test_imports_follow_the_layers() -> None:
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts)
        own = _package(module)
        if own not in RANK:
            continue
        for line, target in _imports(path):
            other = _package(target)
            if other in ("", own) or other.startswith("__"):
                continue
            if RANK[other] >= RANK[own]:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {own} imports {target}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)
