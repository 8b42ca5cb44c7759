"""The import layers (docs/architecture.md): notebooks -> docrestore.study -> the library.

The library (every module but ``docrestore.study`` and the command line ``docrestore.cli``, which
sits above both) never imports the study, and no module of the package takes part in an import
circle. Imports inside functions count: they run as soon as the function does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "docrestore"
STUDY = "docrestore.study"
ENTRY_POINTS = {"docrestore.cli"}  # above the study: the console script hands the study's estimate to the scheduler


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _imported(name: str, path: Path, node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """The package's modules an import statement names (a name imported from a package counts
    as its submodule when there is one, else as the package)."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        if node.level:
            here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    out = []
    for t in targets:
        while t not in modules and "." in t:
            t = t.rsplit(".", 1)[0]
        if t in modules and t != name:
            out.append(t)
    return out


def import_graph() -> dict[str, set[str]]:
    """{module: the package's modules it imports anywhere in its body}."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(_imported(name, path, node, modules))
        graph[name] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_study(name: str) -> bool:
    return name == STUDY or name.startswith(STUDY + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """The package's import graph, parsed once per worker (about 0.7 s of CPU each time)."""
    return import_graph()


def test_the_graph_sees_every_kind_of_import(graph):
    assert STUDY in graph and len(graph) > 50
    assert "docrestore.config" in graph["docrestore.study.benchmark"]  # from .. import config as C
    assert "docrestore.study.reuse" in graph["docrestore.study.benchmark"]  # from . import reuse as RU
    assert "docrestore.training.gan" in graph["docrestore.study.lines"]  # inside a function
    assert "docrestore.scheduler.runner" in graph["docrestore.cli"]


def test_no_library_module_imports_the_study(graph):
    wrong = sorted(f"{m} -> {d}" for m, deps in graph.items() if not _is_study(m) and m not in ENTRY_POINTS
                   for d in deps if _is_study(d))
    assert not wrong, ("the library must not import docrestore.study (it knows no recipe): "
                       + "; ".join(wrong) + ". Move what both need into the library, or hand it in as an argument")


def test_no_import_circle_in_the_package(graph):
    found = circles(graph)
    assert not found, "import circles (each a set of modules that import each other): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_circles_are_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_import_linter_keeps_the_contracts():
    """The same layers as pyproject.toml's [tool.importlinter] contracts, by the standard tool."""
    import shutil
    import subprocess
    import sys

    import pytest

    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (a dev dependency: uv sync)")
    out = subprocess.run([exe, "--no-cache"], cwd=SRC.parent, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout
