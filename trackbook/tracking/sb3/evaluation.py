"""Evaluation and the best model: :class:`EvaluationCallback`."""

from __future__ import annotations

import numbers
import warnings
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.callbacks import BaseCallback

from trackbook import layout as L
from trackbook.tracking.sb3.run import RunLog, as_run_log

if TYPE_CHECKING:
    from trackbook.tracking.base import Tracker


class EvaluationCallback(BaseCallback):
    """Evaluates the policy every ``eval_freq`` calls of ``_on_step``; logs the results
    and keeps the best model.

    Logs ``eval/mean_reward``, ``eval/std_reward`` and ``eval/mean_ep_length``; when the
    mean reward is the best so far, ``eval/best_mean_reward`` and the model as the
    artifact ``best_model/model.zip``. Like SB3's ``EvalCallback``, but writing to the
    run instead of SB3's logger.

    Example:
        >>> ev = EvaluationCallback(tracker, eval_env, 2000, n_eval_episodes=5)   # doctest: +SKIP
        >>> model.learn(50_000, callback=ev); ev.best_mean_reward, ev.best_model_path  # doctest: +SKIP

    Args:
        run: a :class:`Tracker` with a run open, or the :class:`RunLog` the parts share.
        eval_env: the environment to evaluate on.
        eval_freq: evaluate every this many calls of ``_on_step`` (>= 1).
        n_eval_episodes: episodes per evaluation.
        deterministic: greedy actions.
        verbose: SB3's verbosity (1 prints each evaluation).
    """

    def __init__(
        self,
        run: Tracker | RunLog,
        eval_env: Any,
        eval_freq: int,
        *,
        n_eval_episodes: int = 5,
        deterministic: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if eval_env is None:
            raise ValueError(f"eval_freq={eval_freq} needs an eval_env to evaluate on.")
        if not isinstance(eval_freq, numbers.Integral) or eval_freq < 1:
            raise ValueError(f"eval_freq={eval_freq!r} counts calls of _on_step; pass a positive int.")
        self.run_log = as_run_log(run)
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.n_eval_episodes = n_eval_episodes
        self.deterministic = deterministic
        self.best_mean_reward = float("-inf")
        #: The local file of the best model so far (None before the first evaluation).
        self.best_model_path: str | None = None
        #: The metrics of the last evaluation.
        self.last_eval: dict[str, float] = {}

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq == 0:
            self.evaluate()
        return True

    def evaluate(self) -> dict[str, float]:
        """Evaluate now; log the results (and the model, if best) at the current step."""
        import numpy as np
        from stable_baselines3.common.evaluation import evaluate_policy

        step = self.run_log.step(self.model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "not wrapped with a Monitor": lengths are still right
            rewards, lengths = evaluate_policy(
                self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes,
                deterministic=self.deterministic, return_episode_rewards=True,
            )
        mean = float(np.mean(rewards))
        self.last_eval = {
            L.METRIC_EVAL_MEAN_REWARD: mean,
            L.METRIC_EVAL_STD_REWARD: float(np.std(rewards)),
            L.METRIC_EVAL_MEAN_EP_LENGTH: float(np.mean(lengths)),
        }
        if self.verbose >= 1:
            print(f"Eval at step {step}: mean reward {mean:.2f} +/- {self.last_eval[L.METRIC_EVAL_STD_REWARD]:.2f}")
        self.run_log.log(self.last_eval, step)
        if mean > self.best_mean_reward:
            self.best_mean_reward = mean
            path = self.run_log.save_model(self.model, L.BEST_MODEL_DIR)
            if path is not None:
                self.best_model_path = str(path)
            self.run_log.log({L.METRIC_EVAL_BEST_MEAN_REWARD: mean}, step)
        return self.last_eval
