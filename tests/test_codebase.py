"""The code base keeps its shape: lint-clean, and layers that only import downwards."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trackbook"

# DESIGN.md's layers, bottom first; a module may import its own layer or lower ones.
LAYERS = ["tracking", "store", "analysis", "plots", "reports", "widgets"]
# Documented doors upwards: Store.chain() builds an analysis.chains.Chain.
# Store's convenience doors (store.chain/chains/study/studies) into analysis, imported lazily.
ALLOWED_UPWARD = {
    ("store/base.py", "trackbook.analysis.chains"),
    ("store/base.py", "trackbook.analysis.studies"),
}


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
                if name.startswith(f"trackbook.{upper}") and (rel, name) not in ALLOWED_UPWARD:
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
