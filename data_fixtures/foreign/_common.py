"""Helpers the foreign writers share: MLflow's fluent API pointed at one store for a while."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

BASE_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@contextlib.contextmanager
def fluent(tracking_uri: str) -> Iterator[None]:
    """Point ``mlflow``'s fluent API at ``tracking_uri``; put everything back afterwards.

    A writer run inside a test process must leave no active run, experiment or URI behind.
    """
    import mlflow
    from mlflow.tracking import fluent as _fluent
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
    # MLflow's own switch puts back the URI set before, None included (restoring what
    # get_tracking_uri() read would pin it, and $MLFLOW_TRACKING_URI be ignored after).
    with _use_tracking_uri(tracking_uri):
        try:
            yield
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _fluent._active_experiment_id = None


def experiment(client, name: str, artifact_root) -> str:
    """Create experiment ``name`` with its artifacts under ``artifact_root``; return its id."""
    location = (artifact_root / name).resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)
