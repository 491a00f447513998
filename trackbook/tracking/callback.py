"""The stable-baselines3 side: :class:`TrackingCallback` and :func:`continue_training`."""

from __future__ import annotations

import logging
import numbers
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from trackbook import columns as C
from trackbook import layout as L
from trackbook.tracking import _lifecycle
from trackbook.tracking.trackers import default_experiment, make_tracker
from trackbook.tracking.base import Tracker
from trackbook.tracking.environment import environment_info, environment_tags

_log = logging.getLogger("trackbook.tracking")

#: Artifact paths written by the callback and read by :func:`continue_training`.
MODEL_ARTIFACT = "model/model.zip"
BEST_MODEL_DIR = "best_model"
CHECKPOINT_DIR = "checkpoints"

_HYPERPARAMETERS = (
    "learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range", "clip_range_vf",
    "ent_coef", "vf_coef", "max_grad_norm", "use_sde", "normalize_advantage", "target_kl", "buffer_size",
    "learning_starts", "tau", "train_freq", "gradient_steps", "target_update_interval", "exploration_fraction",
    "exploration_initial_eps", "exploration_final_eps", "rms_prop_eps", "use_rms_prop", "seed", "n_envs",
)


class TrackingCallback(BaseCallback):
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

    Logging never stops training: a store that is down gets the writes later.

    Example:
        >>> cb = TrackingCallback(tb.connect(), experiment="ppo-cartpole", eval_env=eval_env, eval_freq=2000)  # doctest: +SKIP
        >>> model.learn(50_000, callback=cb)     # doctest: +SKIP
        >>> cb.run_id, cb.best_model_path        # doctest: +SKIP

    Args:
        store: a Store, a tracking URI, or None (see ``resolve_tracking_uri``).
        experiment: experiment name (default ``$ML_EXPERIMENT_NAME``, else "default").
        run_name: name of the run.
        tracker: an already built tracker to write through (instead of ``store``). If it
            has a run open (an HPO trial's), the callback logs into that run and leaves
            ending it to its owner.
        config: an experiment config (OmegaConf) logged as params and ``config.yaml``.
        params: extra params; tags: extra tags; parent_run_id: the study run.
        eval_env: environment to evaluate on; eval_freq: evaluate every this many calls
            of ``_on_step`` (0: never); n_eval_episodes; deterministic: greedy actions.
        save_freq: save a checkpoint every this many calls of ``_on_step`` (0: never).
        save_path: local folder for models (a temporary one if None).
        log_episodes: log each finished episode's reward and length.
        base_run_id: the run whose model this training continues (tag ``base_model_run_id``).
        previous_timesteps: timesteps of the chain before this run; read from the
            base run's ``total_timesteps`` when a Store is given and this is None.
        prometheus_port: serve live ``rl_training_*`` metrics on 127.0.0.1 at this port
            (0: a free one); a taken port warns and a free one is used. See
            :mod:`trackbook.tracking.prometheus`.
        offline: journal only, reach no store (``$TRACKBOOK_OFFLINE`` if None); ``trackbook sync`` delivers it.
        verbose: SB3's verbosity.
    """

    def __init__(
        self,
        store: Any = None,
        *,
        experiment: str | None = None,
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
        base_run_id: str | None = None,
        previous_timesteps: int | None = None,
        prometheus_port: int | None = None,
        offline: bool | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if eval_freq < 0 or save_freq < 0:
            raise ValueError("eval_freq and save_freq count calls of _on_step; pass 0 to turn one off, or a positive int.")
        if eval_freq and eval_env is None:
            raise ValueError(f"eval_freq={eval_freq} needs an eval_env to evaluate on.")
        self.store = store
        self.experiment = default_experiment(experiment)
        self.run_name = run_name
        self.tracker = tracker
        self.config = config
        self.extra_params = dict(params or {})
        self.extra_tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.n_eval_episodes = n_eval_episodes
        self.deterministic = deterministic
        self.save_freq = save_freq
        self.save_path = Path(save_path) if save_path else None
        self.log_episodes = log_episodes
        self.base_run_id = base_run_id
        self.previous_timesteps = previous_timesteps
        self.offset = 0
        self.best_mean_reward = float("-inf")
        self.best_model_path: str | None = None
        self.last_eval: dict[str, float] = {}
        self.episodes_logged = 0
        self._writer: _SB3Writer | None = None
        self._listeners: list[Any] = []
        self._owns_run = True
        self.prometheus_port = prometheus_port
        self.offline = offline
        #: The exporter serving this training's live metrics (when ``prometheus_port`` is set).
        self.prometheus_server: Any = None

    # ----------------------------------------------------------------- properties

    @property
    def run_id(self) -> str | None:
        return None if self.tracker is None else self.tracker.run_id

    @property
    def global_step(self) -> int:
        """The chain-wide timestep: the model's own count plus the offset of this run."""
        return int(self.model.num_timesteps) + self.offset

    def add_listener(self, listener: Any) -> None:
        """Also hand every logged point to ``listener(metrics: dict, step: int)`` (live panels)."""
        self._listeners.append(listener)

    # ---------------------------------------------------------------------- hooks

    def _on_training_start(self) -> None:
        if self.tracker is None:
            self.tracker = make_tracker(self.store, offline=self.offline)
        if self.save_path is None:
            self.save_path = Path(tempfile.mkdtemp(prefix="trackbook-run-"))
        self.save_path.mkdir(parents=True, exist_ok=True)
        previous = self._previous_timesteps()
        # Global step = chain timesteps before this run + timesteps trained in it. SB3 restarts
        # num_timesteps at 0, or keeps the loaded model's count with reset_num_timesteps=False.
        self.offset = previous - int(self.model.num_timesteps)
        tags = {**self.extra_tags, "algorithm": type(self.model).__name__}
        if self.base_run_id:
            tags[L.TAG_BASE_RUN] = self.base_run_id
        info = environment_info()
        tags.update(environment_tags(info))
        params = self._params()
        name = self.run_name or "-".join(
            str(x) for x in (params["algorithm"].lower(), params.get("env_id"), time.strftime("%Y%m%d-%H%M%S")) if x
        )
        # A tracker with a run already open (an HPO trial's) is joined, not replaced; its owner ends it.
        self._owns_run = not self.tracker.active
        if self._owns_run:
            self.tracker.start_run(
                self.experiment, name=name, params=params, tags=tags,
                parent_run_id=self.parent_run_id, wait=10.0,
            )
        else:
            self.tracker.log_params(params)
            self.tracker.set_tags(tags)
        self.tracker.log_dict(info, "environment.json")
        if self.config is not None:
            from trackbook.tracking.config import config_to_yaml

            self.tracker.log_text(config_to_yaml(self.config), "config.yaml")
        if self.base_run_id or previous:
            self._log({L.METRIC_PREVIOUS_TIMESTEPS: previous}, previous)
        self._writer = _SB3Writer(self)
        self.model.logger.output_formats.append(self._writer)
        _lifecycle.training_started(self.tracker)
        if self.prometheus_port is not None:
            self._start_prometheus(tags["algorithm"])

    def _start_prometheus(self, algorithm: str) -> None:
        from trackbook.tracking import prometheus

        try:
            self.prometheus_server = prometheus.serve_or_fallback(self.prometheus_port)
        except Exception as exc:  # noqa: BLE001 - no exporter is no reason to stop training
            warnings.warn(f"trackbook: Prometheus exporter not started: {exc}", RuntimeWarning, stacklevel=2)
            return
        feed = prometheus.TrainingFeed(prometheus.default_metrics(), algorithm, run_id=self.run_id or "",
                                       start_step=self.global_step)
        feed.start()
        self._listeners.append(feed)
        self.tracker.add_end_listener(feed.end)

    def _on_step(self) -> bool:
        step = self.global_step
        if self.log_episodes:
            for info in self.locals.get("infos", ()):
                episode = info.get("episode") if isinstance(info, dict) else None
                if episode is not None:
                    self.episodes_logged += 1
                    self._log({"rollout/episode_reward": episode["r"], "rollout/episode_length": episode["l"]}, step)
        if self.eval_freq and self.n_calls % self.eval_freq == 0:
            self._evaluate(step)
        if self.save_freq and self.n_calls % self.save_freq == 0:
            self._save(self.save_path / CHECKPOINT_DIR / f"model_{step}_steps.zip", CHECKPOINT_DIR)
        return True

    def _on_training_end(self) -> None:
        self._detach_writer()
        step = self.global_step
        self._save(self.save_path / "model" / "model.zip", "model")
        self._log({L.METRIC_TOTAL_TIMESTEPS: step}, step)
        _lifecycle.training_ended(self.tracker)
        if self._owns_run:
            self.tracker.end_run(C.FINISHED)

    # -------------------------------------------------------------------- helpers

    def end_run(self, status: str) -> None:
        """End the run with ``status`` (learn() raised, for instance)."""
        self._detach_writer()
        if self.tracker is not None:
            _lifecycle.training_ended(self.tracker)
            self.tracker.end_run(status)

    def __enter__(self) -> TrackingCallback:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.end_run(_lifecycle.status_for(exc_type))

    def _detach_writer(self) -> None:
        if self._writer is not None and self.model is not None:
            formats = self.model.logger.output_formats
            if self._writer in formats:
                formats.remove(self._writer)
        self._writer = None

    def _log(self, metrics: Mapping[str, Any], step: int) -> None:
        self.tracker.log_metrics(metrics, step)
        for listener in self._listeners:
            try:
                listener(dict(metrics), step)
            except Exception as exc:  # noqa: BLE001 - a display must not stop training
                _log.warning("trackbook: a metrics listener failed: %s", exc)

    def _previous_timesteps(self) -> int:
        if self.previous_timesteps is not None:
            return int(self.previous_timesteps)
        if self.base_run_id and hasattr(self.store, "run"):
            total = self.store.run(self.base_run_id).get(C.METRICS_PREFIX + L.METRIC_TOTAL_TIMESTEPS)
            if total is not None:
                return int(total)
        return 0

    def _params(self) -> dict[str, Any]:
        model = self.model
        params: dict[str, Any] = {"algorithm": type(model).__name__, "policy": type(model.policy).__name__}
        for name in _HYPERPARAMETERS:
            value = getattr(model, name, None)
            if callable(value):  # a schedule: log where it starts
                try:
                    value = value(1.0)
                except TypeError:
                    continue
            if isinstance(value, (numbers.Number, str, bool)) or (isinstance(value, tuple) and value):
                params[name] = value
        env = getattr(model, "env", None)
        spec = getattr(getattr(env, "envs", [None])[0], "spec", None) if env is not None else None
        if spec is not None:
            params["env_id"] = spec.id
        if self.config is not None:
            from trackbook.tracking.config import config_to_params

            params.update(config_to_params(self.config))
        params.update(self.extra_params)
        return params

    def _evaluate(self, step: int) -> None:
        import numpy as np
        from stable_baselines3.common.evaluation import evaluate_policy

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "not wrapped with a Monitor": lengths are still right
            rewards, lengths = evaluate_policy(
                self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes,
                deterministic=self.deterministic, return_episode_rewards=True,
            )
        mean = float(np.mean(rewards))
        self.last_eval = {
            "eval/mean_reward": mean,
            "eval/std_reward": float(np.std(rewards)),
            "eval/mean_ep_length": float(np.mean(lengths)),
        }
        self._log(self.last_eval, step)
        if mean > self.best_mean_reward:
            self.best_mean_reward = mean
            path = self.save_path / BEST_MODEL_DIR / "model.zip"
            self._save(path, BEST_MODEL_DIR)
            self.best_model_path = str(path)
            self._log({"eval/best_mean_reward": mean}, step)

    def _save(self, path: Path, artifact_path: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.model.save(path)
            self.tracker.log_artifact(path, artifact_path)
        except OSError as exc:  # a full disk must not stop training
            warnings.warn(f"trackbook: could not save {path}: {exc}", RuntimeWarning, stacklevel=2)


class _SB3Writer(KVWriter):
    """Receives everything SB3's logger dumps and logs its numbers at the global step."""

    def __init__(self, callback: TrackingCallback) -> None:
        self.callback = callback

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        numbersonly = {k: v for k, v in key_values.items() if isinstance(v, numbers.Real)}
        if numbersonly:
            self.callback._log(numbersonly, int(step) + self.callback.offset)

    def close(self) -> None:
        pass


class MLflowLoggingCallback(TrackingCallback):
    """The RL trading scripts' callback, kept for their users: a :class:`TrackingCallback` on MLflow.

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


def load_model_of_run(store: Any, run_id: str, *, env: Any = None, artifact: str = MODEL_ARTIFACT, **load_kwargs):
    """Load the stable-baselines3 model that run ``run_id`` logged (its final model by default)."""
    import stable_baselines3

    run = store.run(run_id)
    algorithm = str(run.get("params.algorithm", ""))
    cls = getattr(stable_baselines3, algorithm, None)
    if cls is None:
        raise ValueError(
            f"Run {run_id} has params.algorithm={algorithm!r}, not a stable-baselines3 algorithm; "
            f"load its model yourself from store.download_artifact(run_id, {artifact!r})."
        )
    local = store.download_artifact(run_id, artifact)
    return cls.load(str(local), env=env, **load_kwargs)


def continue_training(
    store: Any,
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
):
    """Continue the model of ``base_run_id`` for ``total_timesteps`` more, as a new chain link.

    Loads the base run's final model, starts a run tagged ``base_model_run_id`` in the
    base's experiment (unless told otherwise), logs ``previous_timesteps`` and offsets
    every step so the chain reads as one curve. ``reset_num_timesteps`` is passed to
    SB3's ``learn()``; steps are continuous either way.

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
