"""No import circle in hpo/: every module's imports of other hpo modules form a graph without
a cycle.

What counts as an import, and why:

* every ``import hpo.x`` and ``from hpo.x import y`` (and relative ones) anywhere in a module:
  at the top, inside a function (a lazy import), and under ``if TYPE_CHECKING:``. A lazy or
  type-only import does not fail at import time, but it is still a dependency: two modules
  that need each other are one room with two doors, whichever of them imports later;
* ``from hpo.analysis import report`` is an edge to the module ``hpo.analysis.report`` when
  ``report`` is a submodule, else to the package ``hpo.analysis`` (its ``__init__``);
* the parent packages that Python runs before a submodule are not edges: every module
  would depend on ``hpo/__init__.py`` and nothing could be told apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules(root: Path, package: str = "hpo") -> dict[str, Path]:
    """Every module and package under ``root/package``: dotted name -> file."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path], package: str = "hpo") -> set[str]:
    """The modules of ``known`` that module ``name`` (at ``path``) imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                # import hpo.a.b binds hpo, but what it needs is hpo.a.b (or its nearest module).
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target:
                    edges.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != package:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in known:
                    edges.add(submodule)
                elif source in known:
                    edges.add(source)
    edges.discard(name)
    return edges


def import_graph(root: Path = ROOT, package: str = "hpo") -> dict[str, set[str]]:
    known = modules(root, package)
    return {name: imports(name, path, known, package) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module, as a path that
    starts and ends at the same module (Tarjan's algorithm, iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return [_path_through(graph, c) for c in components]


def _path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle from the component's first module back to itself (breadth first)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"not a cycle: {sorted(component)}")


def test_no_import_cycle_in_hpo():
    found = cycles(import_graph())
    assert not found, "import cycles in hpo/ (lazy and type-only imports count):\n" + "\n".join(
        "  " + " -> ".join(c) for c in found)


def test_the_check_finds_a_cycle_through_a_lazy_import_and_a_package(tmp_path):
    """The check itself: it must see a function-level import, a type-only one, a relative one
    and ``from package import name`` resolved to the package or to a submodule."""
    pkg = tmp_path / "hpo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from hpo.sub import b\n")  # lazy, to a submodule
    (pkg / "sub" / "__init__.py").write_text("from .b import thing\n")  # relative
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hpo import a\n")
    (pkg / "c.py").write_text("from hpo.sub import thing\n")  # a name: the package itself
    graph = import_graph(tmp_path)
    assert graph == {"hpo": set(), "hpo.a": {"hpo.sub.b"}, "hpo.sub": {"hpo.sub.b"},
                     "hpo.sub.b": {"hpo.a"}, "hpo.c": {"hpo.sub"}}
    assert cycles(graph) == [["hpo.a", "hpo.sub.b", "hpo.a"]]
