"""The packages import only downward (errors, registry and core at the bottom, the command line at the
top), and no module imports itself in a circle, inside a package or between packages.

Cycles are looked for among the imports a module runs when it is imported: its top-level statements
and class bodies, but not ``if TYPE_CHECKING:`` blocks (read by type checkers only) nor the bodies of
functions. An import inside a function runs when the function is called; that is how a module loads
what only some of its callers need (torch, JAX, the training engine from a read-back class) and it
is allowed. Importing ``a.b.c`` runs ``a/b/__init__`` too; that edge is not counted, as a package's
``__init__`` may re-export its modules.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "infovae"

# Lowest first. A module may import its own layer and those below it, never one above.
LAYERS = [
    ("infovae.errors", "infovae.registry", "infovae.files", "infovae.machine", "infovae.core"),
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


def _name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(ROOT.rglob("*.py"))
NAMES = {_name(path): path for path in MODULES}


def _imports(path):
    """Every module ``path`` names in an import, wherever the import is."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _is_type_checking(node):
    test = node.test
    name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
    return name == "TYPE_CHECKING"


def _import_time_nodes(statements):
    """The import statements among ``statements`` that run when the module is imported."""
    for node in statements:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, (ast.Try, ast.With, ast.ClassDef, ast.For, ast.While)):
            for field in ("body", "orelse", "finalbody"):
                yield from _import_time_nodes(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                yield from _import_time_nodes(handler.body)


def _import_time_imports(module):
    """The library's modules that importing ``module`` imports (``from a import b``: ``a.b`` where that
    is a module, else ``a``)."""
    found = set()
    for node in _import_time_nodes(ast.parse(NAMES[module].read_text()).body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in NAMES else node.module for a in node.names}
    return {name for name in found if name in NAMES and name != module}


GRAPH = {module: _import_time_imports(module) for module in NAMES}


def _cycle(graph):
    """One cycle of ``graph`` (a list of nodes, the first repeated at the end), or ``None``."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if state.get(other) == "open":
                return stack[stack.index(other) :] + [other]
            if other not in state and (found := visit(other)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package_of(module):
    """A module's package: ``infovae.training`` for ``infovae.training.loop``, a package's ``__init__``
    its own package, and a top-level module (``infovae.api``) itself."""
    if NAMES[module].name == "__init__.py" or module.count(".") == 1:
        return module
    return module.rsplit(".", 1)[0]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_go_downward(path):
    module = _name(path)
    rank, package = _package(module)
    for imported in _imports(path):
        if not imported.startswith("infovae"):
            continue
        other_rank, other_package = _package(imported)
        assert other_rank <= rank, f"{module} imports {imported}, a layer above it"
        for a, b in APART:
            assert {package, other_package} != {a, b}, f"{module} imports {imported}: {a} and {b} stay apart"


def test_no_module_imports_itself_through_others():
    cycle = _cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_package_imports_itself_through_others():
    packages = {}
    for module, imported in GRAPH.items():
        edges = packages.setdefault(_package_of(module), set())
        edges |= {_package_of(other) for other in imported} - {_package_of(module)}
    cycle = _cycle(packages)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    # The graph holds module-level imports and leaves out those inside functions.
    assert "infovae.registry" in GRAPH["infovae.core.marginals"]
    lazy = [m for m in _imports(NAMES["infovae.training.runs"]) if m.startswith("infovae.training.loop")]
    assert lazy and not set(lazy) & GRAPH["infovae.training.runs"]
