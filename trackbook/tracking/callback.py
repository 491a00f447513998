"""The stable-baselines3 side in one line: :class:`TrackingCallback`, :func:`continue_training`.

``TrackingCallback`` is a ``CallbackList`` of the parts in :mod:`trackbook.tracking.sb3`
(one job each, each usable alone), built from one set of keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from trackbook import columns as C
from trackbook import layout as L
from trackbook.tracking import _lifecycle
from trackbook.tracking.base import Tracker
from trackbook.tracking.trackers import make_tracker
from trackbook.tracking.sb3 import (
    ChainCallback,
    EpisodeCallback,
    EvaluationCallback,
    ModelCheckpointCallback,
    PrometheusCallback,
    RunCallback,
    RunLog,
    SB3LoggerCallback,
)

if TYPE_CHECKING:
    from trackbook.tracking._types import RunReader, StoreLike


class TrackingCallback(CallbackList):
    """Logs a stable-baselines3 training to a store, as one run.

    What it logs: every metric SB3's logger records (``rollout/ep_rew_mean``,
    ``train/loss``, ``train/entropy_loss``, ``time/fps``, ...), each finished
    episode's reward and length (``rollout/episode_reward``, ``rollout/episode_length``,
    needs a ``Monitor``-wrapped env), periodic evaluation (``eval/mean_reward``,
    ``eval/std_reward``, ``eval/mean_ep_length``), checkpoints and the best model as
    artifacts, the final model (``model/model.zip``), ``total_timesteps`` at the end,
    the model's hyper-parameters and the config as params, and the environment
    (``env.*``, ``git.*`` tags, ``environment.json``). Steps are global timesteps: in a
    continued run (``base_run_id``/``previous_timesteps``) they go on from the base.

    It is a ``CallbackList`` of the parts of :mod:`trackbook.tracking.sb3`
    (:attr:`run`, :attr:`chain`, :attr:`sb3_logger`, and where asked for
    :attr:`episodes`, :attr:`evaluation`, :attr:`checkpoints`, :attr:`prometheus`),
    started in that order and ended in the reverse one. Pass it with your own
    callbacks (``callback=[cb, other]``); it never replaces them.

    Logging never stops training: a store that is down gets the writes later, and a
    config, param or metric that cannot be logged (no text, or a name no store takes)
    is left out with one warning.

    Example:
        >>> cb = TrackingCallback(tb.connect(), experiment="ppo-cartpole", eval_env=eval_env, eval_freq=2000)  # doctest: +SKIP
        >>> model.learn(50_000, callback=cb)     # doctest: +SKIP
        >>> cb.run_id, cb.best_model_path        # doctest: +SKIP

    Args:
        store: a Store, a tracking URI, or None (see ``trackbook._uri.resolve_uri``).
        experiment: experiment name (default ``$ML_EXPERIMENT_NAME``, else "default").
        experiment_name: the trading stack's name for ``experiment`` (give one of them).
        run_name: name of the run.
        tracker: an already built tracker to write through (instead of ``store``). If it
            has a run open (an HPO trial's), the callback logs into that run and leaves
            ending it to its owner.
        config: an experiment config logged as params (``section.key``) and
            ``config.yaml``: an OmegaConf config (``load_config``), a plain dict or a
            dataclass instance.
        params: extra params; tags: extra tags; parent_run_id: the study run.
        eval_env: environment to evaluate on; eval_freq: evaluate every this many calls
            of ``_on_step`` (0: never); n_eval_episodes; deterministic: greedy actions.
        save_freq: save a checkpoint every this many calls of ``_on_step`` (0: never).
        save_path: local folder for models (a temporary one if None).
        log_episodes: log finished episodes' reward and length.
        log_interval: write the episode metrics every this many calls of ``_on_step``:
            1 logs every episode at its step; N > 1 logs the mean reward and length of
            the episodes that ended in each N calls (the trading stack's meaning: log
            less often). SB3's own metrics follow ``learn(log_interval=...)``.
        base_run_id: the run whose model this training continues (tag ``base_model_run_id``).
        previous_timesteps: timesteps of the chain before this run; read from the
            base run's ``total_timesteps`` when a Store is given and this is None.
        prometheus_port: serve live ``rl_training_*`` metrics on 127.0.0.1 at this port
            (0: a free one); a taken port warns and a free one is used. See
            :mod:`trackbook.tracking.prometheus`.
        prometheus_host: the address the exporter binds (default 127.0.0.1; e.g. ``0.0.0.0``
            for a Prometheus in Docker, which scrapes from outside this machine's loopback).
        offline: journal only, reach no store (None: ``$TRACKBOOK_OFFLINE``); ``trackbook sync`` delivers it.
        verbose: SB3's verbosity.

    Raises:
        ValueError: a negative ``eval_freq``/``save_freq``, ``eval_freq`` without an
            ``eval_env``, ``log_interval`` below 1, or ``experiment`` and
            ``experiment_name`` that disagree.
    """

    def __init__(
        self,
        store: StoreLike = None,
        *,
        experiment: str | None = None,
        experiment_name: str | None = None,
        run_name: str | None = None,
        tracker: Tracker | None = None,
        config: Any = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        eval_env: Any = None,
        eval_freq: int = 0,
        n_eval_episodes: int = 5,
        deterministic: bool = True,
        save_freq: int = 0,
        save_path: str | Path | None = None,
        log_episodes: bool = True,
        log_interval: int = 1,
        base_run_id: str | None = None,
        previous_timesteps: int | None = None,
        prometheus_port: int | None = None,
        prometheus_host: str | None = None,
        offline: bool | None = None,
        verbose: int = 0,
    ) -> None:
        if eval_freq < 0 or save_freq < 0:
            raise ValueError("eval_freq and save_freq count calls of _on_step; pass 0 to turn one off, or a positive int.")
        if eval_freq and eval_env is None:
            raise ValueError(f"eval_freq={eval_freq} needs an eval_env to evaluate on.")
        if experiment and experiment_name and experiment != experiment_name:
            raise ValueError(
                f"experiment={experiment!r} and experiment_name={experiment_name!r} name different experiments; "
                f"experiment_name is the trading stack's spelling of experiment: give one of them."
            )
        self.store = store
        if offline is not None and tracker is None:  # offline: journal only (``trackbook sync`` delivers it)
            tracker = make_tracker(store, offline=offline)
        #: Opens the run, logs what it is, ends it; its ``run_log`` is what every part writes through.
        self.run = RunCallback(
            tracker if tracker is not None else store, experiment=experiment or experiment_name, run_name=run_name,
            config=config, params=params, tags=tags, parent_run_id=parent_run_id, save_path=save_path, verbose=verbose,
        )
        log = self.run.run_log
        self.chain = ChainCallback(log, base_run_id=base_run_id, previous_timesteps=previous_timesteps,
                                   store=store if hasattr(store, "run") else None, verbose=verbose)
        self.sb3_logger = SB3LoggerCallback(log, verbose=verbose)
        episodes = EpisodeCallback(log, log_interval=log_interval, verbose=verbose)
        self.episodes: EpisodeCallback | None = episodes if log_episodes else None
        self.evaluation: EvaluationCallback | None = (
            EvaluationCallback(log, eval_env, eval_freq, n_eval_episodes=n_eval_episodes, deterministic=deterministic,
                               verbose=verbose) if eval_freq else None
        )
        self.checkpoints: ModelCheckpointCallback | None = (
            ModelCheckpointCallback(log, save_freq, verbose=verbose) if save_freq else None
        )
        self.prometheus: PrometheusCallback | None = (
            PrometheusCallback(log, prometheus_port, host=prometheus_host, verbose=verbose)
            if prometheus_port is not None else None
        )
        parts: list[BaseCallback | None] = [self.run, self.chain, self.sb3_logger, self.episodes, self.evaluation,
                                            self.checkpoints, self.prometheus]
        super().__init__([p for p in parts if p is not None])
        self.verbose = verbose

    def _on_training_end(self) -> None:
        # The run ends last: the parts' final writes (pending episodes, SB3's last dump) go into it.
        for callback in reversed(self.callbacks):
            callback.on_training_end()

    # ----------------------------------------------------------------- properties

    @property
    def run_log(self) -> RunLog:
        return self.run.run_log

    @property
    def tracker(self) -> Tracker | None:
        return self.run.run_log.tracker

    @tracker.setter
    def tracker(self, tracker: Tracker | None) -> None:
        self.run.run_log.tracker = tracker

    @property
    def run_id(self) -> str | None:
        return self.run.run_id

    @property
    def experiment(self) -> str:
        return self.run.experiment

    @property
    def offset(self) -> int:
        return self.run.run_log.offset

    @property
    def global_step(self) -> int:
        """The chain-wide timestep: the model's own count plus the offset of this run."""
        return self.run.run_log.step(self.model)

    @property
    def save_path(self) -> Path | None:
        return self.run.run_log.save_path

    @property
    def best_mean_reward(self) -> float:
        return float("-inf") if self.evaluation is None else self.evaluation.best_mean_reward

    @property
    def best_model_path(self) -> str | None:
        return None if self.evaluation is None else self.evaluation.best_model_path

    @property
    def last_eval(self) -> dict[str, float]:
        return {} if self.evaluation is None else self.evaluation.last_eval

    @property
    def episodes_logged(self) -> int:
        return 0 if self.episodes is None else self.episodes.episodes_logged

    @property
    def prometheus_server(self) -> Any:
        """The exporter serving this training's live metrics (when ``prometheus_port`` is set)."""
        return None if self.prometheus is None else self.prometheus.server

    def add_listener(self, listener: Any) -> None:
        """Also hand every logged point to ``listener(metrics: dict, step: int)`` (live panels)."""
        self.run.run_log.add_listener(listener)

    # ----------------------------------------------------------------- ending

    def end_run(self, status: str) -> None:
        """End the run with ``status`` (learn() raised, for instance)."""
        self.sb3_logger.detach()
        self.run.end_run(status)

    def __enter__(self) -> TrackingCallback:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.end_run(_lifecycle.status_for(exc_type))


class MLflowLoggingCallback(TrackingCallback):
    """The trading stack's callback, kept for its users: a :class:`TrackingCallback` on MLflow.

    Args:
        experiment_name: experiment to log to.
        previous_timesteps: timesteps already trained in the chain (offsets every step).
        base_run_id: the run this training continues.
        tracking_uri: MLflow tracking URI (``$MLFLOW_TRACKING_URI`` still wins).
    """

    def __init__(
        self,
        experiment_name: str | None = None,
        run_name: str | None = None,
        previous_timesteps: int = 0,
        base_run_id: str | None = None,
        tracking_uri: str | None = None,
        verbose: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            tracking_uri, experiment=experiment_name, run_name=run_name, previous_timesteps=previous_timesteps,
            base_run_id=base_run_id, verbose=verbose, **kwargs,
        )


def load_model_of_run(store: RunReader, run_id: str, *, env: Any = None, artifact: str = L.MODEL_ARTIFACT,
                      **load_kwargs: Any) -> Any:
    """Load the stable-baselines3 model that run ``run_id`` logged (its final model by default).

    Example:
        >>> model = load_model_of_run(store, run_id, env=env)    # doctest: +SKIP

    Raises:
        ValueError: the run's ``algorithm`` param names no stable-baselines3 algorithm.
    """
    import stable_baselines3

    run = store.run(run_id)
    algorithm = str(run.get(C.PARAMS_PREFIX + L.PARAM_ALGORITHM, ""))
    cls = getattr(stable_baselines3, algorithm, None)
    if cls is None:
        raise ValueError(
            f"Run {run_id} has params.algorithm={algorithm!r}, not a stable-baselines3 algorithm; "
            f"load its model yourself from store.download_artifact(run_id, {artifact!r})."
        )
    local = store.download_artifact(run_id, artifact)
    return cls.load(str(local), env=env, **load_kwargs)


def continue_training(
    store: RunReader,
    base_run_id: str,
    env: Any,
    total_timesteps: int,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    reset_num_timesteps: bool = True,
    callback: Any = None,
    learn_kwargs: Mapping[str, Any] | None = None,
    **callback_kwargs: Any,
) -> tuple[Any, TrackingCallback]:
    """Continue the model of ``base_run_id`` for ``total_timesteps`` more, as a new chain link.

    Loads the base run's final model, starts a run tagged ``base_model_run_id`` in the
    base's experiment (unless told otherwise), logs ``previous_timesteps`` and offsets
    every step so the chain reads as one curve. ``reset_num_timesteps`` is passed to
    SB3's ``learn()``; steps are continuous either way. Your own ``callback`` (one or a
    list) runs beside the tracking one.

    Example:
        >>> model, cb = continue_training(store, cb.run_id, env, 20_000)   # doctest: +SKIP

    Returns:
        ``(model, callback)``; ``callback.run_id`` is the new run.
    """
    base = store.run(base_run_id)
    previous = base.get(C.METRICS_PREFIX + L.METRIC_TOTAL_TIMESTEPS)
    model = load_model_of_run(store, base_run_id, env=env)
    cb = TrackingCallback(
        store,
        experiment=experiment or base[C.EXPERIMENT],
        run_name=run_name,
        base_run_id=base_run_id,
        previous_timesteps=int(previous) if previous is not None else int(model.num_timesteps),
        **callback_kwargs,
    )
    callbacks = [cb] + (list(callback) if isinstance(callback, (list, tuple)) else [callback] if callback else [])
    with cb:
        model.learn(total_timesteps, callback=callbacks, reset_num_timesteps=reset_num_timesteps, **(learn_kwargs or {}))
    return model, cb
