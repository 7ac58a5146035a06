"""The import rules of the source tree, read from the code with `ast`:

* a module imports other packages at its top, never inside a function (an import hidden in a
  function is usually an import cycle left in place);
* the modules' top-level imports form no cycle.

A package is the first name under `marketplace_api` (`orders`, `payments`, ...; a top-level module
such as `db.py` is its own package).
"""

from __future__ import annotations

import ast
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
