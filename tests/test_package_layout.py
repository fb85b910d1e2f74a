"""The package's shape: wings a newcomer can read from the tree, no import circle, modules that
fit in a reader's head. Every import counts, including those inside functions: a lazy import
hides a circle from Python, not from a reader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lsnotes"
MAX_LINES = 520  # "about 500": a module longer than this should be split


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports, resolved to the deepest module that exists
    (``from lsnotes.robustness import checklist`` is ``lsnotes.robustness.checklist``)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != here:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = {name: imported_modules(path, set(mods)) for name, path in mods.items()}
    # importing a submodule runs its packages' __init__ first, but a package importing its own
    # submodules is how it re-exports them, not a dependency of those submodules on it
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
    """Floor 0 imports no package module; each module sits one floor above its highest import."""
    memo: dict[str, int] = {}

    def floor(node):
        if node not in memo:
            memo[node] = 1 + max((floor(d) for d in graph[node]), default=-1)
        return memo[node]

    return {node: floor(node) for node in graph}


def test_there_is_no_import_circle():
    assert find_cycle(import_graph()) is None, " → ".join(find_cycle(import_graph()))


def wing_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph between wings: a subpackage (``lsnotes.zoo``) is one node, each flat
    module its own; an arrow for every import from one wing into another."""
    wing = lambda name: ".".join(name.split(".")[:2])  # noqa: E731
    wings: dict[str, set[str]] = {}
    for name, deps in graph.items():
        wings.setdefault(wing(name), set()).update(wing(d) for d in deps if wing(d) != wing(name))
    return wings


def test_the_wings_stand_on_each_other_without_a_circle():
    # Two modules in different wings importing each other's wing (zoo.cluster running the
    # engine's attacks, the engine auditing the zoo's models) is a circle a reader of the tree
    # meets even when no two files import each other.
    cycle = find_cycle(wing_graph(import_graph()))
    assert cycle is None, " → ".join(cycle)


def test_the_wing_graph_sees_a_circle_between_subpackages():
    graph = {"lsnotes.zoo.cluster": {"lsnotes.robustness.evaluate"}, "lsnotes.robustness.evaluate": set(),
             "lsnotes.robustness.book_models": {"lsnotes.zoo.book"}, "lsnotes.zoo.book": set()}
    assert find_cycle(graph) is None
    assert find_cycle(wing_graph(graph)) == ["lsnotes.robustness", "lsnotes.zoo", "lsnotes.robustness"]


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_and_lazy_imports_are_seen(tmp_path):
    known = {"lsnotes", "lsnotes.checks", "lsnotes.robustness", "lsnotes.robustness.checklist"}
    source = PACKAGE / "robustness" / "cli.py"
    found = imported_modules(source, known | {module_name(source)})
    assert "lsnotes.robustness.checklist" in found  # imported inside a function


@pytest.mark.parametrize("wing", ["attacks", "robustness", "zoo"])
def test_the_wings_are_subpackages(wing):
    assert (PACKAGE / wing / "__init__.py").is_file()
    assert not (PACKAGE / f"{wing}.py").exists()


def test_no_benchmark_lives_in_the_package():
    assert not any("gpu" in p.name or p.name.startswith("bench") for p in PACKAGE.rglob("*.py"))


def test_every_module_fits_in_a_readers_head():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
