"""The SB3 logger bridge: :class:`SB3LoggerCallback` logs what stable-baselines3's own logger records."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from trackbook.tracking.sb3.run import RunLog, as_run_log

if TYPE_CHECKING:
    from trackbook.tracking.base import Tracker


class SB3LoggerCallback(BaseCallback):
    """Logs every number SB3's logger dumps (``rollout/ep_rew_mean``, ``train/loss``,
    ``time/fps``, ...) to the run, at the chain-wide step.

    It adds an output format to ``model.logger`` for the span of ``learn()``, so it
    gets exactly what SB3 dumps, when SB3 dumps it (for on-policy algorithms every
    ``log_interval`` iterations of ``learn()``; strings and videos are skipped).

    Example:
        >>> model.learn(10_000, callback=SB3LoggerCallback(tracker))   # doctest: +SKIP

    Args:
        run: a :class:`Tracker` with a run open, or the :class:`RunLog` the parts share.
        verbose: SB3's verbosity.
    """

    def __init__(self, run: Tracker | RunLog, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.run_log = as_run_log(run)
        self._writer: _Writer | None = None

    def _on_training_start(self) -> None:
        self.detach()
        self._writer = _Writer(self.run_log)
        self.model.logger.output_formats.append(self._writer)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.detach()

    def detach(self) -> None:
        """Stop receiving SB3's dumps (done at training end, and when ``learn()`` raised)."""
        model = getattr(self, "model", None)
        if self._writer is not None and model is not None:
            formats = model.logger.output_formats
            if self._writer in formats:
                formats.remove(self._writer)
        self._writer = None


class _Writer(KVWriter):
    def __init__(self, run_log: RunLog) -> None:
        self.run_log = run_log

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        numbersonly = {k: v for k, v in key_values.items() if isinstance(v, numbers.Real)}
        if numbersonly:
            self.run_log.log(numbersonly, int(step) + self.run_log.offset)

    def close(self) -> None:
        pass
