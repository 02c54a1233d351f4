"""The house as drawn in docs/architecture.md: layers that import one way, a light core, one import for adapters.

Every import is read from the source (module level, inside functions and under ``TYPE_CHECKING`` alike), so a
type-only import against the direction fails here just as a runtime one would.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"

#: Lower layers first; a module may import its own layer and the layers before it. ``background`` and ``web``
#: share a rank: neither imports the other.
LAYERS = {"core": 0, "observe": 1, "stores": 2, "config": 3, "fetch": 4, "background": 5, "web": 5,
          "hosting": 6, "devkit": 7}
#: The modules directly in ``app/`` above every layer: the entry points and the public module.
TOP = {"__init__", "__main__", "cli", "sdk"}
TOP_RANK = 8
#: What the core may not import: it has no I/O and no web framework, and stays light for gunicorn's master.
HEAVY = {"requests", "flask", "werkzeug", "redis", "diskcache", "sqlite3", "socket", "websockets", "urllib3",
         "prometheus_client", "apscheduler", "gunicorn", "jsonschema_rs"}


def app_modules() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[str, int] | None:
    """``(layer, rank)`` of a module under ``app``; None for what is not pyea's."""
    parts = module.split(".")
    if parts[0] != "app":
        return None
    if len(parts) == 1 or parts[1] in TOP:
        return "top", TOP_RANK
    return (parts[1], LAYERS[parts[1]]) if parts[1] in LAYERS else (parts[1], -1)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, with its line, wherever the import statement is. In a scaffold template
    the ``$placeholders`` are read as names."""
    tree = ast.parse(re.sub(r"\$\{?(\w+)\}?", r"\1", path.read_text()), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # ``from app import x`` where x is a module imports that module
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names
                      if (ROOT / Path(*f"{base}.{alias.name}".split("."))).with_suffix(".py").exists()]
    return found


def test_every_module_is_in_a_layer():
    homeless = [module_name(p) for p in app_modules() if layer_of(module_name(p))[1] < 0]
    assert not homeless, f"modules outside the layers (add them to a layer folder): {homeless}"


def test_imports_point_one_way():
    wrong = []
    for path in app_modules():
        own_layer, own_rank = layer_of(module_name(path))
        for line, target in imports_of(path):
            where = layer_of(target)
            if where is None or where[0] == own_layer:
                continue
            layer, rank = where
            if rank > own_rank or (rank == own_rank and layer != own_layer):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({own_layer}) imports {target} ({layer})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_circles_between_modules():
    graph = {module_name(p): {t for _, t in imports_of(p) if t.startswith("app.") and t != module_name(p)}
             for p in app_modules()}
    graph = {m: {t for t in targets if t in graph and not m.startswith(t + ".") and t != "app"}
             for m, targets in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*stack[stack.index(target):], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_core_does_no_io_and_imports_no_web_framework():
    heavy = [f"{p.relative_to(ROOT)}:{line} imports {target}"
             for p in (APP / "core").rglob("*.py") for line, target in imports_of(p)
             if target.split(".")[0] in HEAVY]
    assert not heavy, "the core must stay free of I/O and web libraries:\n" + "\n".join(heavy)


def author_files() -> list[Path]:
    adapters = [p for p in (ROOT / "adapters").rglob("*.py")]
    templates = list((APP / "devkit" / "templates").rglob("*.py.tmpl"))
    return adapters + templates


def test_adapters_and_templates_import_only_the_public_module():
    assert author_files()
    wrong = [f"{p.relative_to(ROOT)}:{line} imports {target}" for p in author_files()
             for line, target in imports_of(p) if target.startswith("app") and target != "app.sdk"]
    assert not wrong, "adapters use app.sdk only:\n" + "\n".join(wrong)


def test_the_public_module_exports_what_it_lists():
    sdk = importlib.import_module("app.sdk")
    missing = [name for name in sdk.__all__ if not hasattr(sdk, name)]
    assert not missing and len(set(sdk.__all__)) == len(sdk.__all__), missing


@pytest.mark.parametrize("layer", [*LAYERS, "core.transports"])
def test_every_layer_says_what_it_owns_and_may_import(layer):
    path = APP / Path(*layer.split(".")) / "__init__.py" if layer != "config" else APP / "config.py"
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc) > 80, f"{path.relative_to(ROOT)} needs a docstring saying what it owns"
    if layer in LAYERS and layer != "config":
        assert "May import" in doc, f"{path.relative_to(ROOT)}: say what the layer may import"


def test_the_house_stays_small():
    top = [p.name for p in APP.glob("*.py")]
    assert len(top) <= 12, f"{len(top)} modules directly in app/: {top}"
    large = [f"{p.relative_to(ROOT)}: {n} lines" for p in app_modules()
             if (n := len(p.read_text().splitlines())) > 400]
    assert not large, "modules over 400 lines (split them by concern):\n" + "\n".join(large)
