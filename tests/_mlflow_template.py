"""An empty MLflow sqlite store, its schema migrated once per machine and copied per test;
read-only stores written once a process.

Creating a sqlite store runs MLflow's schema migrations (half a minute on a busy
machine); copying a migrated empty one takes milliseconds, which keeps the
store-level tests fast enough for the mutation run (scripts/mutation). Runs are still
written with MLflow's own client, in each test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def empty_mlflow_db(target: Path) -> str:
    """Copy a migrated, empty MLflow sqlite store to ``target``; its ``sqlite:///`` URI."""
    import mlflow
    from mlflow.tracking import MlflowClient

    template = Path(tempfile.gettempdir()) / f"trackbook-tests-empty-mlflow-{mlflow.__version__}.db"
    if not template.exists():
        fd, building = tempfile.mkstemp(dir=template.parent, prefix=template.name, suffix=".building")
        os.close(fd)
        os.unlink(building)
        MlflowClient(f"sqlite:///{building}").search_experiments()
        os.replace(building, template)  # atomic: a concurrent test sees no half-built template
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


_WRITTEN: dict[str, tuple[Path, object]] = {}


def written_once(name: str, write: Callable[[str], T]) -> tuple[Path, T]:
    """A read-only sqlite store that ``write`` fills through MLflow's own client, written
    once a process: (its path, what ``write`` returned). The folder lives outside pytest's
    temporary folders, which each pytest session prunes, so the forks of a mutation run
    (each a pytest session) inherit the store instead of writing it again; ``write`` must
    use only MLflow, never the trackbook code being mutated. Removed when the process
    that wrote it exits."""
    if name not in _WRITTEN:
        folder = Path(tempfile.mkdtemp(prefix=f"trackbook-tests-{name}-"))
        atexit.register(_remove, folder, os.getpid())
        path = folder / "mlflow.db"
        _WRITTEN[name] = path, write(empty_mlflow_db(path))
    return _WRITTEN[name]  # type: ignore[return-value]


def _remove(folder: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)
