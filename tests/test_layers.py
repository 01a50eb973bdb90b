"""The package's shape stays true: no import circle among project modules, and every import points down.

Imports are read from the source (top-level and function-level alike; only `if TYPE_CHECKING:` blocks
are skipped, as they never run). An import reaches the module it names and, for the circle check,
the `__init__` of every package above that module which Python runs first (all but the packages
the importer itself sits in, which are already running): a circle through another package's
`__init__` fails at import time in a fresh process (a Ray worker unpickling a class, say) even when
the usual import order happens to work. The layers below are the pipeline of docs/ARCHITECTURE.md,
bottom first: a module may import its own layer or any layer below it, never one above.
"""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGES = ("nas", "trackers")

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("nas", "nas.errors", "nas.io", "nas.progress", "nas.argtypes", "nas.procs", "nas.raytools",
              "nas.raytrain", "nas.tb")),
    ("dsl", ("nas.dsl.grammar", "nas.dsl.reader")),
    ("data", ("nas.data",)),
    ("ops", ("nas.ops",)),
    ("heads", ("nas.heads",)),
    ("space", ("nas.space",)),
    ("config", ("nas.config",)),
    ("models", ("trackers",)),  # subnet model, tracking pipelines, export format, the other trackers
    ("cost", ("nas.cost",)),
    ("supernet", ("nas.supernet",)),
    ("fitness", ("nas.fitness",)),
    ("train", ("nas.train",)),
    ("search", ("nas.search",)),
    ("jobs", ("nas.jobs",)),
    ("cli", ("nas.commands", "nas.cli")),
]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(name: str, path: Path) -> set[str]:
    """Project modules `name` imports at run time."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    found.add(f"{base}.{alias.name}")
                elif base in MODULES:
                    found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    found.discard(name)
    return found


GRAPH = {name: _targets(name, path) for name, path in MODULES.items()}


def _with_package_inits(module: str, targets: set[str]) -> set[str]:
    """`targets` plus the packages above each one that are not already running for `module`."""
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    found = set(targets)
    for target in targets:
        parts = target.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts))} - own - {module}
    return found & set(MODULES)


RUNTIME_GRAPH = {name: _with_package_inits(name, targets) for name, targets in GRAPH.items()}


def layer_of(module: str) -> int:
    """Index of the layer whose most specific prefix matches `module`."""
    best, length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_imports_only_point_down():
    upward = sorted(f"{src} ({LAYERS[layer_of(src)][0]}) -> {dst} ({LAYERS[layer_of(dst)][0]})"
                    for src, targets in GRAPH.items() for dst in targets if layer_of(dst) > layer_of(src))
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_circle():
    """Tarjan's strongly connected components: any component of more than one module is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(RUNTIME_GRAPH[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(RUNTIME_GRAPH):
        if module not in index:
            connect(module)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_walk_sees_real_edges():
    """The checks above are only as good as the graph: known imports must be in it."""
    assert "nas.heads" in GRAPH["nas.space.spec"]
    assert "trackers.lighttrack.model" in GRAPH["nas.supernet.supernet"]
    assert "nas.jobs.search" in GRAPH["nas.commands.search"]  # a function-level import
    assert "nas.ops.blocks" in GRAPH["nas.heads.tower"]
    assert "nas.space" in RUNTIME_GRAPH["nas.cost.table"]  # the package whose __init__ runs first
