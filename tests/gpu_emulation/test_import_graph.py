"""gluonlite's modules import one way (``gluon/`` down to ``device.py``): no import cycles,
counting the imports inside functions (which hide a cycle until the first call).

Imports under ``if TYPE_CHECKING:`` are not counted: they never run, so they order no
module's loading; they only let a lower module name an upper class in its annotations
(``autograd.py`` names ``ndarray`` there; at run time the class registers itself with the
tape)."""

import ast
import functools
from pathlib import Path

import pytest

import gluonlite

PACKAGE = Path(gluonlite.__file__).parent
MODULES = sorted(
    ".".join(("gluonlite",) + p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(
        ".__init__"
    )
    for p in PACKAGE.rglob("*.py")
)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree``, functions' bodies included, except the bodies of
    ``if TYPE_CHECKING:`` (their ``else`` branches run, so they are walked)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _imports(module: str) -> set[str]:
    """gluonlite modules that ``module`` imports anywhere in its body (a package's
    ``__init__`` is not counted as imported by its own submodules)."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    is_package = path.is_dir()
    path = path / "__init__.py" if is_package else path.with_suffix(".py")
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                found.add(name)
    return found


@functools.lru_cache(maxsize=None)
def _graph() -> dict:
    return {m: _imports(m) for m in MODULES}


def _cycle(graph: dict) -> list | None:
    """One import cycle of ``graph`` as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


# The modules that issue 14 untangled (trainer<->kvstore, device<->_backend,
# checkpoint<->_mxnet_format) and the ones it added below them.
UNTANGLED = (
    "gluonlite.kvstore",
    "gluonlite.gluon.trainer",
    "gluonlite.device",
    "gluonlite._backend",
    "gluonlite.checkpoint",
    "gluonlite._mxnet_format",
    "gluonlite._collective",
    "gluonlite._fileformat",
    "gluonlite._cupy",
)


def _reaches(graph: dict, start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in graph[node]:
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


@pytest.mark.parametrize("module", UNTANGLED)
def test_no_import_cycle_passes_through(module):
    graph = _graph()
    assert not _reaches(graph, module, module), (
        f"{module} imports itself back: {' -> '.join(_cycle(graph) or [])}"
    )


def test_the_import_graph_has_no_cycles():
    graph = _graph()
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_type_checking_imports_are_not_counted_but_lazy_ones_are():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
        "def f():\n    import c\n"
    )
    names = {n.names[0].name for n in _runtime_nodes(tree) if isinstance(n, ast.Import)}
    assert names == {"b", "c"}


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
