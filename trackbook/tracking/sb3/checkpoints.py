"""Checkpoints: :class:`ModelCheckpointCallback` saves the model as an artifact every so often."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

from stable_baselines3.common.callbacks import BaseCallback

from trackbook import layout as L
from trackbook.tracking.sb3.run import RunLog, as_run_log

if TYPE_CHECKING:
    from trackbook.tracking.base import Tracker


class ModelCheckpointCallback(BaseCallback):
    """Saves the model every ``save_freq`` calls of ``_on_step`` as the artifact
    ``checkpoints/model_<step>_steps.zip`` (the step chain-wide). Like SB3's
    ``CheckpointCallback``, but each checkpoint also goes to the run.

    Example:
        >>> model.learn(50_000, callback=ModelCheckpointCallback(tracker, 10_000))   # doctest: +SKIP

    Args:
        run: a :class:`Tracker` with a run open, or the :class:`RunLog` the parts share
            (whose ``save_path`` is the local folder).
        save_freq: save every this many calls of ``_on_step`` (>= 1).
        verbose: SB3's verbosity (2 prints each checkpoint).
    """

    def __init__(self, run: Tracker | RunLog, save_freq: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        if not isinstance(save_freq, numbers.Integral) or save_freq < 1:
            raise ValueError(f"save_freq={save_freq!r} counts calls of _on_step; pass a positive int.")
        self.run_log = as_run_log(run)
        self.save_freq = save_freq

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            step = self.run_log.step(self.model)
            path = self.run_log.save_model(self.model, L.CHECKPOINT_DIR, L.CHECKPOINT_FILE.format(step=step))
            if path is not None and self.verbose >= 2:
                print(f"Saving model checkpoint to {path}")
        return True
