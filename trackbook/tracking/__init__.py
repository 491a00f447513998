"""Writing runs: trackers (MLflow, Aim), the stable-baselines3 callback, configs.

Example:
    >>> import trackbook as tb
    >>> cb = tb.TrackingCallback(tb.connect(), experiment="ppo-cartpole", eval_env=env, eval_freq=2000)  # doctest: +SKIP
    >>> model.learn(50_000, callback=cb)                                                                   # doctest: +SKIP
"""

from __future__ import annotations

from trackbook._lazy import lazy_exports
from trackbook.tracking.base import HealthReport, Tracker
from trackbook.tracking.trackers import default_experiment, health_check, make_tracker

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        # the callback imports stable-baselines3, configs omegaconf
        "TrackingCallback": "trackbook.tracking.callback:TrackingCallback",
        "MLflowLoggingCallback": "trackbook.tracking.callback:MLflowLoggingCallback",
        "continue_training": "trackbook.tracking.callback:continue_training",
        "load_config": "trackbook.tracking.config:load_config",
        "config_to_params": "trackbook.tracking.config:config_to_params",
        "ExperimentConfig": "trackbook.tracking.config:ExperimentConfig",
    },
    globals(),
)


__all__ = ["HealthReport", "Tracker", "default_experiment", "health_check", "make_tracker"]
