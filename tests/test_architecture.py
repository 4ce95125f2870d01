"""The layout follows the data flow: no import cycles, nothing downstream imported upstream.

Every ``import`` of the three packages is read from the source (imports inside functions
included), so a lazy import cannot hide a cycle. docs/architecture.md draws the same map.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.fixtures.paths import REPO

PACKAGES = ("analysis", "taggers", "selections")

#: what each part may import from hepline (the data flow, top to bottom); a module's part
#: is its longest prefix in this table
ALLOWED: dict[str, set[str]] = {
    "analysis.core": set(),
    "analysis.io": {"analysis.core"},
    "analysis.ml": {"analysis.core"},
    "analysis.stats": {"analysis.core"},
    "analysis.plot": {"analysis.core", "analysis.stats"},
    "analysis.generation": {"analysis.core", "analysis.io"},
    "analysis.validation": {"analysis.core", "analysis.io", "analysis.plot"},
    "analysis.rule_benchmarks": set(),
    "analysis.cli": {"analysis.core", "analysis.io", "analysis.generation", "analysis.stats",
                     "analysis.plot", "analysis.validation", "analysis.rule_benchmarks"},
    "analysis": {"analysis.core"},  # analysis/__init__.py
    "taggers": {"analysis.core", "analysis.io", "analysis.ml", "analysis.stats", "analysis.plot",
                "analysis.generation", "analysis.cli"},
    # the HH selection runs on decorated ntuples, or applies the trained taggers itself
    "selections": {"analysis.core", "analysis.io", "analysis.ml", "analysis.stats", "analysis.plot",
                   "analysis.generation", "analysis.cli", "taggers"},
}
#: ``import analysis`` (the package's ``__init__``: its version) is allowed everywhere
ANYWHERE = {"analysis"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The hepline modules ``path`` imports (``from a.b import c`` counts a.b.c when that is
    a module, else a.b)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] in PACKAGES:
                found.add(name)
    return found


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _part(module: str) -> str:
    best = ""
    for part in ALLOWED:
        if (module == part or module.startswith(part + ".")) and len(part) > len(best):
            best = part
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_graph() -> dict[str, set[str]]:
    """Modules importing their own package's ``__init__`` are not a cycle; leave those edges out."""
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in GRAPH.items()}


def test_the_import_graph_was_read() -> None:
    assert len(MODULES) > 60
    assert "analysis.core.config" in GRAPH["analysis.io.runner"]


def test_there_are_no_import_cycles() -> None:
    assert _cycles(_package_graph()) == []


def test_a_cycle_would_be_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_data_flow(module: str) -> None:
    part = _part(module)
    assert part, f"{module} belongs to no part of the layout (tests/test_architecture.py ALLOWED)"
    wrong = sorted(d for d in GRAPH[module] - ANYWHERE if _part(d) != part and _part(d) not in ALLOWED[part])
    assert not wrong, f"{module} ({part}) imports {wrong}, downstream of it or outside its part"


def test_analysis_never_imports_taggers_or_selections() -> None:
    back = {m: sorted(d for d in deps if d.split(".")[0] != "analysis")
            for m, deps in GRAPH.items() if m.startswith("analysis")}
    assert {m: d for m, d in back.items() if d} == {}


def test_no_test_or_benchmark_code_in_the_packages() -> None:
    for name, path in MODULES.items():
        text = path.read_text()
        assert "import pytest" not in text and "from tests" not in text, name
    tools = ("fixtures", "bench_models", "ingest_benchmark", "benchmark", "hh_yybb_breakdown", "hh_yybb_scaling")
    assert [n for n in MODULES if n.rsplit(".", 1)[-1] in tools] == []
