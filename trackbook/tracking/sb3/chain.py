"""Chain offsets: :class:`ChainCallback` makes a continued training read as one curve with its base."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stable_baselines3.common.callbacks import BaseCallback

from trackbook import columns as C
from trackbook import layout as L
from trackbook.tracking.sb3.run import RunLog, as_run_log

if TYPE_CHECKING:
    from trackbook.tracking._types import RunReader
    from trackbook.tracking.base import Tracker


class ChainCallback(BaseCallback):
    """Offsets every step of a continued training by the timesteps of the chain before it.

    At training start it sets the offset of ``run`` so that the steps logged go on
    where the base run ended, whether SB3 restarts its counter
    (``reset_num_timesteps=True``) or keeps the loaded model's; tags the run
    ``base_model_run_id`` and logs ``previous_timesteps`` at that step. Put it right
    after the :class:`RunCallback` whose ``run_log`` it is given.

    Example:
        >>> run = RunCallback(store, experiment="ppo")                                  # doctest: +SKIP
        >>> chain = ChainCallback(run.run_log, base_run_id=base_id, store=store)        # doctest: +SKIP
        >>> model.learn(20_000, callback=[run, chain, EpisodeCallback(run.run_log)])     # doctest: +SKIP

    Args:
        run: the run to offset: the :class:`RunLog` the other parts share, or a
            :class:`Tracker` with a run open.
        base_run_id: the run this training continues.
        previous_timesteps: timesteps of the chain before this run; when None, the
            base run's ``total_timesteps`` read from ``store``, else 0.
        store: the Store to read the base run from.
        verbose: SB3's verbosity.
    """

    def __init__(
        self,
        run: Tracker | RunLog,
        *,
        base_run_id: str | None = None,
        previous_timesteps: int | None = None,
        store: RunReader | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.run_log = as_run_log(run)
        self.base_run_id = base_run_id
        self.previous_timesteps = previous_timesteps
        self.store = store

    @property
    def offset(self) -> int:
        return self.run_log.offset

    def _on_training_start(self) -> None:
        previous = self._previous_timesteps()
        # Global step = chain timesteps before this run + timesteps trained in it. SB3 restarts
        # num_timesteps at 0, or keeps the loaded model's count with reset_num_timesteps=False.
        self.run_log.offset = previous - int(self.model.num_timesteps)
        if self.base_run_id and self.run_log.tracker is not None:
            self.run_log.tracker.set_tags({L.TAG_BASE_RUN: self.base_run_id})
        if self.base_run_id or previous:
            self.run_log.log({L.METRIC_PREVIOUS_TIMESTEPS: previous}, previous)

    def _on_step(self) -> bool:
        return True

    def _previous_timesteps(self) -> int:
        if self.previous_timesteps is not None:
            return int(self.previous_timesteps)
        if self.base_run_id and hasattr(self.store, "run"):
            total = self.store.run(self.base_run_id).get(C.METRICS_PREFIX + L.METRIC_TOTAL_TIMESTEPS)
            if total is not None:
                return int(total)
        return 0
