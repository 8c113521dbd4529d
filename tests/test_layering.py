"""The packages import only downward: errors and core at the bottom, the command line at the top."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "infovae"

# Lowest first. A module may import its own layer and those below it, never one above.
LAYERS = [
    ("infovae.errors", "infovae.files", "infovae.core"),
    ("infovae.data",),
    ("infovae.models", "infovae.guides", "infovae.objectives", "infovae.numpyro"),
    ("infovae.diagnostics",),
    ("infovae.training",),
    ("infovae.sweeps",),
    ("infovae.reports",),
    ("infovae.api", "infovae.cli", "infovae.__main__", "infovae"),
]
# Within a layer some packages are side by side; these pairs must not import each other at all.
APART = [("infovae.core", "infovae.files"), ("infovae.models", "infovae.numpyro")]


def _package(module):
    for rank, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                return rank, prefix
    raise AssertionError(f"{module} is in no layer")


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


MODULES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_go_downward(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    rank, package = _package(module)
    for imported in _imports(path):
        if not imported.startswith("infovae"):
            continue
        other_rank, other_package = _package(imported)
        assert other_rank <= rank, f"{module} imports {imported}, a layer above it"
        for a, b in APART:
            assert {package, other_package} != {a, b}, f"{module} imports {imported}: {a} and {b} stay apart"
