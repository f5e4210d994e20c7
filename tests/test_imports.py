"""The package's dependencies point one way: cli -> commands -> training -> inference -> data -> the shared modules
(README, Development). Checked on every import statement, the lazy ones inside functions included."""

from __future__ import annotations

import ast

from helpers import ROOT

PACKAGE = ROOT / "csas_cli"
LAYERS = {"shared": 0, "data": 1, "inference": 2, "training": 3, "commands": 4, "options": 5, "api": 5, "cli": 6,
          "package": 7}
"""csas_cli/__init__.py is the package's face: it re-exports the Python API (api.py), lazily."""


def layer(module: str) -> str:
    """`csas_cli.training.recipe` -> training; a top-level module (settings, registry, ...) is shared."""
    parts = module.split(".")[1:]
    if not parts:
        return "shared"
    if parts[0] in ("cli", "__main__"):
        return "cli"
    if parts[0] == "__init__":
        return "package"
    return parts[0] if parts[0] in LAYERS else "shared"


def imported(path, module: str) -> set[str]:
    """The csas_cli modules `path` imports (relative imports resolved against `module`)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            found.update(n for n in names if n.startswith("csas_cli"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("csas_cli"))
    return found


def test_imports_point_down_the_layers() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("csas_cli", *path.relative_to(PACKAGE).with_suffix("").parts))
        for target in imported(path, module):
            if LAYERS[layer(target)] > LAYERS[layer(module)]:
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_the_layer_check_sees_relative_and_lazy_imports() -> None:
    tree = PACKAGE / "training" / "recipe_setup.py"
    seen = imported(tree, "csas_cli.training.recipe_setup")
    assert "csas_cli.inference.generation" in seen and "csas_cli.training.loss" in seen  # the second one is lazy
    assert layer("csas_cli.settings") == "shared" and layer("csas_cli.commands.bench") == "commands"


MODULE_LINES = 500
"""The most lines a module of csas_cli holds: past it, a module has more than one job."""


def modules() -> dict[str, object]:
    """Every csas_cli module by its dotted name -> its path."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("csas_cli", *parts))
        found[name.removesuffix(".__init__")] = path
    return found


def module_graph() -> dict[str, set[str]]:
    """module -> the csas_cli modules it imports (a `from m import name` counts as importing m)."""
    known = modules()
    graph = {}
    for module, path in known.items():
        own = module if path.name != "__init__.py" else module + ".__init__"
        targets = {t if t in known else t.rpartition(".")[0] for t in imported(path, own)}
        graph[module] = {t for t in targets if t in known and t != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `graph`: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    assert circles(module_graph()) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_private_names_imported_across_modules() -> None:
    """A name with a leading underscore is its module's own: another module that needs it needs a public name."""
    borrowed = []
    for module, path in modules().items():
        own = module if path.name != "__init__.py" else module + ".__init__"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("csas_cli")):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        borrowed.append(f"{own}: from {'.' * node.level}{node.module or ''} import {alias.name}")
    assert borrowed == []


def test_commands_do_not_import_each_other() -> None:
    """A command's module holds that command; what two commands share lives in a lower layer."""
    graph = module_graph()
    crossing = [f"{m} imports {t}" for m, targets in graph.items() if m.startswith("csas_cli.commands.")
                for t in targets if t.startswith("csas_cli.commands.")]
    assert crossing == []


def test_modules_stay_small() -> None:
    big = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MODULE_LINES}
    assert big == {}
