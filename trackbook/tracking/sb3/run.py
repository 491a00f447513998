"""The run a training writes to: :class:`RunLog`, which every part writes through, and
:class:`RunCallback`, which opens the run, says what it is and ends it."""

from __future__ import annotations

import logging
import numbers
import posixpath
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.callbacks import BaseCallback

from trackbook import columns as C
from trackbook import layout as L
from trackbook.tracking import _lifecycle
from trackbook.tracking.base import Tracker
from trackbook.tracking.environment import environment_info, environment_tags
from trackbook.tracking.trackers import default_experiment, make_tracker

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

    from trackbook.tracking._types import StoreLike

_log = logging.getLogger("trackbook.tracking")

#: Attributes of an SB3 model logged as params when it has them.
_HYPERPARAMETERS = (
    "learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range", "clip_range_vf",
    "ent_coef", "vf_coef", "max_grad_norm", "use_sde", "normalize_advantage", "target_kl", "buffer_size",
    "learning_starts", "tau", "train_freq", "gradient_steps", "target_update_interval", "exploration_fraction",
    "exploration_initial_eps", "exploration_final_eps", "rms_prop_eps", "use_rms_prop", "seed", "n_envs",
)

Listener = Callable[[dict[str, Any], int], None]

# MLflow refuses any other param, tag or metric name for good: the write would be retried
# forever and every later one would wait behind it. Aim takes them all; names kept to
# MLflow's rule land in either store.
_STORABLE_NAME = re.compile(r"^[\w./\- :]{1,250}$")


def storable_name(name: str) -> bool:
    """Whether every store takes ``name`` as a param, tag or metric name (MLflow's rule:
    letters, digits, ``_ . - / :`` and spaces, at most 250 characters, a path that
    normalises to itself)."""
    if not _STORABLE_NAME.match(name):
        return False
    norm = posixpath.normpath(name)
    return norm == name and norm != "." and not norm.startswith(("..", "/"))


