"""The package's imports follow the data flow that docs/ARCHITECTURE.md declares.

The layer table is read from ARCHITECTURE.md itself, so the document and the code cannot drift
apart: a module may import its own layer and the layers before it, never a later one, and no
two modules import each other, directly or through others (function-level and type-checking
imports count too: they are dependencies all the same).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "affecttrack"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"


def declared_layers() -> list[list[str]]:
    """The rows of the "Layers" table: each row's back-quoted packages and modules."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\|\s*\d+\s*\|", line)]
    return [re.findall(r"`([\w.]+)`", row.split("|")[2]) for row in rows]


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports, wherever in the file the import stands."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        # `from affecttrack.models import cnn` imports the module affecttrack.models.cnn.
        found |= {next(t for t in (target, target.rsplit(".", 1)[0]) if t in modules)
                  for target in targets if target.split(".")[0] == "affecttrack"
                  and (target in modules or target.rsplit(".", 1)[0] in modules)}
    return found - {name}


def layer_of(module: str, layers: list[list[str]]) -> int:
    """The layer whose entry is the longest prefix of `module` (`affecttrack.data.store` is in
    the layer of `data`; the package root in the layer naming `affecttrack`)."""
    best, depth = None, -1
    for level, entries in enumerate(layers):
        for entry in entries:
            dotted = "affecttrack" if entry == "affecttrack" else f"affecttrack.{entry}"
            if (module == dotted or module.startswith(dotted + ".")) and dotted.count(".") > depth:
                best, depth = level, dotted.count(".")
    if best is None:
        raise AssertionError(f"{module} is in no layer of docs/ARCHITECTURE.md's table")
    return best


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_architecture_declares_layers() -> None:
    layers = declared_layers()
    assert len(layers) >= 10
    assert ["data"] in layers and ["cli", "__main__"] in layers


def test_every_module_has_a_layer(graph) -> None:
    layers = declared_layers()
    for module in graph:
        layer_of(module, layers)


def test_imports_follow_the_flow(graph) -> None:
    layers = declared_layers()
    against = sorted(f"{module} (layer {layer_of(module, layers)}) imports {target} "
                     f"(layer {layer_of(target, layers)})"
                     for module, targets in graph.items() for target in targets
                     if layer_of(target, layers) > layer_of(module, layers))
    assert against == []


def test_no_import_cycles(graph) -> None:
    cycles = []
    state: dict[str, int] = {}   # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checker_sees_an_import_against_the_flow(tmp_path) -> None:
    """A data module importing training is caught (guards the checker itself)."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from affecttrack.training.frame import train_frame_model\n")
    found = imports_of("affecttrack.data.bad", module, module_names())
    assert found == {"affecttrack.training.frame"}
    assert layer_of("affecttrack.training.frame", declared_layers()) > layer_of(
        "affecttrack.data.bad", declared_layers())
