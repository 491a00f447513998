"""Which tracker writes where: :func:`make_tracker`, :func:`health_check`, the default experiment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trackbook._uri import check_writable, resolve_uri
from trackbook.tracking._types import StoreLike
from trackbook.tracking.base import HealthReport, Tracker


def default_experiment(experiment: str | None = None) -> str:
    """``experiment``, else ``$ML_EXPERIMENT_NAME``, else ``"default"``."""
    return experiment or os.environ.get("ML_EXPERIMENT_NAME") or "default"


def make_tracker(uri: StoreLike = None, *, backend: str | None = None, **kwargs: Any) -> Tracker:
    """A tracker for the store named by ``uri``: the argument, else the environment,
    else ``sqlite:///mlflow.db`` here (:func:`trackbook._uri.resolve_uri`, the rule
    readers follow too).

    Example:
        >>> with make_tracker("sqlite:///mlflow.db") as tracker:   # doctest: +SKIP
        ...     tracker.start_run("ppo-cartpole", params={"lr": 3e-4})

    Raises:
        ReadOnlyStore: the URI names a store trackbook only reads (``tensorboard://``).
    """
    resolved = check_writable(resolve_uri(uri, backend=backend))
    if resolved.startswith("aim://"):
        from trackbook.tracking.aim import AimTracker

        return AimTracker(resolved, **kwargs)
    from trackbook.tracking.mlflow import MLflowTracker

    if resolved.startswith("sqlite:///") and resolved != "sqlite:///:memory:":
        Path(resolved[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)  # a writer creates its store
    return MLflowTracker(resolved, **kwargs)


def health_check(uri: StoreLike = None, *, backend: str | None = None) -> HealthReport:
    """Whether the tracking store is reachable and writable, with the problems found.

    Example:
        >>> report = health_check()        # doctest: +SKIP
        >>> report.ok, report.problems     # doctest: +SKIP
    """
    return make_tracker(uri, backend=backend).health_check()
