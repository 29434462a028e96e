"""One-way imports between the project's packages, and no import cycles between its modules.

The layers, lowest first: ``persona_agents`` (the engine), ``domains`` (packs, screening, output
checks), ``graphs`` (the LangGraph agents and the apps on top of them), ``evals``. A module may
import its own layer and the layers below it, never one above. Every import counts: at module
level, inside functions (lazy imports), under ``TYPE_CHECKING`` and ``importlib.import_module``
calls with a literal name, because a lazy import still ties the lower layer to the upper one.

The module graph is read with ``ast`` from the source files, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS: tuple[str, ...] = ("persona_agents", "domains", "graphs", "evals")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported project module (a module or a package)
    where: str  # file:line, relative to the tree's root


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path) -> dict[str, Path]:
    """Every project module under ``root``: dotted name -> file."""
    modules = {}
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            modules[module_name(path, root)] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _named_modules(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement (or ``import_module("...")`` call) loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, module, is_package)
        for alias in node.names:
            yield f"{base}.{alias.name}"  # a submodule if one exists, else resolved to ``base`` below
    elif isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in {"import_module", "__import__"} and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module that ``name`` is or lies in (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def project_imports(root: Path = ROOT) -> list[Import]:
    modules = source_files(root)
    imports = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in sorted((n for n in ast.walk(tree) if hasattr(n, "lineno")), key=lambda n: n.lineno):
            for name in _named_modules(node, module, is_package):
                target = _resolve(name, modules)
                if target is not None and target != module:
                    imports.append(Import(module, target, f"{path.relative_to(root)}:{node.lineno}"))
    return imports


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def upward_imports(imports: list[Import]) -> list[Import]:
    """Imports from a lower layer up to a higher one."""
    return [imp for imp in imports if layer(imp.target) > layer(imp.source)]


def import_cycles(imports: list[Import]) -> list[list[Import]]:
    """One cycle per strongly connected component of the module graph (Tarjan), as its edges."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        graph.setdefault(imp.source, {}).setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)

    cycles = []
    for component in components:
        start = min(component)
        # breadth-first inside the component: the shortest way from ``start`` back to itself
        paths: dict[str, list[Import]] = {start: []}
        frontier = [start]
        found: list[Import] | None = None
        while frontier and found is None:
            following = []
            for node in frontier:
                for succ, imp in sorted(graph.get(node, {}).items()):
                    if succ == start:
                        found = [*paths[node], imp]
                        break
                    if succ in component and succ not in paths:
                        paths[succ] = [*paths[node], imp]
                        following.append(succ)
                if found is not None:
                    break
            frontier = following
        assert found is not None  # a strongly connected component always closes
        cycles.append(found)
    return cycles


def describe(cycle: list[Import]) -> str:
    return " -> ".join([cycle[0].source, *(f"{imp.target} ({imp.where})" for imp in cycle)])


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return project_imports()


def test_the_graph_is_read(imports: list[Import]) -> None:
    """The reader finds the imports it must, so the rules below are not vacuously true."""
    edges = {(imp.source, imp.target) for imp in imports}
    assert ("graphs.counseling_nodes", "domains.screening") in edges
    assert ("domains.text", "persona_agents.messages") in edges
    assert ("evals.bench", "evals.persona") in edges  # an import inside a function


@pytest.mark.parametrize("lower", LAYERS[:-1])
def test_no_import_from_a_lower_layer_up(imports: list[Import], lower: str) -> None:
    upward = [imp for imp in upward_imports(imports) if imp.source.split(".")[0] == lower]
    assert not upward, f"{lower} must not import {', '.join(LAYERS[LAYERS.index(lower) + 1:])}:\n" + "\n".join(
        f"{imp.where}: {imp.source} imports {imp.target}" for imp in upward
    )


def test_no_import_cycles(imports: list[Import]) -> None:
    cycles = import_cycles(imports)
    assert not cycles, "import cycles between project modules:\n" + "\n".join(describe(c) for c in cycles)


# --- the checker itself, on small trees written here -------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in LAYERS:
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return tmp_path


def test_checker_sees_a_lazy_upward_import(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "persona_agents/cli.py": "def main():\n    from graphs import apps\n    return apps\n",
        "graphs/apps.py": "import persona_agents.cli\n",
    })
    upward = upward_imports(project_imports(root))
    assert [(i.source, i.target, i.where) for i in upward] == [("persona_agents.cli", "graphs.apps", "persona_agents/cli.py:2")]


def test_checker_reports_the_cycle_path(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "domains/a.py": "from domains.b import f\n",
        "domains/b.py": "def f():\n    from . import c\n",
        "domains/c.py": "import importlib\nimportlib.import_module('domains.a')\n",
        "domains/d.py": "from domains import a\n",
    })
    cycles = import_cycles(project_imports(root))
    assert [[(i.source, i.target) for i in c] for c in cycles] == [
        [("domains.a", "domains.b"), ("domains.b", "domains.c"), ("domains.c", "domains.a")]
    ]
