"""The import rules of the source tree, read from the code with `ast`:

* a module imports other packages at its top, never inside a function (an import hidden in a
  function is usually an import cycle left in place);
* the modules' top-level imports form no cycle;
* neither do the packages': every package imports only packages below it (the layers are drawn
  in docs/architecture.md).

A package is the first name under `marketplace_api` (`orders`, `payments`, ...; a top-level module
such as `db.py` is its own package).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
ROOT = "marketplace_api"

# Function-level imports that stay, each for a reason of its own.
ALLOWED_LAZY = {
    # Each command loads only what it runs: `--help` or `migrate` do not load the web app.
    "marketplace_api.cli": None,
    # The Stripe simulator is a development tool: imported only when it is switched on.
    "marketplace_api.main": {"marketplace_api.stripe_simulator"},
}


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted((SOURCE / ROOT).rglob("*.py")):
        name = ".".join(path.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return modules


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _short(module: str) -> str:
    return module.removeprefix(f"{ROOT}.")


def _targets(node: ast.ImportFrom | ast.Import) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names if alias.name.startswith(ROOT))
    elif node.module and node.level == 0 and node.module.startswith(ROOT):
        if node.module == ROOT:
            yield from (f"{ROOT}.{alias.name}" for alias in node.names)
        else:
            yield node.module


def _function_imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    yield from ((node.lineno, target) for target in _targets(node))


def _top_level_imports(module: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The modules that importing `module` executes first (`if TYPE_CHECKING:` blocks excluded)."""
    imported: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        names = list(_targets(node))
        if isinstance(node, ast.ImportFrom) and node.module in known:
            # `from package import submodule` imports the submodule too.
            names += [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            for end in range(2, len(parts) + 1):
                prefix = ".".join(parts[:end])
                # A package's own parents are being imported already: not an edge.
                if prefix in known and not module.startswith(prefix + "."):
                    imported.add(prefix)
    imported.discard(module)
    return imported


def test_no_function_level_import_of_another_package() -> None:
    found = []
    for module, tree in _modules().items():
        for line, target in _function_imports(tree):
            if _package(target) == _package(module):
                continue
            allowed = ALLOWED_LAZY.get(module, set())
            if module in ALLOWED_LAZY and (allowed is None or _package(target) in allowed):
                continue
            found.append(f"{module}:{line} imports {target} inside a function")
    assert found == []


def _module_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _top_level_imports(name, tree, set(modules)) for name, tree in modules.items()}


def _package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> the packages it imports -> the module imports that make each edge."""
    graph: dict[str, dict[str, list[str]]] = {}
    for module, targets in sorted(_module_graph().items()):
        package = _short(_package(module))
        edges = graph.setdefault(package, {})
        for target in sorted(targets):
            if _package(target) != _package(module):
                edges.setdefault(_short(_package(target)), []).append(
                    f"{_short(module)} -> {_short(target)}"
                )
    return graph


def _cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle for each edge that leads back into the path a depth-first walk is on."""
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_top_level_imports_have_no_cycle() -> None:
    cycles = [" -> ".join(cycle) for cycle in _cycles(_module_graph())]
    assert cycles == []


def test_packages_form_no_cycle() -> None:
    graph = _package_graph()
    remaining = {package: list(targets) for package, targets in graph.items()}
    cycles = []
    for cycle in _cycles(remaining):
        # Each hop with one of the imports that make it, the most specific one.
        hops = [
            f"{max(graph[a][b], key=lambda imp: imp.count('.'))}"
            for a, b in itertools.pairwise(cycle)
        ]
        cycles.append(" -> ".join(cycle) + "  (" + "; ".join(hops) + ")")
    assert cycles == [], "\n".join(["package cycles:", *cycles])
