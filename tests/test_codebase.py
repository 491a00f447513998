"""The code base keeps its shape: lint-clean, and layers that only import downwards."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trackbook"

# DESIGN.md's layers, bottom first; a module may import its own layer or lower ones.
LAYERS = ["tracking", "store", "analysis", "plots", "reports", "widgets"]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", "trackbook", "tests", "benchmarks",
                           "data_fixtures", "scripts"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", [layer for layer in LAYERS if (PACKAGE / layer).is_dir()])
def test_layers_import_only_downwards(layer: str):
    folder = PACKAGE / layer
    above = LAYERS[LAYERS.index(layer) + 1 :]
    wrong = []
    for path in folder.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        for name in _imports(path):
            for upper in above:
                if name.startswith(f"trackbook.{upper}"):
                    wrong.append(f"{rel} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_only_store_and_tracking_import_mlflow_and_aim():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("store", "tracking") or rel.name == "_aim.py":
            continue
        for name in _imports(path):
            if name.split(".")[0] in ("mlflow", "aim"):
                wrong.append(f"{rel} imports {name}")
    assert not wrong, "\n".join(wrong)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


_LAZY_TARGET = re.compile(r"(trackbook(?:\.\w+)*)(?::\w+)?")


def _module_imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of trackbook that ``path`` imports: at the top, in functions, under
    ``TYPE_CHECKING`` and through lazy exports (the ``"trackbook.x:name"`` values of a
    module that calls ``lazy_exports``). ``from pkg import mod`` counts as importing
    ``pkg.mod`` when that is a module."""
    source = path.read_text()
    out = set()
    lazy = "lazy_exports(" in source
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in modules else node.module)
        elif lazy and isinstance(node, ast.Dict):
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    match = _LAZY_TARGET.fullmatch(value.value)
                    if match:
                        out.add(match.group(1))
    return {m for m in out if m in modules}


def import_cycles() -> list[list[str]]:
    """Cycles in the import graph of trackbook's modules (Tarjan's strongly connected components)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: _module_imports(p, set(paths)) - {m} for m, p in paths.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles():
    # A package's __init__ re-exporting its submodules is no cycle, unless one of them imports
    # the package back (import from the submodule that holds the name instead).
    assert import_cycles() == []


def test_a_missing_browser_fails_under_ci_and_skips_with_the_install_command_outside(tmp_path: Path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("from tests.browser import chromium_page\n\n"
                     "def test_page():\n    with chromium_page():\n        pass\n")
    bare_path = str(Path(sys.executable).parent)  # python and pytest, but no chromium on PATH
    results = {}
    for ci in ("true", ""):
        env = {"PATH": bare_path, "CI": ci, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(probe)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        results[ci] = (done.returncode, done.stdout)
    code, out = results["true"]
    assert code == 1 and "CI=true and Debian's chromium is missing: apt-get install chromium" in out, out
    code, out = results[""]
    assert code == 0 and "1 skipped" in out and "apt-get install chromium" in out, out
