"""The package's shape: no import cycles, one way to MLflow, every dependency declared."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bench"
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml", "surprise": "scikit-surprise"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_bench_has_no_import_cycle():
    assert _find_cycle(_graph()) is None


def _calls(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        func = getattr(node, "func", None) if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            found.add(f"{func.value.id}.{func.attr}")
    return found


@pytest.mark.parametrize(
    "call", ["mlflow.set_tracking_uri", "mlflow.start_run", "mlflow.set_experiment"]
)
def test_no_library_module_uses_mlflows_global_state(call):
    users = [p.name for p in PACKAGE.rglob("*.py") if call in _calls(p)]
    assert users == []


def test_the_matplotlib_backend_is_chosen_only_at_the_entry_point():
    users = [p.name for p in PACKAGE.rglob("*.py") if "matplotlib.use" in _calls(p)]
    assert users == ["cli.py"]


def test_every_third_party_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        req.split(">")[0].split("=")[0].split("[")[0].split("<")[0].strip().lower()
        for reqs in [project["dependencies"], *project["optional-dependencies"].values()]
        for req in reqs
    }
    declared |= {"mlflow-skinny"}  # part of mlflow
    roots = {name.split(".")[0] for p in PACKAGE.rglob("*.py") for name in _imports(p)}
    third_party = roots - set(sys.stdlib_module_names) - {"bench"}
    missing = {DISTRIBUTIONS.get(r, r) for r in third_party} - declared
    assert missing == set()
