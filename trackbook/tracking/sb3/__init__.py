"""The stable-baselines3 callbacks :class:`~trackbook.tracking.TrackingCallback` is made of.

Each is a small ``BaseCallback`` with one job, usable alone on a tracker with an open
run, or together through one :class:`RunLog` (which ``TrackingCallback`` builds):

- :class:`RunCallback`: opens (or joins) the run, logs params, config, tags and
  environment, the final model and ``total_timesteps``, and ends it;
- :class:`ChainCallback`: offsets the steps of a continued training;
- :class:`SB3LoggerCallback`: what SB3's logger records;
- :class:`EpisodeCallback`: each finished episode's reward and length;
- :class:`EvaluationCallback`: periodic evaluation and the best model;
- :class:`ModelCheckpointCallback`: checkpoints as artifacts;
- :class:`PrometheusCallback`: the live ``rl_training_*`` metrics.

Example:
    >>> tracker = make_tracker(tb.connect()); tracker.start_run("ppo")            # doctest: +SKIP
    >>> parts = [EpisodeCallback(tracker), ModelCheckpointCallback(tracker, 2000)]   # doctest: +SKIP
    >>> model.learn(10_000, callback=[*parts, my_callback])                        # doctest: +SKIP
    >>> tracker.end_run()                                                          # doctest: +SKIP
"""

from __future__ import annotations

from trackbook.tracking.sb3.chain import ChainCallback
from trackbook.tracking.sb3.checkpoints import ModelCheckpointCallback
from trackbook.tracking.sb3.episodes import EpisodeCallback
from trackbook.tracking.sb3.evaluation import EvaluationCallback
from trackbook.tracking.sb3.live import PrometheusCallback
from trackbook.tracking.sb3.logger import SB3LoggerCallback
from trackbook.tracking.sb3.run import RunCallback, RunLog

__all__ = [
    "ChainCallback",
    "EpisodeCallback",
    "EvaluationCallback",
    "ModelCheckpointCallback",
    "PrometheusCallback",
    "RunCallback",
    "RunLog",
    "SB3LoggerCallback",
]
