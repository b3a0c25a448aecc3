"""The layout's one rule: a folder imports only the folders below it, and nothing imports in a circle.

Lowest first: ``core``, ``media``, ``scenarios``, ``protocols``, ``state``, ``recording``, ``inspector``;
the request path and the server (the modules at the top of the package) may import them all.
Imports under ``TYPE_CHECKING`` count too: a type is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mockserver

PACKAGE = Path(mockserver.__file__).parent
LAYERS = ("core", "media", "scenarios", "protocols", "state", "recording", "inspector")
TOP = len(LAYERS)


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every mockserver module ``path`` imports, as absolute names."""
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("mockserver"):
                continue
            for alias in node.names:  # ``from . import views``: a module, not a name
                sub = f"{target}.{alias.name}"
                out.add(sub if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                        else target)  # fmt: skip
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mockserver"))
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else TOP


GRAPH = {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_folder_says_what_lives_there_and_what_it_may_import() -> None:
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc, f"mockserver/{layer}/__init__.py has no docstring"
        assert "May import" in doc, f"mockserver/{layer}/__init__.py: say what it may import"


def test_lower_folders_never_import_upper_ones() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_circles() -> None:
    """Between modules: a circle means neither can be read (or loaded) without the other."""
    circles: list[str] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            circles.append(" -> ".join([*path[path.index(module) :], module]))
            return
        if module in done:
            return
        for target in sorted(GRAPH.get(module, ())):
            if target != "mockserver":  # the package's own __init__ re-exports; it is the top
                visit(target, [*path, module])
        done.add(module)

    for module in GRAPH:
        visit(module, [])
    assert circles == []
