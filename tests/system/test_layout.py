"""The package's shape: layers imported in one direction, no cycles, one way to MLflow, every
dependency declared, a small top level."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "bench"
# import name -> distribution name, where they differ
DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "surprise": "scikit-surprise",
    "markdown_it": "markdown-it-py",
}


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


# The direction of imports, top to bottom (README, "What is where"): a module may import its
# own layer and the layers below it, never one above.
LAYERS = (
    ("cli",),
    ("benchmark",),
    ("sweep",),
    ("tracking",),
    ("training",),
    ("archs", "data", "datasets", "metrics"),
    ("errors", "files", "lazy", "locks", "signals", "verbosity", ""),  # process-wide; the package
)


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next(i for i, names in enumerate(LAYERS) if part in names)


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} -> {b}" for a, targets in graph.items() for b in targets if _layer(b) < _layer(a)
    )


def test_the_direction_check_finds_an_upward_import():
    graph = {"bench.training.train": {"bench.tracking.tracker"}, "bench.tracking.tracker": set()}
    assert _upward_imports(graph) == ["bench.training.train -> bench.tracking.tracker"]
    assert _upward_imports({"bench.cli.sweep": {"bench.sweep.study"}}) == []


def test_imports_go_down_the_layers_only():
    assert _upward_imports(_graph()) == []


def test_nothing_below_the_command_line_imports_argparse():
    users = [
        _module_name(p)
        for p in PACKAGE.rglob("*.py")
        if "argparse" in _imports(p) and not _module_name(p).startswith("bench.cli")
    ]
    assert users == []


def test_the_package_never_reaches_into_the_checkout():
    """No path into studies/ (a non-editable install has none): the scripts pass their files."""
    reach = re.compile(r"""(/ *["']studies["'])|(["']studies["'] */)|(["']studies/)""")
    readers = [_module_name(p) for p in PACKAGE.rglob("*.py") if reach.search(_code(p))]
    assert readers == []


def _code(path: Path) -> str:
    """The file without its docstrings and comments' text (strings in code stay)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            body[0] = ast.Pass()
    return ast.unparse(tree)


def test_the_top_level_is_small_and_no_module_is_long():
    top = [p.name for p in PACKAGE.iterdir() if p.suffix == ".py"]
    assert len(top) <= 8, top
    long = {
        _module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 350
    }
    assert long == {}


def test_every_subpackage_says_what_it_is_for():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and not doc.startswith("TODO"), init


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
    users = [_module_name(p) for p in PACKAGE.rglob("*.py") if call in _calls(p)]
    assert users == []


def test_the_matplotlib_backend_is_chosen_only_at_the_entry_point():
    users = [_module_name(p) for p in PACKAGE.rglob("*.py") if "matplotlib.use" in _calls(p)]
    assert users == ["bench.cli"]


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
