"""Hyper-parameter studies: a parent run and one child run per trial.

The layout is the one :func:`trackbook.hpo.optimize` writes and the RL trading stack's
HPO scripts wrote (:mod:`trackbook.layout`): the parent carries the params ``direction`` (``maximize``/``minimize``) and
``objective`` (the metric the study optimises); each trial is a child run (MLflow's
``mlflow.parentRunId``) with its hyper-parameters as params, the tag ``trial_number``
and the metric ``objective``. Studies written by hand or by Optuna's
``MLflowCallback`` read too (see :func:`study`): what is not there is read from
Optuna's tags, inferred with a warning, or asked for (``objective=``, ``direction=``).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook import layout as L
from trackbook.errors import RunNotFound, StudyObjectiveUnknown, TrackbookError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trackbook.store.base import Store

#: A trial run's status read as a trial state, where the run says nothing else.
_STATES = {C.FINISHED: L.COMPLETE, C.FAILED: L.FAIL, C.KILLED: L.FAIL, C.RUNNING: L.TRIAL_RUNNING,
           C.SCHEDULED: L.WAITING}
_COUNTED_STATES = (L.COMPLETE, L.PRUNED, L.FAIL, L.TRIAL_RUNNING)


class Study:
    """A hyper-parameter study read from a store.

    Example:
        >>> study = tb.study(store, parent_run_id)                          # doctest: +SKIP
        >>> study.trials[["trial_number", "state", "objective"]]        # doctest: +SKIP
        >>> study.best["params.learning_rate"], study.importance()      # doctest: +SKIP

    Attributes:
        parent: the parent run's row of ``Store.runs()``.
        trials: one row per trial (``C.TRIAL_COLUMNS`` then the trials' ``params.*``),
            by trial number; failed, pruned and running trials are listed with their
            ``state`` (Optuna's names: COMPLETE, PRUNED, FAIL, RUNNING) and a NaN
            objective unless they logged one.
        direction: ``"maximize"`` or ``"minimize"``.
        objective_metric: the metric a trial's objective is read from when it logged
            no ``objective`` metric (the parent's ``objective`` param), or None.
    """

    def __init__(self, store: Store, parent: pd.Series, trials: pd.DataFrame, direction: str,
                 objective_metric: str | None) -> None:
        self.store = store
        self.parent = parent
        self.trials = trials
        self.direction = direction
        self.objective_metric = objective_metric

    def __repr__(self) -> str:
        states = self.trials[C.STATE].value_counts().to_dict() if len(self.trials) else {}
        return f"<Study {self.parent[C.NAME]!r}: {len(self.trials)} trials {states}, {self.direction}>"

    @property
    def name(self) -> str:
        return str(self.parent[C.NAME])

    @property
    def param_columns(self) -> list[str]:
        """The searched hyper-parameters as ``params.*`` columns: the parent's ``space.*``
        params name them (``tb.hpo.optimize`` logs them); otherwise every trial param
        whose value varies between trials."""
        columns = [c for c in self.trials.columns if c.startswith(C.PARAMS_PREFIX)]
        space_prefix = C.PARAMS_PREFIX + L.PARAM_SPACE_PREFIX
        searched = [C.PARAMS_PREFIX + k[len(space_prefix):] for k in self.parent.index
                    if isinstance(k, str) and k.startswith(space_prefix) and pd.notna(self.parent[k])]
        if searched:
            return [c for c in columns if c in searched]
        return [c for c in columns if self.trials[c].astype(str).nunique() > 1]

    @property
    def completed(self) -> pd.DataFrame:
        """Trials that finished with a finite objective."""
        return completed_trials(self.trials)

    @property
    def best(self) -> pd.Series | None:
        """The completed trial with the best objective (first one on ties); None if none completed."""
        done = self.completed
        if done.empty:
            return None
        values = done[C.OBJECTIVE].astype(float)
        return done.loc[values.idxmax() if self.direction == L.MAXIMIZE else values.idxmin()]

    def history(self, metrics: str | Sequence[str] | None = None) -> pd.DataFrame:
        """The trials' metric histories (``Store.history()``), plus ``trial_number``."""
        hist = self.store.history(self.trials[C.RUN_ID].tolist(), metrics)
        numbers = dict(zip(self.trials[C.RUN_ID], self.trials[C.TRIAL_NUMBER], strict=True))
        return hist.assign(**{C.TRIAL_NUMBER: hist[C.RUN_ID].map(numbers).astype("int64")})

    def importance(self, *, seed: int = 0) -> pd.DataFrame:
        """How much of the objective's variance each hyper-parameter explains.

        fANOVA (Hutter et al., 2014) as Optuna implements it: a random forest is fitted
        to the completed trials (params -> objective) and the variance of the forest's
        prediction is decomposed by parameter; importances sum to 1. Numeric params
        spanning more than two decades (all positive) are taken on a log scale;
        non-numeric ones as categories. Failed, pruned, running and NaN trials are left out.

        Returns:
            Columns ``param`` and ``importance``, most important first.

        Raises:
            TrackbookError: fewer than two completed trials, or no param that varies.
        """
        import optuna

        done = self.completed
        varied = [c for c in self.param_columns if done[c].nunique(dropna=True) > 1 and done[c].notna().all()]
        if len(done) < 2 or not varied:
            raise TrackbookError(
                f"Study {self.name!r} has {len(done)} completed trials and {len(varied)} params that vary among "
                f"them; importance needs at least 2 trials and 1 varying param. Run more trials first."
            )
        distributions = {c[len(C.PARAMS_PREFIX):]: _distribution(done[c]) for c in varied}
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line per call
        try:
            study = optuna.create_study(direction=self.direction)
        finally:
            optuna.logging.set_verbosity(verbosity)
        for _, trial in done.iterrows():
            params = {name: _native(trial[C.PARAMS_PREFIX + name]) for name in distributions}
            study.add_trial(optuna.trial.create_trial(
                params=params, distributions=distributions, value=float(trial[C.OBJECTIVE])))
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
        return pd.DataFrame({C.PARAM: list(scores), C.IMPORTANCE: list(scores.values())})


def study(store: Store, parent_run_id: str, *, direction: str | None = None,
          objective: str | None = None) -> Study:
    """The hyper-parameter study whose parent run is ``parent_run_id``.

    Studies written by hand or by other tools read too. Trials are numbered by their
    ``trial_number`` tag, else Optuna's ``number`` tag (``optuna_integration.MLflowCallback``),
    else start order; their state is the ``trial_state`` tag, else Optuna's ``state`` tag,
    else the run's status. The objective metric is ``objective``, else the parent's
    ``objective`` param, else the one metric every finished trial logged; the direction
    is ``direction``, else the parent's ``direction`` param, else the trials' Optuna
    ``direction`` tag, else read from the metric's name (loss, error: minimize; see
    :func:`trackbook.layout.metric_goal`) with a warning that it was inferred.

    Example:
        >>> study = tb.study(store, parent_run_id)     # doctest: +SKIP
        >>> study = tb.study(store, sweep_id, objective="val_loss", direction="minimize")  # doctest: +SKIP
        >>> study.best, study.importance()             # doctest: +SKIP

    Args:
        direction: ``"maximize"`` or ``"minimize"``; overrides what the runs say.
        objective: the metric a trial's objective is read from (when it logged no
            ``objective`` metric); overrides the parent's ``objective`` param.

    Raises:
        RunNotFound: no such run, or it has no child runs.
        StudyObjectiveUnknown: the objective is named nowhere and the finished trials
            share no single metric (pass ``objective=``).
        ValueError: ``direction`` is neither maximize nor minimize.
    """
    parent = store.lookup([parent_run_id]).iloc[0]
    siblings = store.runs(parent[C.EXPERIMENT_ID])
    trials = siblings[siblings[C.PARENT_RUN_ID] == parent_run_id]
    if trials.empty:
        raise RunNotFound(
            f"Run {parent_run_id} ({parent[C.NAME]!r}) has no child runs in experiment "
            f"{parent[C.EXPERIMENT]!r}, so it is not a study parent. tb.study_list(store, experiment) lists the studies."
        )
    objective, direction = _resolve(parent, trials, objective, direction)
    return Study(store, parent, _trials_frame(trials, objective), direction, objective)


def study_list(store: Store, experiment: str, *, objective: str | None = None,
               direction: str | None = None) -> pd.DataFrame:
    """The studies of an experiment: one row per parent run.

    Example:
        >>> tb.study_list(store, "sweeps", objective="val_loss", direction="minimize")  # doctest: +SKIP

    Args:
        objective, direction: as for :func:`study`, for every study of the experiment.
            A study whose objective cannot be told is listed with a NaN
            ``best_objective`` (and a warning) rather than failing the list.

    Returns:
        Columns ``run_id``, ``name``, ``status``, ``start_time``, ``direction``,
        ``n_trials``, one count per trial state (``COMPLETE``, ``PRUNED``, ``FAIL``,
        ``RUNNING``) and ``best_objective``.
    """
    direction = _check_direction(direction)
    runs = store.runs(experiment)
    is_trial = runs[C.PARENT_RUN_ID].notna()
    rows = []
    for parent_id, trials in runs[is_trial].groupby(C.PARENT_RUN_ID, sort=False):
        parents = runs[runs[C.RUN_ID] == parent_id]
        if parents.empty:
            continue
        parent = parents.iloc[0]
        try:
            metric, goal = _resolve(parent, trials, objective, direction)
        except StudyObjectiveUnknown as exc:
            warnings.warn(str(exc), UserWarning, stacklevel=2)
            metric, goal = None, direction or _check_direction(_param(parent, L.PARAM_DIRECTION)) or L.MAXIMIZE
        frame = _trials_frame(trials, metric)
        done = frame.loc[frame[C.STATE] == L.COMPLETE, C.OBJECTIVE].astype(float)
        done = done[np.isfinite(done)]
        best = (done.max() if goal == L.MAXIMIZE else done.min()) if len(done) else np.nan
        counts = frame[C.STATE].value_counts()
        rows.append({
            C.RUN_ID: parent_id, C.NAME: parent[C.NAME], C.STATUS: parent[C.STATUS],
            C.START_TIME: parent[C.START_TIME], C.DIRECTION: goal, C.N_TRIALS: len(frame),
            **{state: int(counts.get(state, 0)) for state in _COUNTED_STATES},
            C.BEST_OBJECTIVE: best,
        })
    columns = [C.RUN_ID, C.NAME, C.STATUS, C.START_TIME, C.DIRECTION, C.N_TRIALS, *_COUNTED_STATES, C.BEST_OBJECTIVE]
    return pd.DataFrame(rows, columns=columns).sort_values(C.START_TIME, ignore_index=True)


def _check_direction(direction: str | None) -> str | None:
    if direction is None:
        return None
    if str(direction).lower() not in L.DIRECTIONS:
        raise ValueError(f"direction={direction!r}: a study goes 'maximize' or 'minimize'.")
    return str(direction).lower()


def _resolve(parent: pd.Series, trials: pd.DataFrame, objective: str | None,
             direction: str | None) -> tuple[str | None, str]:
    """The objective metric (None: the trials' own ``objective`` metric) and the direction."""
    direction = _check_direction(direction) or _check_direction(_param(parent, L.PARAM_DIRECTION))
    inferred = []
    objective = objective or _param(parent, L.PARAM_OBJECTIVE)
    if objective is None and not _metric(trials, L.METRIC_OBJECTIVE).notna().any():
        objective = _shared_metric(parent, trials)
        inferred.append(f"objective {objective!r} (the one metric every finished trial logged)")
    if direction is None:
        direction = _optuna_direction(trials)
    if direction is None:
        metric = objective or L.METRIC_OBJECTIVE
        direction = L.MAXIMIZE if L.metric_goal(metric) == L.MAX else L.MINIMIZE
        inferred.append(f"direction {direction!r} (from the name {metric!r})")
    if inferred:
        warnings.warn(
            f"Study {parent[C.NAME]!r} ({parent[C.RUN_ID]}): inferred {' and '.join(inferred)}; pass "
            f"objective= and direction= to tb.study / tb.study_list to say otherwise.", UserWarning, stacklevel=3)
    return objective, direction


def _shared_metric(parent: pd.Series, trials: pd.DataFrame) -> str:
    """The one metric every finished trial logged; StudyObjectiveUnknown if none or several."""
    state = _states(trials)
    finished = trials[state == L.COMPLETE]
    columns = [c for c in trials.columns if c.startswith(C.METRICS_PREFIX)]
    shared = [c[len(C.METRICS_PREFIX):] for c in columns if len(finished) and finished[c].notna().all()]
    if len(shared) == 1:
        return shared[0]
    logged = sorted(c[len(C.METRICS_PREFIX):] for c in columns if trials[c].notna().any())
    found = (f"the {len(finished)} finished trials share {shared}" if shared else
             f"no metric is logged by all {len(finished)} finished trials")
    raise StudyObjectiveUnknown(
        f"Which metric is the objective of study {parent[C.NAME]!r} ({parent[C.RUN_ID]})? Neither the call nor the "
        f"parent's '{L.PARAM_OBJECTIVE}' param names it, and {found} (trials logged: {', '.join(logged) or 'none'}). "
        f"Pass it: tb.study(store, {parent[C.RUN_ID]!r}, objective=\"{(shared or logged or ['<metric>'])[0]}\")."
    )


def _optuna_direction(trials: pd.DataFrame) -> str | None:
    """The direction ``optuna_integration.MLflowCallback`` tagged on every trial, if they agree."""
    tagged = trials.get(C.TAGS_PREFIX + L.OPTUNA_TAG_DIRECTION)
    if tagged is None:
        return None
    values = {str(v).lower() for v in tagged.dropna()}
    return values.pop() if len(values) == 1 and values <= set(L.DIRECTIONS) else None


def _tag_numbers(trials: pd.DataFrame, tag: str) -> pd.Series | None:
    column = C.TAGS_PREFIX + tag
    if column not in trials:
        return None
    numbers = pd.to_numeric(trials[column], errors="coerce")
    whole = numbers.notna().all() and (numbers == numbers.round()).all() and numbers.is_unique
    return numbers if whole else None


def _states(trials: pd.DataFrame) -> pd.Series:
    """Each trial's state: its ``trial_state`` tag, else Optuna's ``state`` tag, else its status."""
    state = trials[C.STATUS].map(_STATES).fillna(L.FAIL)
    for tag in (L.OPTUNA_TAG_STATE, L.TAG_TRIAL_STATE):  # the later one wins
        tagged = trials.get(C.TAGS_PREFIX + tag)
        if tagged is not None:
            tagged = tagged.where(tagged.isin(L.TRIAL_STATES))
            state = tagged.where(tagged.notna(), state)
    return state


def completed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The rows of a ``Study.trials`` frame that completed with a finite objective."""
    return trials[(trials[C.STATE] == L.COMPLETE) & np.isfinite(trials[C.OBJECTIVE].astype(float))]


def spans_decades(values: pd.Series) -> bool:
    """Positive numbers spanning more than two decades: modelled and drawn on a log scale."""
    numeric = pd.to_numeric(values, errors="coerce").dropna()
    return len(numeric) > 1 and bool((numeric > 0).all()) and numeric.max() / numeric.min() > 100


def _trials_frame(trials: pd.DataFrame, objective_metric: str | None) -> pd.DataFrame:
    trials = trials.sort_values([C.START_TIME, C.RUN_ID], kind="stable")
    numbers = _tag_numbers(trials, L.TAG_TRIAL_NUMBER)
    if numbers is None:
        numbers = _tag_numbers(trials, L.OPTUNA_TAG_NUMBER)
    if numbers is None:
        numbers = pd.Series(np.arange(len(trials)), index=trials.index)
    objective = _metric(trials, L.METRIC_OBJECTIVE)
    state = _states(trials)
    if objective_metric:
        fallback = _metric(trials, objective_metric).where(trials[C.STATUS] == C.FINISHED)
        objective = objective.fillna(fallback)
    # Optuna marks a trial whose objective is NaN as failed; so do we.
    state = state.where(~((state == L.COMPLETE) & objective.isna()), L.FAIL)
    frame = pd.DataFrame({
        C.TRIAL_NUMBER: numbers.astype("int64"), C.RUN_ID: trials[C.RUN_ID], C.NAME: trials[C.NAME],
        C.STATUS: trials[C.STATUS], C.STATE: state, C.OBJECTIVE: objective.astype(float),
        C.DURATION: trials[C.DURATION], C.START_TIME: trials[C.START_TIME],
    })
    params = [c for c in trials.columns if c.startswith(C.PARAMS_PREFIX) and trials[c].notna().any()]
    frame = pd.concat([frame, trials[params]], axis=1)
    return frame.sort_values(C.TRIAL_NUMBER, kind="stable", ignore_index=True)


def _metric(runs: pd.DataFrame, name: str) -> pd.Series:
    column = C.METRICS_PREFIX + name
    if column in runs:
        return pd.to_numeric(runs[column], errors="coerce").astype(float)
    return pd.Series(np.nan, index=runs.index, dtype=float)


def _param(run: pd.Series, name: str) -> str | None:
    value = run.get(C.PARAMS_PREFIX + name)
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _native(value):
    return value.item() if isinstance(value, np.generic) else value


def _distribution(values: pd.Series):
    import optuna.distributions as D

    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        low, high = float(numeric.min()), float(numeric.max())
        if (numeric == numeric.round()).all() and pd.api.types.is_integer_dtype(values):
            return D.IntDistribution(int(low), int(high), log=spans_decades(numeric))
        return D.FloatDistribution(low, high, log=spans_decades(numeric))
    return D.CategoricalDistribution(sorted({_native(v) for v in values}, key=str))
