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


def make_tracker(uri: StoreLike = None, *, backend: str | None = None, offline: bool | None = None,
                 **kwargs: Any) -> Tracker:
    """A tracker for the store named by ``uri``: the argument, else the environment,
    else ``sqlite:///mlflow.db`` here (:func:`trackbook._uri.resolve_uri`, the rule
    readers follow too).

    ``offline=True`` (or ``$TRACKBOOK_OFFLINE=1``) writes the local journal only and
    reaches no store (no sqlite file is created); ``trackbook sync`` delivers it later.
    Other keyword arguments go to :class:`~trackbook.tracking.base.Tracker`.

    Example:
        >>> with make_tracker("sqlite:///mlflow.db") as tracker:   # doctest: +SKIP
        ...     tracker.start_run("ppo-cartpole", params={"lr": 3e-4})

    Raises:
        ReadOnlyStore: the URI names a store trackbook only reads (``tensorboard://``).
    """
    from trackbook.tracking.sync import deliver_in_background

    resolved = check_writable(resolve_uri(uri, backend=backend))
    if resolved.startswith("aim://"):
        from trackbook.tracking.aim import AimTracker

        tracker: Tracker = AimTracker(resolved, offline=offline, **kwargs)
        tracker._old_journals = deliver_in_background
        return tracker
    from trackbook.tracking.base import offline_default
    from trackbook.tracking.mlflow import MLflowTracker

    kwargs["offline"] = offline
    offline_now = offline_default() if offline is None else offline
    if resolved.startswith("sqlite:///") and resolved != "sqlite:///:memory:" and not offline_now:
        Path(resolved[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)  # a writer creates its store
    tracker = MLflowTracker(resolved, **kwargs)
    tracker._old_journals = deliver_in_background  # the next tracker on a store delivers what earlier ones left
    return tracker


def health_check(uri: StoreLike = None, *, backend: str | None = None) -> HealthReport:
    """Whether the tracking store is reachable and writable, with the problems found.

    A store that cannot be opened or created (a sqlite path in a folder that cannot be
    made, say) is reported as a problem, not raised.

    Example:
        >>> report = health_check()        # doctest: +SKIP
        >>> report.ok, report.problems     # doctest: +SKIP
    """
    from trackbook._uri import redact_uri

    try:
        tracker = make_tracker(uri, backend=backend)
    except OSError as exc:
        resolved = resolve_uri(uri, backend=backend)
        return HealthReport(ok=False, backend="aim" if resolved.startswith("aim://") else "mlflow",
                            uri=redact_uri(resolved),
                            problems=[f"cannot create the store's folder ({exc.strerror or exc}: "
                                      f"{exc.filename or resolved}); pass a path you can write to"])
    return tracker.health_check()
