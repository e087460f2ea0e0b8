"""The layering rules of nas, checked: no import cycle among nas/ modules (function-level imports
included), and the torch-free layers stay torch-free when imported in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "nas"

#: The modules that must import without torch (spec and cost never import it; the search settings and
#: the backend-neutral trial sit above them and below evaluate).
TORCH_FREE = ("nas.spec", "nas.cost", "nas.space", "nas.reward", "nas.search.config", "nas.search.candidate",
              "nas.folders", "nas.memory", "nas.shipped")


def module_name(path: Path) -> str:
    """nas/search/run.py -> nas.search.run; nas/spec/__init__.py -> nas.spec."""
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def nas_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The nas modules ``name`` imports anywhere in its file (top level or inside a function).

    ``from PKG import x`` names the module PKG.x when that is a module, else PKG itself; a relative import
    counts from the module's package (a package's __init__ is its own package).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # import nas.search.run as r -> nas.search.run; x.y.attr -> x.y
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = nas_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, colouring the modules on the path)."""
    on_path: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        on_path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return on_path[on_path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        on_path.pop()
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_import_graph_reads_packages_relative_and_function_level_imports():
    graph = import_graph()
    assert "nas.search" in graph and "nas.evaluate" in graph  # packages are modules too
    assert "nas.search.candidate" in graph["nas.search.run"]  # from .candidate import Context
    assert "nas.reward" in graph["nas.search.candidate"]      # from .. import reward as reward_fns
    assert "nas.build" in graph["nas"]                         # a function-level import in build_model


def test_find_cycle_names_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_among_nas_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_torch_free_layers_import_without_torch():
    """...and without a search backend: nas.search loads its runner (and Optuna, Ray) on first use."""
    code = ("import sys\n"
            f"for name in {TORCH_FREE!r}:\n"
            "    __import__(name)\n"
            "    assert 'torch' not in sys.modules, name + ' imported torch'\n"
            "assert not {'nas.search.run', 'optuna', 'ray'} & set(sys.modules), 'nas.search imported a backend'\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=PACKAGE_ROOT.parent)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_no_module_outgrows_an_afternoons_read():
    """Issue 9: a module over ~400 lines is doing two jobs; split it by concern."""
    package = Path(__file__).resolve().parent.parent / "nas"
    long = {str(p.relative_to(package)): n for p in package.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert not long, long
