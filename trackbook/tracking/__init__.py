"""Writing runs: trackers (MLflow, Aim), the stable-baselines3 callback, configs.

Example:
    >>> import trackbook as tb
    >>> cb = tb.TrackingCallback(tb.connect(), experiment="ppo-cartpole", eval_env=env, eval_freq=2000)  # doctest: +SKIP
    >>> model.learn(50_000, callback=cb)                                                                   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trackbook._uri import resolve_uri
from trackbook.tracking.base import HealthReport, Tracker

DEFAULT_MLFLOW_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: Any = None, backend: str | None = None) -> str:
    """The URI a tracker writes to, resolved as users of the seed scripts expect.

    A :class:`~trackbook.store.Store` object (anything with a ``uri`` attribute) is
    written to as given. Otherwise the backend is ``backend``, else
    ``$ML_TRACKING_BACKEND``, else the scheme of ``uri``, else ``mlflow``, and

    - MLflow: ``$MLFLOW_TRACKING_URI``, then ``uri``, then
      ``sqlite:///$ML_STORAGE_PATH/mlflow.db``, then ``sqlite:///mlflow.db`` here;
    - Aim: ``$AIM_REPO_PATH``, then ``uri``, then ``$ML_STORAGE_PATH/aim``, then ``./aim``.
    """
    if uri is not None and hasattr(uri, "uri"):
        return str(uri.uri)
    text = None if uri is None else os.fspath(uri)
    chosen = (backend or os.environ.get("ML_TRACKING_BACKEND") or "").lower()
    if not chosen:
        chosen = "aim" if text and text.startswith("aim://") else "mlflow"
    if chosen not in ("mlflow", "aim"):
        raise ValueError(f"Tracking backend {chosen!r} is not supported; use 'mlflow' or 'aim' (ML_TRACKING_BACKEND).")
    storage = os.environ.get("ML_STORAGE_PATH")
    if chosen == "aim":
        repo = os.environ.get("AIM_REPO_PATH") or text or (str(Path(storage) / "aim") if storage else "aim")
        return "aim://" + str(Path(repo[len("aim://") :] if repo.startswith("aim://") else repo).expanduser().resolve())
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if env_uri:
        return resolve_uri(env_uri)
    if text:
        return resolve_uri(text)
    if storage:
        Path(storage).mkdir(parents=True, exist_ok=True)
        return resolve_uri(f"sqlite:///{Path(storage) / 'mlflow.db'}")
    return resolve_uri(DEFAULT_MLFLOW_URI)


def default_experiment(experiment: str | None = None) -> str:
    """``experiment``, else ``$ML_EXPERIMENT_NAME``, else ``"default"``."""
    return experiment or os.environ.get("ML_EXPERIMENT_NAME") or "default"


def make_tracker(uri: Any = None, *, backend: str | None = None, offline: bool | None = None, **kwargs: Any) -> Tracker:
    """A tracker for the store named by ``uri`` (see :func:`resolve_tracking_uri`).

    ``offline=True`` (or ``$TRACKBOOK_OFFLINE=1``) writes the local journal only and
    reaches no store; ``trackbook sync`` delivers it later. Other keyword arguments
    go to :class:`~trackbook.tracking.base.Tracker`.
    """
    kwargs["offline"] = offline
    resolved = resolve_tracking_uri(uri, backend)
    if resolved.startswith("aim://"):
        from trackbook.tracking.aim import AimTracker

        return AimTracker(resolved, **kwargs)
    from trackbook.tracking.mlflow import MLflowTracker

    return MLflowTracker(resolved, **kwargs)


def health_check(uri: Any = None, *, backend: str | None = None) -> HealthReport:
    """Whether the tracking store is reachable and writable, with the problems found.

    Example:
        >>> report = health_check()        # doctest: +SKIP
        >>> report.ok, report.problems     # doctest: +SKIP
    """
    return make_tracker(uri, backend=backend).health_check()


def __getattr__(name: str):
    # The callback imports stable-baselines3; load it only when asked for.
    if name in ("TrackingCallback", "MLflowLoggingCallback", "continue_training"):
        from trackbook.tracking import callback

        return getattr(callback, name)
    if name in ("load_config", "config_to_params", "ExperimentConfig"):
        from trackbook.tracking import config

        return getattr(config, name)
    raise AttributeError(name)


__all__ = [
    "HealthReport",
    "MLflowLoggingCallback",
    "TrackingCallback",
    "Tracker",
    "continue_training",
    "default_experiment",
    "health_check",
    "load_config",
    "make_tracker",
    "resolve_tracking_uri",
]
