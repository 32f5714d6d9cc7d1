"""The layer table of docs/architecture.md holds for every import of the package, and modules import no cycle.

Every ``import``/``from ... import`` of ``emseg_plugins`` modules counts, function-level ones included.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "emseg_plugins"
DOC = ROOT / "docs" / "architecture.md"

# (importer, imported) pairs that break the table today, each with its reason; their owners remove them.
ALLOWED: set[tuple[str, str]] = set()  # (importer, imported) pairs excused from the rules, each with its reason


def modules() -> dict[str, Path]:
    """``{"emseg_plugins.engine.run": path, ...}``; a package is its ``__init__.py``."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (``from pkg import submodule`` counts as the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {t for t in targets if t in known and t != name}


HEADER = "| layer | entries | within the layer | job |"


def layer_table() -> tuple[dict[str, int], set[int]]:
    """(``{entry: layer}``, the layers whose entries may import each other) from docs/architecture.md."""
    text = DOC.read_text()
    table = text[text.index(HEADER):].split("\n\n")[0]
    layers, open_layers = {}, set()
    for row in table.splitlines()[2:]:
        layer, entries, within, _ = (c.strip() for c in row.strip("|").split("|", 3))
        layers.update({entry: int(layer) for entry in re.findall(r"`([\w.]+)`", entries)})
        if within == "yes":
            open_layers.add(int(layer))
    return layers, open_layers


def entry_of(module: str, layers: dict[str, int]) -> str:
    """The table entry a module belongs to: the longest entry that is the module or one of its packages."""
    short = module.removeprefix("emseg_plugins.") if module != "emseg_plugins" else module
    candidates = [e for e in layers if short == e or short.startswith(e + ".")]
    assert candidates, f"{module} is in no row of the layer table in {DOC}; add its package there"
    return max(candidates, key=len)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_import_of_a_higher_layer_or_a_sibling():
    layers, open_layers = layer_table()
    wrong = []
    for importer, targets in graph().items():
        mine = entry_of(importer, layers)
        for target in sorted(targets):
            theirs = entry_of(target, layers)
            higher = layers[theirs] > layers[mine]
            sibling = layers[theirs] == layers[mine] and theirs != mine and layers[mine] not in open_layers
            if (higher or sibling) and (importer, target) not in ALLOWED:
                wrong.append(f"{importer} (layer {layers[mine]}, {mine}) imports {target} (layer {layers[theirs]}, {theirs})")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_no_import_cycle():
    edges = {m: {t for t in ts if (m, t) not in ALLOWED} for m, ts in graph().items()}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_every_allowed_exception_still_exists():
    g = graph()
    stale = [pair for pair in ALLOWED if pair[1] not in g.get(pair[0], set())]
    assert not stale, f"remove from ALLOWED (fixed): {stale}"
