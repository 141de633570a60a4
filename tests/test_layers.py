"""The layering of ARCHITECTURE.md, read from the imports of every file under probe/ (ast, nothing imported).

A unit is a top-level module or subpackage of probe (``errors``, ``io``, ``maps``, ``field`` ...);
``__init__`` is the package's front door (``import probe``). A unit may import units of its own
or a lower layer, never a higher one, and units never import each other in a circle. Imports
under ``if TYPE_CHECKING:`` do not count; imports inside functions do (a lazy import is still
a dependency). Separately, no two modules import each other at import time.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PROBE = Path(__file__).resolve().parent.parent / "probe"

#: lowest first; keep in step with ARCHITECTURE.md
LAYERS = [
    ["errors"],
    ["files"],
    ["io", "config", "convert"],
    ["result"],
    ["images"],
    ["sparse"],
    ["data"],
    ["maps"],
    ["field"],
    ["train"],
    ["probes"],
    ["report"],
    ["__init__"],
    ["cli"],
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROBE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    return (PROBE.parent / rel).with_suffix(".py").is_file() or (PROBE.parent / rel / "__init__.py").is_file()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path):
    """(target module, line, at import time) for every probe import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try))
                                         for n in ast.walk(s)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            targets = [f"{root}.{a.name}" if _exists(f"{root}.{a.name}") else root for a in node.names]
        else:
            continue
        for target in targets:
            if target == "probe" or target.startswith("probe."):
                while target != "probe" and not _exists(target):
                    target = target.rpartition(".")[0]
                yield target, node.lineno, id(node) in top


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph():
    edges = defaultdict(list)  # (unit, unit) -> ["file:line", ...]
    modules = defaultdict(set)  # module -> modules imported at import time
    for path in sorted(PROBE.rglob("*.py")):
        source = _module_name(path)
        for target, line, at_import in _imports(path):
            if _unit(source) != _unit(target):
                edges[_unit(source), _unit(target)].append(f"{path.relative_to(PROBE.parent)}:{line}")
            if at_import and target != source:
                modules[source].add(target)
    return edges, modules


def _cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(p)) for p in PROBE.rglob("*.py")}
    assert units <= set(LEVEL), f"add {sorted(units - set(LEVEL))} to LAYERS and ARCHITECTURE.md"


def test_no_import_reaches_up_a_layer():
    edges, _ = _graph()
    bad = [f"{a} -> {b} ({', '.join(where[:3])}{' ...' if len(where) > 3 else ''})"
           for (a, b), where in sorted(edges.items()) if LEVEL.get(b, -1) > LEVEL.get(a, -1)]
    assert not bad, "imports against the layering of ARCHITECTURE.md:\n" + "\n".join(bad)


def test_units_form_no_circle():
    edges, _ = _graph()
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    assert not _cycles(graph), f"circles between units: {_cycles(graph)}"


def test_no_import_time_cycle_between_modules():
    _, modules = _graph()
    assert not _cycles(modules), f"modules importing each other at import time: {_cycles(modules)}"


def test_the_reader_sees_relative_and_lazy_imports(tmp_path):
    targets = {t for t, _, _ in _imports(PROBE / "io.py")}
    assert {"probe.errors", "probe.files"} <= targets
    assert _unit("probe.maps.base") == "maps" and _unit("probe") == "__init__"
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
