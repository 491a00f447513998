"""Hyper-parameter studies run with Optuna and logged as a parent run with a child run per trial.

Example:
    >>> def objective(trial):                                      # doctest: +SKIP
    ...     model = PPO("MlpPolicy", env, **trial.params)
    ...     cb = trial.callback(eval_env=eval_env, eval_freq=1024)   # logs into the trial's run
    ...     model.learn(4096, callback=cb)
    ...     return cb.best_mean_reward
    >>> result = tb.hpo.optimize(objective, {"learning_rate": {"low": 1e-5, "high": 1e-2, "log": True},
    ...                                      "gamma": [0.98, 0.99, 0.999]},
    ...                          n_trials=20, store=store, experiment="ppo-hpo")
    >>> tb.study(store, result.parent_run_id).best                     # doctest: +SKIP

From a config: ``optimize(objective, load_config("hpo.yaml"))`` (or its ``hpo`` section) reads
``param_space``, ``n_trials`` (or ``num_trials``), ``direction``, ``sampler``, ``seed``,
``metric`` (the objective metric), ``study_name`` and ``storage`` from the ``hpo`` section,
the experiment and store from ``experiment``; keywords given to ``optimize`` win. Each trial's
``trial.config`` is the config with the sampled values in place. ``trackbook hpo CONFIG.yaml``
runs the function named by ``hpo.objective`` (``module:function``).

Search spaces: a list is a set of choices (as in the trading stack's YAML ``param_space``); a mapping
``{low, high}`` a range, with ``log: true``, ``step``, and ``type: int`` or ``float``
(int when low and high are ints); ``{choices: [...]}`` choices; an Optuna distribution
object as itself; any other value a fixed param (logged, not searched). OmegaConf lists and
mappings read as the plain ones they hold.

Parallel workers: give every worker the same ``storage`` (an Optuna RDB URL such as
``postgresql://...`` or ``sqlite:///optuna.db``) and ``study_name``. The first call
creates the study and its parent run (``n_trials=0`` creates them without trials); the
others find the parent's id in the Optuna study and log their trials under it.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trackbook import columns as C
from trackbook import layout as L
from trackbook._uri import resolve_uri
from trackbook.tracking.trackers import default_experiment, make_tracker
from trackbook.tracking.base import Tracker

if TYPE_CHECKING:
    from trackbook.tracking._types import StoreLike

_log = logging.getLogger("trackbook.tracking")

#: Optuna study user attribute holding the parent run's id (shared by parallel workers).
PARENT_ATTR = "trackbook_parent_run_id"


class Trial:
    """What an objective function gets: the sampled params and the trial's run.

    Attributes:
        params: the hyper-parameters of this trial (sampled and fixed ones).
        number: Optuna's trial number.
        run_id: the trial's child run.
        tracker: writes to the trial's run (``log_metrics``, ``log_artifact``, ...).
        optuna_trial: the underlying ``optuna.Trial``.
        config: for a study run from a config, the config with this trial's values in
            place (a dotted name where it says, else the first section holding that key,
            else ``hpo.params.<name>``); None otherwise.
    """

    def __init__(self, optuna_trial: Any, params: dict[str, Any], tracker: Tracker, experiment: str,
                 config: Any = None) -> None:
        self.optuna_trial = optuna_trial
        self.params = params
        self.tracker = tracker
        self.experiment = experiment
        self.config = config

    @property
    def number(self) -> int:
        return int(self.optuna_trial.number)

    @property
    def run_id(self) -> str | None:
        return self.tracker.run_id

    def callback(self, **kwargs: Any):
        """A :class:`TrackingCallback` that logs the SB3 training into this trial's run."""
        from trackbook.tracking.callback import TrackingCallback

        return TrackingCallback(tracker=self.tracker, experiment=self.experiment, **kwargs)

    def report(self, value: float, step: int, *, metric: str = "intermediate_value") -> None:
        """Log an intermediate objective value and let the pruner stop the trial.

        Raises:
            optuna.TrialPruned: the pruner decided this trial will not win.
        """
        import optuna

        self.tracker.log_metrics({metric: value}, step)
        self.optuna_trial.report(float(value), int(step))
        if self.optuna_trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} ({metric}={value})")


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns: the Optuna study and where the runs went."""

    study: Any
    parent_run_id: str | None
    uri: str
    experiment: str

    @property
    def best_params(self) -> dict[str, Any]:
        return self.study.best_params

    @property
    def best_value(self) -> float:
        return self.study.best_value


def optimize(
    objective: Callable[[Trial], float],
    space: Mapping[str, Any],
    n_trials: int | None = None,
    *,
    store: StoreLike = None,
    experiment: str | None = None,
    study_name: str | None = None,
    direction: str | None = None,
    metric: str | None = None,
    sampler: Any = None,
    pruner: Any = None,
    storage: str | None = None,
    seed: int | None = None,
    n_jobs: int = 1,
    timeout: float | None = None,
) -> OptimizeResult:
    """Run (or join) an Optuna study; log it as a parent run and one child run per trial.

    Each trial's run gets the sampled params, tags ``trial_number``, ``study_name`` and
    ``trial_state`` (COMPLETE, PRUNED or FAIL), the metric ``objective`` and ends
    FINISHED, KILLED (pruned) or FAILED (raised, or returned NaN). A failing trial does
    not stop the study. The parent run gets ``direction``, ``objective`` (``metric``),
    ``sampler``, ``n_trials`` as params and ``best_value`` as a metric.

    Args:
        objective: ``objective(trial: Trial) -> float``.
        space: the search space (see the module's docs), or a config (``load_config``)
            or its ``hpo`` section, whose settings fill the keywords not given.
        n_trials: trials to run in this call (from the config when None).
        store: a Store or tracking URI (see :func:`trackbook._uri.resolve_uri`).
        experiment: experiment of the parent and trial runs.
        study_name: Optuna's study name, also the parent run's name (default:
            ``<experiment>-<date-time>``).
        direction: ``"maximize"`` (the default) or ``"minimize"``.
        metric: what the objective measures, recorded on the parent (``objective`` param).

    Raises:
        ValueError: a bad direction, sampler or space, or no ``n_trials`` anywhere.
        sampler: an Optuna sampler, or its class name (``"TPESampler"``, ``"RandomSampler"``).
        pruner: an Optuna pruner (default Optuna's median pruner).
        storage: Optuna RDB storage URL shared by parallel workers (in memory if None).
        seed: seed of a sampler given by name.
        n_jobs: threads running trials in this process.
        timeout: stop starting trials after this many seconds.
    """
    import optuna

    config, section = _config_parts(space)
    if section is not None:
        n_trials = n_trials if n_trials is not None else section.get("n_trials", section.get("num_trials"))
        direction = direction or section.get("direction")
        metric = metric or section.get("metric")
        sampler = sampler if sampler is not None else section.get("sampler")
        seed = seed if seed is not None else section.get("seed")
        study_name = study_name or section.get("study_name")
        storage = storage or section.get("storage")
        space = section.get("param_space") or {}
    if config is not None:
        exp = config.get("experiment") or {}
        experiment = experiment or exp.get("name")
        store = store if store is not None else exp.get("tracking_uri")
    if n_trials is None:
        raise ValueError("n_trials is not given and the config has no hpo.n_trials (or hpo.num_trials).")
    n_trials = int(n_trials)
    direction = direction or L.MAXIMIZE
    metric = metric or "objective"
    if direction not in L.DIRECTIONS:
        raise ValueError(f"direction={direction!r}: use 'maximize' or 'minimize'.")
    space = _plain(space)
    distributions = parse_space(space)
    uri = resolve_uri(store)
    experiment = default_experiment(experiment)
    sampler_obj = _sampler(sampler, seed)
    if study_name is None:
        import time

        study_name = f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction, sampler=sampler_obj, pruner=pruner,
        load_if_exists=storage is not None,
    )
    parent_tracker: Tracker | None = None
    parent_run_id = study.user_attrs.get(PARENT_ATTR)
    if parent_run_id is None:
        parent_tracker = make_tracker(uri)
        parent_run_id = parent_tracker.start_run(
            experiment, name=study.study_name,
            params={L.PARAM_DIRECTION: direction, L.PARAM_OBJECTIVE: metric, "n_trials": n_trials,
                    "sampler": type(study.sampler).__name__, **{f"{L.PARAM_SPACE_PREFIX}{k}": repr(v) for k, v in space.items()}},
            tags={L.TAG_STUDY_NAME: study.study_name, "optuna.storage": _storage_label(storage)},
        )
        if parent_run_id is None:
            _log.warning("trackbook: the tracking store is down; trials are logged without a parent run.")
        else:
            study.set_user_attr(PARENT_ATTR, parent_run_id)

    def run_trial(optuna_trial: Any) -> float:
        params = {name: _suggest(optuna_trial, name, dist) for name, dist in distributions.items()}
        tracker = make_tracker(uri)
        tracker.start_run(
            experiment, name=f"{study.study_name}-trial-{optuna_trial.number}", params=params,
            tags={L.TAG_TRIAL_NUMBER: optuna_trial.number, L.TAG_STUDY_NAME: study.study_name},
            parent_run_id=parent_run_id,
        )
        trial = Trial(optuna_trial, params, tracker, experiment,
                      None if config is None else _with_params(config, params))
        try:
            value = float(objective(trial))
        except optuna.TrialPruned:
            tracker.set_tags({L.TAG_TRIAL_STATE: L.PRUNED})
            tracker.end_run(C.KILLED)
            raise
        except BaseException as exc:
            tracker.set_tags({L.TAG_TRIAL_STATE: L.FAIL, L.TAG_TRIAL_ERROR: f"{type(exc).__name__}: {exc}"[:500]})
            tracker.end_run(C.KILLED if isinstance(exc, KeyboardInterrupt) else C.FAILED)
            raise
        if math.isnan(value):
            tracker.set_tags({L.TAG_TRIAL_STATE: L.FAIL, L.TAG_TRIAL_ERROR: "the objective returned NaN"})
            tracker.end_run(C.FAILED)
            return value  # Optuna marks it failed
        tracker.set_tags({L.TAG_TRIAL_STATE: L.COMPLETE})
        tracker.end_run(C.FINISHED, final_metrics={L.METRIC_OBJECTIVE: value}, step=optuna_trial.number)
        return value

    try:
        if n_trials:
            study.optimize(run_trial, n_trials=n_trials, n_jobs=n_jobs, timeout=timeout, catch=(Exception,))
    finally:
        if parent_tracker is not None:
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            final = {"best_value": study.best_value} if done else None
            parent_tracker.end_run(C.FINISHED, final_metrics=final)
    return OptimizeResult(study, parent_run_id, uri, experiment)


def parse_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """The search space as Optuna distributions (fixed values kept as they are).

    Raises:
        ValueError: a range that is empty or inverted, or a mapping of unknown shape.
    """
    from optuna import distributions as D

    out: dict[str, Any] = {}
    for name, spec in _plain(space).items():
        if isinstance(spec, D.BaseDistribution):
            out[name] = spec
        elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
            if not spec:
                raise ValueError(f"space[{name!r}] is an empty list of choices.")
            out[name] = D.CategoricalDistribution(list(spec))
        elif isinstance(spec, Mapping):
            out[name] = _range(name, dict(spec))
        else:
            out[name] = spec  # fixed
    return out


def load_objective(name: str) -> Callable[[Trial], float]:
    """The function ``module:function`` names (``hpo.objective`` of a config).

    Raises:
        ValueError: the name is not ``module:function``, or the module or function is missing.
    """
    module_name, sep, attr = str(name).partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"objective {name!r}: name it as module:function (e.g. mypkg.train:objective).")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"objective {name!r}: cannot import {module_name!r} ({exc}); is it on PYTHONPATH?") from exc
    function = module
    for part in attr.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ValueError(f"objective {name!r}: module {module_name!r} has no {attr!r}.")
    if not callable(function):
        raise ValueError(f"objective {name!r} is not a function.")
    return function


def _plain(value: Any) -> Any:
    """OmegaConf containers as the plain dicts and lists they hold (anything else as it is)."""
    try:
        from omegaconf import Container, OmegaConf
    except ImportError:
        return dict(value) if isinstance(value, Mapping) else value
    if isinstance(value, Container):
        return OmegaConf.to_container(value, resolve=True)
    return dict(value) if isinstance(value, Mapping) else value


def _config_parts(space: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(whole config, hpo section) when ``space`` is one of them, else (None, None)."""
    if not isinstance(space, Mapping):
        return None, None
    plain = _plain(space)
    hpo = plain.get("hpo")
    if isinstance(hpo, Mapping) and "param_space" in hpo:
        return plain, dict(hpo)
    if "param_space" in plain and isinstance(plain["param_space"], Mapping):
        # the hpo section of a loaded config still knows its config
        parent = getattr(space, "_get_parent", lambda: None)()
        root = _plain(parent) if parent is not None and hasattr(parent, "keys") else None
        return (root if isinstance(root, dict) and root.get("hpo") == plain else None), plain
    return None, None


def _with_params(config: dict[str, Any], params: dict[str, Any]) -> Any:
    from copy import deepcopy

    out = deepcopy(config)
    for name, value in params.items():
        parts = name.split(".")
        if len(parts) == 1:
            home = next((s for s in ("model", "training") if isinstance(out.get(s), dict) and name in out[s]), None)
            home = home or next((k for k, v in out.items() if isinstance(v, dict) and name in v and k != "hpo"), None)
            parts = [home, name] if home else ["hpo", "params", name]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    try:
        from omegaconf import OmegaConf
    except ImportError:
        return out
    return OmegaConf.create(out)


def _range(name: str, spec: dict[str, Any]):
    from optuna import distributions as D

    if "choices" in spec:
        return D.CategoricalDistribution(list(spec["choices"]))
    unknown = set(spec) - {"low", "high", "log", "step", "type"}
    if unknown or "low" not in spec or "high" not in spec:
        raise ValueError(
            f"space[{name!r}]={spec!r}: a range is {{low, high}} with optional log, step, type (int|float); "
            f"choices are a list or {{choices: [...]}}."
        )
    low, high = spec["low"], spec["high"]
    if not low <= high:
        raise ValueError(f"space[{name!r}]: low={low} is above high={high}.")
    kind = spec.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
    log, step = bool(spec.get("log", False)), spec.get("step")
    if log and low <= 0:
        raise ValueError(f"space[{name!r}]: a log range needs low > 0 (got {low}).")
    if kind == "int":
        return D.IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    if kind == "float":
        return D.FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))
    raise ValueError(f"space[{name!r}]: type={kind!r}; use 'int' or 'float'.")


def _suggest(trial: Any, name: str, dist: Any) -> Any:
    from optuna import distributions as D

    if isinstance(dist, D.FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, D.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, D.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    return dist  # a fixed value


def _sampler(sampler: Any, seed: int | None) -> Any:
    import optuna

    if sampler is None or not isinstance(sampler, str):
        return sampler if sampler is not None else optuna.samplers.TPESampler(seed=seed)
    cls = getattr(optuna.samplers, sampler, None)
    if cls is None:
        known = ", ".join(n for n in dir(optuna.samplers) if n.endswith("Sampler") and not n.startswith("Base"))
        raise ValueError(f"sampler={sampler!r} is not an Optuna sampler; known: {known}.")
    return cls(seed=seed)


def _storage_label(storage: str | None) -> str:
    from trackbook._uri import redact_uri

    return "in-memory" if storage is None else redact_uri(storage)
