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
    tree = PACKAGE / "training" / "recipe.py"
    seen = imported(tree, "csas_cli.training.recipe")
    assert "csas_cli.inference.generation" in seen and "csas_cli.training.loss" in seen  # the second one is lazy
    assert layer("csas_cli.settings") == "shared" and layer("csas_cli.commands.bench") == "commands"
