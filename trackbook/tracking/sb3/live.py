"""The Prometheus feed: :class:`PrometheusCallback` serves a training's live ``rl_training_*`` metrics."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.callbacks import BaseCallback

from trackbook.tracking.sb3.run import RunLog, as_run_log

if TYPE_CHECKING:
    from trackbook.tracking.base import Tracker


class PrometheusCallback(BaseCallback):
    """Feeds what the run logs to the process's Prometheus exporter, started on demand.

    At training start it serves the ``rl_training_*`` families on ``host`` (127.0.0.1 unless told) at ``port``
    (0: a free one; a taken port warns and a free one is used), counts this training
    as started and hands every point the parts log to a
    :class:`~trackbook.tracking.prometheus.TrainingFeed`; the run's end counts it
    completed or failed. No exporter is no reason to stop training: it warns.

    Example:
        >>> live = PrometheusCallback(run.run_log, 8011)     # doctest: +SKIP
        >>> live.server.url                                  # doctest: +SKIP

    Args:
        run: the :class:`RunLog` whose points it exports: give the same one to the
            parts that log them. On a bare :class:`Tracker` it exports only that a
            training started, runs and ended.
        port: the port to serve on (0: a free one).
        host: the address to bind (default 127.0.0.1: only this machine can scrape).
        verbose: SB3's verbosity.
    """

    def __init__(self, run: Tracker | RunLog, port: int = 0, *, host: str | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.run_log = as_run_log(run)
        self.port = port
        self.host = host
        #: The exporter serving the metrics (set at training start).
        self.server: Any = None
        self.feed: Any = None

    def _on_training_start(self) -> None:
        from trackbook.tracking import prometheus

        try:
            self.server = prometheus.serve_or_fallback(self.port, host=self.host)
        except Exception as exc:  # noqa: BLE001 - no exporter is no reason to stop training
            warnings.warn(f"trackbook: Prometheus exporter not started: {exc}", RuntimeWarning, stacklevel=2)
            return
        self.feed = prometheus.TrainingFeed(prometheus.default_metrics(), type(self.model).__name__,
                                            run_id=self.run_log.run_id or "", start_step=self.run_log.step(self.model))
        self.feed.start()
        self.run_log.add_listener(self.feed)
        if self.run_log.tracker is not None:
            self.run_log.tracker.add_end_listener(self.feed.end)

    def _on_step(self) -> bool:
        return True