class RunLog:
    """A tracker's open run, written at chain-wide steps; what the callback parts share.

    Every part of :class:`~trackbook.tracking.TrackingCallback` writes through one
    ``RunLog``, so they agree on the step (``model.num_timesteps + offset``; the offset
    is set by :class:`~trackbook.tracking.ChainCallback` in a continued run), hand
    every point to the same listeners (live panels, the Prometheus feed) and save
    models under one folder. A part given a bare :class:`Tracker` makes its own.

    Example:
        >>> log = RunLog(tracker, save_path="models")                     # doctest: +SKIP
        >>> model.learn(10_000, callback=[EpisodeCallback(log), ModelCheckpointCallback(log, 2000)])  # doctest: +SKIP

    Args:
        tracker: the tracker whose open run is written (None until a
            :class:`RunCallback` sets it at training start).
        offset: added to the model's ``num_timesteps`` to give the step logged.
        save_path: local folder for saved models (a temporary one if None).
    """

    def __init__(self, tracker: Tracker | None = None, *, offset: int = 0, save_path: str | Path | None = None) -> None:
        self.tracker = tracker
        self.offset = offset
        self.save_path = Path(save_path) if save_path else None
        self._listeners: list[Listener] = []
        self._names_ok: set[str] = set()
        self._names_refused: set[str] = set()

    def __repr__(self) -> str:
        return f"RunLog({self.tracker!r}, offset={self.offset})"

    @property
    def run_id(self) -> str | None:
        return None if self.tracker is None else self.tracker.run_id

    def step(self, model: BaseAlgorithm) -> int:
        """The chain-wide step: the model's own timestep count plus the offset."""
        return int(model.num_timesteps) + self.offset

    def add_listener(self, listener: Listener) -> None:
        """Also hand every logged point to ``listener(metrics: dict, step: int)``."""
        self._listeners.append(listener)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log ``metrics`` at ``step`` and show them to the listeners; never raises for a listener.

        A name no store would take is left out, with one warning per name.
        """
        if any(k not in self._names_ok for k in metrics):
            metrics = {k: v for k, v in metrics.items() if self._storable(k)}
        if self.tracker is not None:
            self.tracker.log_metrics(metrics, step)
        for listener in self._listeners:
            try:
                listener(dict(metrics), step)
            except Exception as exc:  # noqa: BLE001 - a display must not stop training
                _log.warning("trackbook: a metrics listener failed: %s", exc)

    def _storable(self, name: str) -> bool:
        if name in self._names_ok:
            return True
        if name not in self._names_refused:
            if storable_name(str(name)):
                self._names_ok.add(name)
                return True
            self._names_refused.add(name)
            _warn(f"the metric {name!r}", ValueError(_NAME_RULE))
        return False

    def save_model(self, model: BaseAlgorithm, artifact_path: str, file_name: str = L.MODEL_FILE) -> Path | None:
        """Save ``model`` to ``<save_path>/<artifact_path>/<file_name>`` and log it as an artifact there.

        Returns:
            The local file, or None when it could not be written (a full disk warns
            and training goes on).
        """
        if self.save_path is None:
            self.save_path = Path(tempfile.mkdtemp(prefix="trackbook-run-"))
        path = self.save_path / artifact_path / file_name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
            if self.tracker is not None:
                self.tracker.log_artifact(path, artifact_path)
        except OSError as exc:  # a full disk must not stop training
            warnings.warn(f"trackbook: could not save {path}: {exc}", RuntimeWarning, stacklevel=2)
            return None
        return path


def as_run_log(run: Tracker | RunLog) -> RunLog:
    """``run`` if it is a :class:`RunLog`, else one over the tracker ``run``."""
    if isinstance(run, RunLog):
        return run
    if isinstance(run, Tracker):
        return RunLog(run)
    raise TypeError(
        f"run is a {type(run).__name__}; pass a Tracker with a run open (trackbook.tracking.make_tracker) "
        f"or the RunLog of a RunCallback."
    )


class RunCallback(BaseCallback):
    """Opens the run of a training (or joins one already open), says what it is, ends it.

    At training start it starts a run in ``experiment`` with the model's
    hyper-parameters, ``config`` and ``params`` as params, ``tags`` plus the algorithm
    and the environment (``env.*``, ``git.*``) as tags, and ``environment.json`` and
    ``config.yaml`` as artifacts. At training end it logs the final model
    (``model/model.zip``) and ``total_timesteps`` and ends the run FINISHED. A tracker
    that already has a run open (an HPO trial's) is joined: the params and tags are
    added to that run, and ending it is left to its owner.

    Describing the run never stops training: a config or a param that cannot be
    turned into text, or a name no store takes, is left out with one warning.

    The other parts write through :attr:`run_log`; put this callback first in a
    ``CallbackList`` and end it last (:class:`~trackbook.tracking.TrackingCallback`
    does both).

    Example:
        >>> run = RunCallback(tb.connect(), experiment="ppo-cartpole")           # doctest: +SKIP
        >>> model.learn(10_000, callback=[run, EpisodeCallback(run.run_log)])    # doctest: +SKIP

    Args:
        store: where to write: a Store, a tracking URI or None (see
            ``trackbook._uri.resolve_uri``), or a :class:`Tracker`.
        experiment: experiment name (default ``$ML_EXPERIMENT_NAME``, else "default").
        run_name: name of the run (default ``<algorithm>-<env id>-<date-time>``).
        config: a config logged as params (``section.key``) and ``config.yaml``: an
            OmegaConf config (:func:`~trackbook.tracking.load_config`), a mapping or a
            dataclass instance.
        params: extra params (they win over the model's and the config's).
        tags: extra tags.
        parent_run_id: the parent (study) run.
        save_path: local folder for the models the parts save (a temporary one if None).
        verbose: SB3's verbosity.
    """

    def __init__(
        self,
        store: StoreLike | Tracker = None,
        *,
        experiment: str | None = None,
        run_name: str | None = None,
        config: Any = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        save_path: str | Path | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.store = None if isinstance(store, Tracker) else store
        self.experiment = default_experiment(experiment)
        self.run_name = run_name
        self.config = config
        self.extra_params = dict(params or {})
        self.extra_tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        #: What the parts write through (its tracker is set at training start).
        self.run_log = RunLog(store if isinstance(store, Tracker) else None, save_path=save_path)
        self._owns_run = True

    @property
    def tracker(self) -> Tracker | None:
        return self.run_log.tracker

    @property
    def run_id(self) -> str | None:
        return self.run_log.run_id

    def _on_training_start(self) -> None:
        if self.run_log.tracker is None:
            self.run_log.tracker = make_tracker(self.store)
        tracker = self.run_log.tracker
        info, env_tags, params, config_yaml = self._describe()
        tags = _as_text("tags", {**self.extra_tags, L.TAG_ALGORITHM: type(self.model).__name__, **env_tags})
        # A tracker with a run already open (an HPO trial's) is joined, not replaced; its owner ends it.
        self._owns_run = not tracker.active
        if self._owns_run:
            tracker.start_run(self.experiment, name=self._name(params), params=params, tags=tags,
                              parent_run_id=self.parent_run_id, wait=10.0)
        else:
            tracker.log_params(params)
            tracker.set_tags(tags)
        if info:
            _quietly("environment.json", tracker.log_dict, info, L.ENVIRONMENT_ARTIFACT)
        if config_yaml is not None:
            _quietly("config.yaml", tracker.log_text, config_yaml, L.CONFIG_ARTIFACT)
        _lifecycle.training_started(tracker)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        step = self.run_log.step(self.model)
        self.run_log.save_model(self.model, L.MODEL_DIR)
        self.run_log.log({L.METRIC_TOTAL_TIMESTEPS: step}, step)
        _lifecycle.training_ended(self.run_log.tracker)
        if self._owns_run:
            self.run_log.tracker.end_run(C.FINISHED)

    def end_run(self, status: str) -> None:
        """End the run with ``status`` (``learn()`` raised, for instance)."""
        tracker = self.run_log.tracker
        if tracker is not None:
            _lifecycle.training_ended(tracker)
            tracker.end_run(status)

    # -------------------------------------------------------------------- helpers

    def _describe(self) -> tuple[dict[str, Any], dict[str, str], dict[str, str], str | None]:
        """The environment and its tags, the params as text and the config's YAML; warns instead of raising."""
        try:
            info = environment_info()
            env_tags = environment_tags(info)
        except Exception as exc:  # noqa: BLE001 - describing the machine must not stop training
            _warn("the environment (env.* tags, environment.json)", exc)
            info, env_tags = {}, {}
        try:
            params = _model_params(self.model)
        except Exception as exc:  # noqa: BLE001 - a model of an unexpected shape must not stop training
            _warn("the model's hyper-parameters", exc)
            params = {L.PARAM_ALGORITHM: type(self.model).__name__}
        config_yaml = None
        if self.config is not None:
            from trackbook.tracking.config import config_to_params, config_to_yaml

            try:
                config_params, config_yaml = config_to_params(self.config), config_to_yaml(self.config)
            except Exception as exc:  # noqa: BLE001 - a config that cannot be logged must not stop training
                _warn("the config (its params and config.yaml)", exc)
            else:
                params.update(config_params)
        params.update(self.extra_params)
        return info, env_tags, _as_text("params", params), config_yaml

    def _name(self, params: Mapping[str, str]) -> str:
        if self.run_name:
            return self.run_name
        parts = (type(self.model).__name__.lower(), params.get(L.PARAM_ENV_ID), time.strftime("%Y%m%d-%H%M%S"))
        return "-".join(str(x) for x in parts if x)


def _model_params(model: BaseAlgorithm) -> dict[str, Any]:
    params: dict[str, Any] = {L.PARAM_ALGORITHM: type(model).__name__, L.PARAM_POLICY: type(model.policy).__name__}
    for name in _HYPERPARAMETERS:
        value = getattr(model, name, None)
        if callable(value):  # a schedule: log where it starts
            try:
                value = value(1.0)
            except Exception:  # noqa: BLE001 - a schedule of another shape: leave it out
                continue
        if isinstance(value, (numbers.Number, str, bool)) or (isinstance(value, tuple) and value):
            params[name] = value
    env = getattr(model, "env", None)
    spec = getattr(getattr(env, "envs", [None])[0], "spec", None) if env is not None else None
    if spec is not None:
        params[L.PARAM_ENV_ID] = spec.id
    return params


_NAME_RULE = "a store takes only letters, digits, '_ . - / :' and spaces, at most 250 characters: rename it"


def _as_text(what: str, values: Mapping[Any, Any]) -> dict[str, str]:
    """``values`` as the text a store keeps; names no store takes and values without a text
    are left out with one warning naming them."""
    text: dict[str, str] = {}
    unnamed, untexted = [], []
    for key, value in values.items():
        name = str(key)
        if not storable_name(name):
            unnamed.append(repr(name))
            continue
        try:
            text[name] = "" if value is None else str(value)
        except Exception:  # noqa: BLE001 - an object whose str() fails
            untexted.append(repr(name))
    if unnamed or untexted:
        why = "; ".join(
            ([f"{', '.join(unnamed)}: {_NAME_RULE}"] if unnamed else [])
            + ([f"{', '.join(untexted)}: the value cannot be turned into text"] if untexted else [])
        )
        _warn(f"the {what} {', '.join(unnamed + untexted)}", ValueError(why))
    return text


def _warn(what: str, exc: BaseException) -> None:
    warnings.warn(f"trackbook: {what} not logged ({type(exc).__name__}: {exc}); training goes on.",
                  RuntimeWarning, stacklevel=3)


def _quietly(what: str, write: Callable[..., None], *args: Any) -> None:
    try:
        write(*args)
    except Exception as exc:  # noqa: BLE001 - a side file must not stop training
        _warn(what, exc)
