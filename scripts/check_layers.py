"""Check the layering of featgeom_tda: imports only point down, no import cycles, no foreign private modules.

Usage: ``python scripts/check_layers.py [src_root]`` (default: ``src`` next to this script's folder).
Every module under ``<src_root>/featgeom_tda`` is parsed with :mod:`ast`; all imports count (top level,
inside functions, under ``if TYPE_CHECKING:``), relative imports are resolved. Exit status 1 with one line
per violation, 0 when the tree is clean. Standard library only.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "featgeom_tda"

# The layer table: the first module-path prefix that matches a module gives its rank. Imports may only
# point to the same or a lower rank. The package root (the lazy public API, names mapped to modules as strings)
# is a layer of its own under the command line, which lists it in `featgeom info`.
LAYERS: tuple[tuple[str, str, int], ...] = (
    ("core", f"{PACKAGE}.core", 0),
    ("sources", f"{PACKAGE}.sources", 1),
    ("extraction", f"{PACKAGE}.extraction", 2),
    ("analyses", f"{PACKAGE}.analyses", 3),
    ("viz", f"{PACKAGE}.viz", 4),
    ("results", f"{PACKAGE}.results", 5),
    ("report", f"{PACKAGE}.report", 6),
    ("pipeline", f"{PACKAGE}.pipeline", 7),
    ("distributed", f"{PACKAGE}.distributed", 8),
    ("api", PACKAGE, 9),
    ("cli", f"{PACKAGE}.cli", 10),
)

# Private modules (``_name``) are for their own top-level package (``featgeom_tda.<name>``), except those
# of these layers, which are shared helpers of every layer (e.g. ``core._validation``).
SHARED_PRIVATE_LAYERS = frozenset({"core"})


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to a module of the package."""

    importer: str
    target: str
    line: int


def layer_of(module: str) -> tuple[str, int] | None:
    """(layer name, rank) of a package module, or None for a module outside the table."""
    for name, prefix, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return name, rank
    return None


def module_name(path: Path, src_root: Path) -> str:
    """Dotted module name of a file under ``src_root`` (``pkg/__init__.py`` -> ``pkg``)."""
    parts = list(path.relative_to(src_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(src_root: Path) -> dict[str, Path]:
    """Module name -> file of every module of the package."""
    root = src_root / PACKAGE
    return {module_name(p, src_root): p for p in sorted(root.rglob("*.py"))}


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of a package module by ``module`` (anywhere in its file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, is_package, node.level, node.module) if node.level else (node.module or "")
            )
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        elif isinstance(node, ast.Call) and _is_import_module_call(node):
            targets = [node.args[0].value]  # type: ignore[attr-defined]
        for name in targets:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _known(name, modules) or name
                if target != module:
                    found.append(Import(module, target, node.lineno))
    return found


def _is_import_module_call(node: ast.Call) -> bool:
    """``importlib.import_module("featgeom_tda...")`` with a literal string."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return (
        name == "import_module"
        and len(node.args) >= 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def _is_private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split("."))


def _top_package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def layer_violations(edges: list[Import]) -> list[str]:
    """Imports of a higher layer, and of another top-level package's private module (except core's)."""
    out = []
    for edge in edges:
        src, dst = layer_of(edge.importer), layer_of(edge.target)
        if src is None or dst is None:
            continue
        where = f"{edge.importer} (line {edge.line})"
        if dst[1] > src[1]:
            out.append(f"upward import: {where} [{src[0]}] imports {edge.target} [{dst[0]}]")
        if (
            dst[0] not in SHARED_PRIVATE_LAYERS
            and _is_private(edge.target)
            and _top_package(edge.target) != _top_package(edge.importer)
        ):
            out.append(f"private import: {where} imports {edge.target} of another package")
    return out


def find_cycles(edges: list[Import]) -> list[list[str]]:
    """Import cycles between modules: one cycle (first module repeated at the end) per strongly connected set."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                connect(v)
    finally:
        sys.setrecursionlimit(limit)
    return [_cycle_in(sorted(c), graph) for c in sorted(components)]


def _cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected set."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return component + [start]


def check(src_root: Path) -> list[str]:
    """All violations of the tree under ``src_root``, one line each."""
    modules = discover(src_root)
    if not modules:
        return [f"no modules of {PACKAGE} under {src_root}"]
    edges = [edge for name, path in modules.items() for edge in imports_of(name, path, modules)]
    problems = layer_violations(edges)
    problems += ["import cycle: " + " -> ".join(cycle) for cycle in find_cycles(edges)]
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    src_root = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "src"
    problems = check(src_root)
    for line in problems:
        sys.stdout.write(line + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
