"""The import rules of the source tree, read from the code with `ast`:

* a module imports other packages at its top, never inside a function (an import hidden in a
  function is usually an import cycle left in place);
* the modules' top-level imports form no cycle;
* nor do the packages': every package imports only packages below it (the layers are drawn in
  docs/architecture.md).

A package is the first name under `marketplace_api` (`orders`, `payments`, ...; a top-level module
such as `db.py` is its own package).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
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

# Left in modules that other branches were restructuring when this test was written: remove each
# entry once its import has moved to the top of its module.
PENDING = {
    ("marketplace_api.payments.state", "marketplace_api.ledger"),
}


# Modules that another branch is moving out of the low packages they sit in (task registration,
# retention and the worker loop out of `jobs`; the reconcile job out of `webhooks`; the reports
# out of `ledger`; the HTTP idempotency dependency out of `idempotency`; `metrics`' import of the
# HTTP layer). Their imports stay out of the package graph until those moves land: then empty it.
INFRASTRUCTURE_PENDING = {
    "marketplace_api.jobs.tasks",
    "marketplace_api.jobs.retention",
    "marketplace_api.jobs.worker",
    "marketplace_api.webhooks.reconcile",
    "marketplace_api.webhooks.reconcile_kinds",
    "marketplace_api.webhooks.reconcile_objects",
    "marketplace_api.ledger.reports",
    "marketplace_api.ledger.schemas",
    "marketplace_api.idempotency.http",
    "marketplace_api.metrics",
}


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted((SOURCE / ROOT).rglob("*.py")):
        name = ".".join(path.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return modules


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


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
            if (module, _package(target)) in PENDING:
                continue
            found.append(f"{module}:{line} imports {target} inside a function")
    assert found == []


def test_top_level_imports_have_no_cycle() -> None:
    modules = _modules()
    graph = {name: _top_level_imports(name, tree, set(modules)) for name, tree in modules.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


def _package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the module imports that make the edge."""
    modules = _modules()
    graph: dict[str, dict[str, list[str]]] = {_package(name): {} for name in modules}
    for name, tree in modules.items():
        if name in INFRASTRUCTURE_PENDING:
            continue
        for target in sorted(_top_level_imports(name, tree, set(modules))):
            if _package(target) != _package(name):
                graph[_package(name)].setdefault(_package(target), []).append(
                    f"{name} imports {target}"
                )
    return graph


def _cycle_through(
    graph: dict[str, dict[str, list[str]]], start: str, group: set[str]
) -> list[str]:
    """A shortest cycle from `start` back to it inside `group` (a strongly connected component)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for package in frontier:
            for target in sorted(graph[package]):
                if target == start:
                    path = [start]
                    while package != start:
                        path.append(package)
                        package = came_from[package]
                    return [start, *reversed(path[1:]), start]
                if target in group and target not in came_from:
                    came_from[target] = package
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def test_packages_form_no_cycle() -> None:
    graph = _package_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def connect(package: str) -> None:  # Tarjan's strongly connected components
        index[package] = low[package] = len(index)
        stack.append(package)
        for target in sorted(graph[package]):
            if target not in index:
                connect(target)
                low[package] = min(low[package], low[target])
            elif target in stack:
                low[package] = min(low[package], index[target])
        if low[package] == index[package]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == package:
                    break
            components.append(component)

    for package in sorted(graph):
        if package not in index:
            connect(package)
    cycles = []
    for component in components:
        if len(component) > 1:
            cycle = _cycle_through(graph, min(component), component)
            edges = [
                f"  {source} -> {target}: {'; '.join(graph[source][target][:3])}"
                for source, target in itertools.pairwise(cycle)
            ]
            members = ", ".join(sorted(component))
            cycles.append("\n".join([f"{members} import each other, e.g.:", *edges]))
    assert cycles == [], "\n".join(cycles)
