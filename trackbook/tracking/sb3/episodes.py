"""Episodes: :class:`EpisodeCallback` logs each finished episode's reward and length."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

from stable_baselines3.common.callbacks import BaseCallback

from trackbook import layout as L
from trackbook.tracking.sb3.run import RunLog, as_run_log

if TYPE_CHECKING:
    from trackbook.tracking.base import Tracker


class EpisodeCallback(BaseCallback):
    """Logs ``rollout/episode_reward`` and ``rollout/episode_length`` of finished episodes.

    Episodes are read from the ``episode`` entry a ``Monitor``-wrapped environment
    puts in ``infos`` (an env without a ``Monitor`` logs none).

    Example:
        >>> model.learn(10_000, callback=EpisodeCallback(tracker, log_interval=100))   # doctest: +SKIP

    Args:
        run: a :class:`Tracker` with a run open, or the :class:`RunLog` the parts share.
        log_interval: write every this many calls of ``_on_step``. 1 (the default)
            logs every episode at the step it ended; N > 1 logs, every N calls, the
            mean reward and mean length of the episodes that ended since the last
            write (at training end the rest), so a long training writes at most one
            point per N calls. Like the trading stack's ``log_interval``: it thins
            per-step logging; SB3's own dumps follow ``learn(log_interval=...)``.
        verbose: SB3's verbosity.
    """

    def __init__(self, run: Tracker | RunLog, *, log_interval: int = 1, verbose: int = 0) -> None:
        super().__init__(verbose)
        if not isinstance(log_interval, numbers.Integral) or isinstance(log_interval, bool) or log_interval < 1:
            raise ValueError(
                f"log_interval={log_interval!r} counts calls of _on_step; pass an int >= 1 (1: every episode)."
            )
        self.run_log = as_run_log(run)
        self.log_interval = log_interval
        #: Episodes that ended during training (all counted, whether logged one by one or in means).
        self.episodes_logged = 0
        self._rewards: list[float] = []
        self._lengths: list[float] = []

    def _on_step(self) -> bool:
        ended = [info["episode"] for info in self.locals.get("infos", ())
                 if isinstance(info, dict) and info.get("episode") is not None]
        self.episodes_logged += len(ended)
        if self.log_interval == 1:
            step = self.run_log.step(self.model)
            for episode in ended:
                self.run_log.log({L.METRIC_EPISODE_REWARD: episode["r"], L.METRIC_EPISODE_LENGTH: episode["l"]}, step)
            return True
        self._rewards.extend(float(e["r"]) for e in ended)
        self._lengths.extend(float(e["l"]) for e in ended)
        if self.n_calls % self.log_interval == 0:
            self._write()
        return True

    def _on_training_end(self) -> None:
        self._write()

    def _write(self) -> None:
        if self._rewards:
            count = len(self._rewards)
            self.run_log.log({L.METRIC_EPISODE_REWARD: sum(self._rewards) / count,
                              L.METRIC_EPISODE_LENGTH: sum(self._lengths) / count}, self.run_log.step(self.model))
            self._rewards.clear()
            self._lengths.clear()
