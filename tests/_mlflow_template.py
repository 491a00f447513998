"""An empty MLflow sqlite store, its schema migrated once per machine and copied per test.

Creating a sqlite store runs MLflow's schema migrations (half a minute on a busy
machine); copying a migrated empty one takes milliseconds, which keeps the
store-level tests fast enough for the mutation run (scripts/mutation). Runs are still
written with MLflow's own client, in each test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


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
