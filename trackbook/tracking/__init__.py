"""Writing runs: trackers (MLflow, Aim), the stable-baselines3 callback and its parts, configs.

Example:
    >>> import trackbook as tb
    >>> cb = tb.TrackingCallback(tb.connect(), experiment="ppo-cartpole", eval_env=env, eval_freq=2000)  # doctest: +SKIP
    >>> model.learn(50_000, callback=cb)                                                                   # doctest: +SKIP
"""

from __future__ import annotations

from trackbook._lazy import lazy_exports
from trackbook.tracking._types import StoreLike
from trackbook.tracking.base import HealthReport, Tracker
from trackbook.tracking.trackers import default_experiment, health_check, make_tracker

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        # the callbacks import stable-baselines3, configs omegaconf
        "TrackingCallback": "trackbook.tracking.callback:TrackingCallback",
        "MLflowLoggingCallback": "trackbook.tracking.callback:MLflowLoggingCallback",
        "continue_training": "trackbook.tracking.callback:continue_training",
        "load_model_of_run": "trackbook.tracking.callback:load_model_of_run",
        # the parts TrackingCallback is made of, each usable alone
        "RunLog": "trackbook.tracking.sb3.run:RunLog",
        "RunCallback": "trackbook.tracking.sb3.run:RunCallback",
        "ChainCallback": "trackbook.tracking.sb3.chain:ChainCallback",
        "SB3LoggerCallback": "trackbook.tracking.sb3.logger:SB3LoggerCallback",
        "EpisodeCallback": "trackbook.tracking.sb3.episodes:EpisodeCallback",
        "EvaluationCallback": "trackbook.tracking.sb3.evaluation:EvaluationCallback",
        "ModelCheckpointCallback": "trackbook.tracking.sb3.checkpoints:ModelCheckpointCallback",
        "PrometheusCallback": "trackbook.tracking.sb3.live:PrometheusCallback",
        "load_config": "trackbook.tracking.config:load_config",
        "config_to_params": "trackbook.tracking.config:config_to_params",
        "ExperimentConfig": "trackbook.tracking.config:ExperimentConfig",
    },
    globals(),
)


__all__ = ["HealthReport", "StoreLike", "Tracker", "default_experiment", "health_check", "make_tracker"]
