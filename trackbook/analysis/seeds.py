"""Results across seeds: runs grouped by configuration, curves with bands, rliable's estimates.

An RL result from one seed is an anecdote. This module repeats the estimators of
Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021) and their library ``rliable`` on numpy (rliable 1.2.0 does not import
beside pandas 3), over trackbook's tidy frames; the tests check them against scipy:

- **grouping** (:func:`seed_groups`): runs that share a configuration form a group; by
  default the configuration is every param that varies between the runs except
  seed-like ones (``trackbook.layout.SEED_PARAM``: ``seed``, ``random_seed``, ...).
- **scores** (:func:`seed_scores`): one score per run and metric, the mean of the run's
  last ``last`` finite points (default 1: the final value, as ``compare``'s ``final``).
- **tasks**: rliable aggregates over tasks (games, environments); pass ``task=`` (a
  param or tag, e.g. ``env_id``) to say which runs belong to which task. Without it all
  runs of a group are one task. Scores of several tasks should be normalised first.
- **estimates** (:func:`score_intervals`), with rliable's definitions: ``iqm``, the
  interquartile mean (``scipy.stats.trim_mean(·, 0.25)`` of all run scores of the group
  pooled over tasks); ``mean``, the mean over tasks of the per-task mean; ``median``, the
  median over tasks of the per-task mean (with one task it equals the mean, as in
  rliable); ``optimality_gap``, how far runs fall short of a target score γ on average,
  ``γ - mean(min(score, γ))`` (``mean(max(score, γ)) - γ`` for a lower-is-better metric).
- **intervals**: stratified percentile bootstrap, as rliable's ``StratifiedBootstrap``:
  each replicate resamples the runs with replacement *within each task*; the interval is
  the (1-ci)/2 and (1+ci)/2 quantiles of the replicates. Replicates are drawn as
  multinomial counts from ``numpy.random.default_rng(seed)``: seeded, vectorised, no loop
  per replicate.
- **performance profiles** (:func:`performance_profiles`): rliable's run-score
  distribution, the fraction of runs scoring above τ (below τ when lower is better),
  averaged over tasks, with bootstrap bands.
- **probability of improvement** (:func:`probability_of_improvement`): P(X > Y) + ½ P(X = Y)
  for a run X of one group and a run Y of another (the Mann-Whitney U statistic over
  m·n), averaged over tasks, with an independent stratified bootstrap of both groups.

Curves (:func:`seed_curves`) put runs logged at different steps on one grid by **linear
interpolation**: the grid is the union of the steps the runs logged when that has at
most ``points`` values, else ``points`` evenly spaced steps from the first to the last
logged step; each run is interpolated within its own first and last step and never
extrapolated (``n_runs`` says how many runs cover a step). Each step gets the statistic
across runs (``iqm``, ``mean`` or ``median``) and a percentile-bootstrap band over runs.

"Better" follows ``trackbook.layout.metric_goal`` (``goals={metric: "min"}``, or loss-like
names), the one rule every comparison uses.

Example:
    >>> result = tb.analysis.across_seeds(store, store.runs("ppo"), "eval/mean_reward")  # doctest: +SKIP
    >>> result.groups.table                              # doctest: +SKIP
    >>> result.intervals(targets={"eval/mean_reward": 500})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from trackbook import columns as C
from trackbook import layout as L

if TYPE_CHECKING:
    from trackbook.store.base import RunsLike, Store

_log = logging.getLogger(__name__)

STATISTICS = (C.IQM, C.MEAN, C.MEDIAN, C.OPTIMALITY_GAP)
CURVE_STATISTICS = (C.IQM, C.MEAN, C.MEDIAN)
#: The label of the task when runs are not split into tasks.
ALL_TASKS = "all"


# ------------------------------------------------------------------ grouping

@dataclass(frozen=True)
class SeedGroups:
    """Runs grouped by configuration.

    Attributes:
        table: one row per group: ``group`` (label), the ``by`` columns' values,
            ``n_runs``, ``run_ids`` and ``seeds`` (lists, by seed).
        members: one row per run: ``run_id, name, group, seed, task``.
        by: the runs-frame columns the groups are made of (``params.*`` / ``tags.*``).
        seed_columns: the seed-like columns found and left out of ``by``.
        task: the column naming each run's task, or None (one task).
    """

    table: pd.DataFrame
    members: pd.DataFrame
    by: list[str]
    seed_columns: list[str]
    task: str | None

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        by = ", ".join(_short(c) for c in self.by) or "nothing (one group)"
        return f"<SeedGroups: {len(self.table)} groups of {len(self.members)} runs by {by}>"


def seed_groups(runs: pd.DataFrame, *, by: str | Sequence[str] | None = None, task: str | None = None) -> SeedGroups:
    """Group runs (a ``Store.runs()`` frame) by configuration.

    Example:
        >>> groups = seed_groups(store.runs("ppo"))                  # doctest: +SKIP
        >>> groups.by, groups.table[["group", "n_runs", "seeds"]]    # doctest: +SKIP

    Args:
        runs: ``Store.runs()`` rows.
        by: params or tags to group by (``"learning_rate"``, ``"params.gamma"``,
            ``"tags.variant"``; a bare name is looked up as a param, then as a tag).
            Default: every ``params.*`` column whose values differ between the runs,
            except seed-like params (``trackbook.layout.SEED_PARAM``) and ``task``.
        task: a param or tag naming each run's task (environment); not grouped by.

    Returns:
        The groups, which columns made them (``.by``, also logged at INFO) and which
        seed columns were left out (``.seed_columns``).

    Raises:
        ValueError: ``runs`` has no ``run_id`` column, or ``by``/``task`` names a column
            it does not have.
    """
    if C.RUN_ID not in runs.columns:
        raise ValueError(f"seed_groups takes a Store.runs() frame; got columns {list(runs.columns)[:8]}.")
    runs = runs.reset_index(drop=True)
    task_col = None if task is None else _column(runs, task, "task")
    params = [c for c in runs.columns if c.startswith(C.PARAMS_PREFIX)]
    seed_cols = [c for c in params if L.SEED_PARAM.search(c[len(C.PARAMS_PREFIX):])]
    seed_cols.sort(key=lambda c: c != C.PARAMS_PREFIX + L.PARAM_SEED)
    if by is None:
        by_cols = [c for c in params if c not in seed_cols and c != task_col
                   and runs[c].astype(str).nunique(dropna=False) > 1]
    else:
        by_cols = [_column(runs, b, "by") for b in ([by] if isinstance(by, str) else by)]
    seed = _seed_values(runs, seed_cols)
    labels = _labels(runs, by_cols)
    tasks = runs[task_col].map(_fmt) if task_col else pd.Series(ALL_TASKS, index=runs.index)
    members = pd.DataFrame({C.RUN_ID: runs[C.RUN_ID].astype(str),
                            C.NAME: runs[C.NAME] if C.NAME in runs else None,
                            C.GROUP: labels, C.SEED: seed, C.TASK: tasks.astype(str)})
    if by_cols:
        keys = runs[by_cols].copy()
        keys[C.GROUP] = labels
        order = keys.drop_duplicates(C.GROUP).sort_values(by_cols, kind="stable", na_position="last")
        order = order.reset_index(drop=True)
    else:
        order = pd.DataFrame({C.GROUP: labels.iloc[:1]})
    by_seed = members.sort_values(C.SEED, key=lambda v: pd.to_numeric(v, errors="coerce"), kind="stable",
                                  na_position="last")
    grouped = by_seed.groupby(C.GROUP, sort=False)
    table = pd.DataFrame({C.GROUP: order[C.GROUP]})
    for col in by_cols:
        table[col] = order[col].to_numpy()
    table[C.N_RUNS] = table[C.GROUP].map(grouped.size()).fillna(0).astype("int64")
    table[C.RUN_IDS] = table[C.GROUP].map(grouped[C.RUN_ID].agg(list))
    table[C.SEEDS] = table[C.GROUP].map(grouped[C.SEED].agg(lambda s: [v for v in s if pd.notna(v)]))
    _log.info("seed groups: %d runs in %d groups by %s (seed-like params left out: %s)", len(runs), len(table),
              [_short(c) for c in by_cols] or "nothing", [_short(c) for c in seed_cols] or "none")
    return SeedGroups(table=table, members=members, by=by_cols, seed_columns=seed_cols, task=task_col)


def _column(runs: pd.DataFrame, name: str, arg: str) -> str:
    for candidate in (name, C.PARAMS_PREFIX + name, C.TAGS_PREFIX + name):
        if candidate in runs.columns:
            return candidate
    known = [_short(c) for c in runs.columns if c.startswith((C.PARAMS_PREFIX, C.TAGS_PREFIX))]
    raise ValueError(f"{arg}={name!r}: the runs have no such param or tag (they have {known[:12]}). "
                     "Pass one of those names.")


def _short(column: str) -> str:
    for prefix in (C.PARAMS_PREFIX, C.TAGS_PREFIX):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "None"
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    return str(value)


def _labels(runs: pd.DataFrame, by_cols: list[str]) -> pd.Series:
    if not by_cols:
        return pd.Series("all runs", index=runs.index)
    parts = [runs[c].map(lambda v, c=c: f"{_short(c)}={_fmt(v)}") for c in by_cols]
    out = parts[0]
    for part in parts[1:]:
        out = out + ", " + part
    return out


def _seed_values(runs: pd.DataFrame, seed_cols: list[str]) -> pd.Series:
    if not seed_cols:
        return pd.Series([None] * len(runs), index=runs.index, dtype=object)
    values = runs[seed_cols[0]].astype(object)
    for col in seed_cols[1:]:
        values = values.where(values.notna(), runs[col].astype(object))
    # built as objects: Series.map would infer float64 from ints and None, and turn every seed back into 3.0 or NaN
    return pd.Series([None if pd.isna(v) else (int(v) if isinstance(v, float) and v.is_integer() else v)
                      for v in values], index=runs.index, dtype=object)


# ------------------------------------------------------------------ scores

def seed_scores(history: pd.DataFrame, groups: SeedGroups, metrics: str | Sequence[str] | None = None, *,
                last: int = 1) -> pd.DataFrame:
    """One score per run and metric: the mean of its last ``last`` finite points by step.

    Runs that never logged a finite value of a metric have no score for it (they are
    left out, and ``n_runs`` of the estimates counts only the runs that scored).

    Example:
        >>> scores = seed_scores(store.history(groups.members, "eval/mean_reward"), groups, last=3)  # doctest: +SKIP

    Args:
        history: ``Store.history()`` of the groups' runs.
        groups: :func:`seed_groups`' answer.
        metrics: which metrics (default: all in ``history``).
        last: how many final evaluations make a run's score (1 = the final value).

    Returns:
        Columns ``group, run_id, seed, task, metric, score``, groups in their table's
        order, runs in the order given.

    Raises:
        ValueError: ``last`` is not a positive int.
    """
    if not isinstance(last, (int, np.integer)) or last < 1:
        raise ValueError(f"last={last!r}: pass how many final evaluations to average, an int >= 1.")
    hist = _select(history, groups, metrics)
    if hist.empty:
        return pd.DataFrame(columns=C.SCORE_COLUMNS)
    hist = hist.sort_values([C.RUN_ID, C.METRIC, C.STEP], kind="stable")
    tail = hist.groupby([C.RUN_ID, C.METRIC], observed=True, sort=False).tail(int(last))
    score = tail.groupby([C.RUN_ID, C.METRIC], observed=True, sort=False)[C.VALUE].mean().rename(C.SCORE)
    score = score.reset_index()
    score[C.RUN_ID] = score[C.RUN_ID].astype(str)
    score[C.METRIC] = score[C.METRIC].astype(str)
    out = groups.members.merge(score, on=C.RUN_ID, how="inner")
    out = _in_group_order(out, groups, _metric_order(history, metrics))
    return out[C.SCORE_COLUMNS].reset_index(drop=True)


def _select(history: pd.DataFrame, groups: SeedGroups, metrics: str | Sequence[str] | None) -> pd.DataFrame:
    if history.empty:
        return history
    wanted = _metric_order(history, metrics)
    values = history[C.VALUE].to_numpy(dtype=float)
    # isin on the categorical columns themselves: astype(str) of a 2,000,000-point frame costs seconds
    keep = np.isfinite(values) & history[C.METRIC].isin(wanted).to_numpy()
    keep &= history[C.RUN_ID].isin(groups.members[C.RUN_ID].tolist()).to_numpy()
    return history[keep]


def _metric_order(history: pd.DataFrame, metrics: str | Sequence[str] | None) -> list[str]:
    if metrics is None:
        return [str(m) for m in pd.unique(history[C.METRIC])]
    return [metrics] if isinstance(metrics, str) else list(dict.fromkeys(metrics))


def _in_group_order(frame: pd.DataFrame, groups: SeedGroups, metrics: list[str]) -> pd.DataFrame:
    """Rows by group (the table's order), then metric (``metrics``' order), else as given."""
    group_rank = frame[C.GROUP].map({g: i for i, g in enumerate(groups.table[C.GROUP])}).to_numpy()
    metric_rank = frame[C.METRIC].map({m: i for i, m in enumerate(metrics)}).to_numpy()
    return frame.iloc[np.lexsort([metric_rank, group_rank])]


# ------------------------------------------------------------------ the bootstrap kernel

def _trim(n: np.ndarray, statistic: str) -> np.ndarray:
    """How many of ``n`` sorted values each end drops for ``statistic``."""
    if statistic == C.IQM:
        return np.floor(0.25 * n)  # scipy.stats.trim_mean(·, 0.25): int(0.25 * n) from each end
    if statistic == C.MEDIAN:
        return np.floor((n - 1) / 2)  # one value left (odd n) or the middle two (even n); n >= 1
    return np.zeros_like(n)


def _counted_weights(counts: np.ndarray, statistic: str) -> np.ndarray:
    """Weights over sorted values that give ``statistic`` of samples given as counts.

    ``counts`` (B, n, ...) says how often each of n sorted values is drawn in each of B
    samples. The trimmed mean of a sample is a weighted sum: value i weighs the overlap
    of its copies' positions ``[c_<i, c_<=i)`` with the kept positions ``[lo, n - lo)``,
    divided by their number. No sort per replicate.
    """
    n = counts.sum(axis=1, keepdims=True)
    lo = _trim(n, statistic)
    hi = n - lo
    after = np.cumsum(counts, axis=1)
    before = after - counts
    return (np.minimum(after, hi) - np.maximum(before, lo)).clip(min=0) / (hi - lo)  # every sample has n >= 1


def _counted(sorted_values: np.ndarray, counts: np.ndarray, statistic: str) -> np.ndarray:
    """``statistic`` of the samples ``counts`` (B, n) draws from ``sorted_values`` (n,)."""
    return _counted_weights(counts, statistic) @ sorted_values


def _interval(replicates: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap replicates: a 1-D array, or one row per quantity.

    Rows, not columns: partitioning contiguous rows is several times faster. Replicates
    are never NaN (steps no run covers get no replicates, see ``_band``).
    """
    low, high = np.quantile(replicates, [(1 - ci) / 2, (1 + ci) / 2], axis=-1)
    return low, high


def _check(ci: float, reps: int) -> None:
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci!r}: pass the interval's coverage in (0, 1), e.g. 0.95.")
    if not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"reps={reps!r}: pass the number of bootstrap replicates, an int >= 1 (e.g. 2000).")


def _counts(rng: np.random.Generator, n: int, reps: int) -> np.ndarray:
    """(reps, n) float draw counts: each row resamples n runs with replacement."""
    drawn = rng.integers(0, n, size=(reps, n)) + (np.arange(reps) * n)[:, None]
    return np.bincount(drawn.ravel(), minlength=reps * n).reshape(reps, n).astype(float)


def _one_blas_thread() -> threadpool_limits:
    """BLAS on one thread while the bootstrap runs: its products are small (replicates x
    runs), and waking a BLAS thread pool for each costs ten times the product on a shared
    machine. A ``with`` in the estimators' bodies, not a decorator: mutmut does not mutate
    decorated functions (scripts/mutation)."""
    return threadpool_limits(limits=1, user_api="blas")


# ------------------------------------------------------------------ curves

def seed_curves(history: pd.DataFrame, groups: SeedGroups, metrics: str | Sequence[str] | None = None, *,
                statistic: str = C.IQM, points: int = 200, ci: float = 0.95, reps: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """Each group's curve over steps: the statistic across its runs and a bootstrap band.

    Runs are put on one step grid by linear interpolation (the union of logged steps
    when it has at most ``points`` values, else ``points`` evenly spaced steps; a run
    counts only between its own first and last step, never extrapolated).

    Example:
        >>> curves = seed_curves(store.history(groups.members, "eval/mean_reward"), groups)  # doctest: +SKIP

    Args:
        history: ``Store.history()`` of the groups' runs.
        groups: :func:`seed_groups`' answer.
        metrics: which metrics (default: all in ``history``).
        statistic: ``"iqm"``, ``"mean"`` or ``"median"`` across runs at each step.
        points: the most grid steps per metric.
        ci: the band's coverage (percentile bootstrap over the runs at each step).
        reps: bootstrap replicates.
        seed: seed of the bootstrap's generator.

    Returns:
        Columns ``group, metric, step, estimate, low, high, n_runs``.

    Raises:
        ValueError: an unknown statistic, or a bad ``points``, ``ci`` or ``reps``.
    """
    if statistic not in CURVE_STATISTICS:
        raise ValueError(f"statistic={statistic!r}: use one of {CURVE_STATISTICS}.")
    if not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points={points!r}: pass the most grid steps per metric, an int >= 2.")
    _check(ci, reps)
    hist = _select(history, groups, metrics)
    if hist.empty:
        return pd.DataFrame(columns=C.CURVE_COLUMNS)
    with _one_blas_thread():
        rng = np.random.default_rng(seed)
        group_of = dict(zip(groups.members[C.RUN_ID], groups.members[C.GROUP], strict=True))
        frames = []
        for metric in _metric_order(history, metrics):
            points_of = hist[(hist[C.METRIC] == metric).to_numpy()]
            if points_of.empty:
                continue
            series = points_of.groupby([C.RUN_ID, C.STEP], observed=True, sort=True)[C.VALUE].mean().reset_index()
            steps = np.unique(series[C.STEP].to_numpy())
            grid = steps if len(steps) <= points else np.unique(np.round(np.linspace(steps[0], steps[-1], points)))
            curves = {}
            for rid, run in series.groupby(C.RUN_ID, observed=True, sort=False):
                x, y = run[C.STEP].to_numpy(dtype=float), run[C.VALUE].to_numpy(dtype=float)
                curves[str(rid)] = np.interp(grid, x, y, left=np.nan, right=np.nan)
            for group in groups.table[C.GROUP]:
                ids = [r for r in groups.members[C.RUN_ID] if group_of[r] == group and r in curves]
                if not ids:
                    continue
                estimate, low, high, n = _band(np.vstack([curves[r] for r in ids]), statistic, ci, reps, rng)
                covered = n > 0
                frames.append(pd.DataFrame({C.GROUP: group, C.METRIC: metric, C.STEP: grid[covered].astype("int64"),
                                            C.ESTIMATE: estimate[covered], C.LOW: low[covered], C.HIGH: high[covered],
                                            C.N_RUNS: n[covered]}))
        # hist holds finite points of a wanted metric from a member run: some group has a curve
        return pd.concat(frames, ignore_index=True)[C.CURVE_COLUMNS]


def _band(matrix: np.ndarray, statistic: str, ci: float, reps: int, rng: np.random.Generator):
    """Statistic, band and count per column of ``matrix`` (runs x steps, NaN = no value).

    The band is pointwise, so only each step's own bootstrap distribution matters: at a
    step with m runs, a replicate draws m of them with replacement. Because such draws
    are exchangeable, counts over the step's *sorted* values have the same distribution
    as counts over runs; one draw of counts per m then serves every step with m runs,
    and each replicate's statistic is a fixed weighting of sorted values: one matrix
    product instead of a sort per replicate and step.
    """
    values = np.sort(matrix, axis=0)  # NaN sorts last
    covered = (~np.isnan(matrix)).sum(axis=0)
    values = np.nan_to_num(values)
    estimate = np.full(matrix.shape[1], np.nan)
    low, high = estimate.copy(), estimate.copy()
    for m in np.unique(covered[covered > 0]):
        steps = np.flatnonzero(covered == m)
        block = values[:m, steps]
        estimate[steps] = (_counted_weights(np.ones((1, m)), statistic) @ block)[0]
        replicates = block.T @ _counted_weights(_counts(rng, int(m), reps), statistic).T  # steps x replicates
        low[steps], high[steps] = _interval(replicates, ci)
    return estimate, low, high, covered


# ------------------------------------------------------------------ final scores

def _sign(metric: str, goals: Mapping[str, str] | None) -> float:
    return 1.0 if L.metric_goal(metric, goals) == L.MAX else -1.0


def _target(targets: float | Mapping[str, float] | None, metric: str) -> float | None:
    if targets is None:
        return None
    if isinstance(targets, Mapping):
        value = targets.get(metric)
        return None if value is None else float(value)
    return float(targets)


def _strata(frame: pd.DataFrame) -> list[np.ndarray]:
    """The scores of one group and metric, split by task (the bootstrap's strata)."""
    return [g[C.SCORE].to_numpy(dtype=float) for _, g in frame.groupby(C.TASK, sort=True)]


def _stratified_counts(rng: np.random.Generator, sizes: list[int], reps: int) -> np.ndarray:
    """(reps, sum(sizes)) counts: runs resampled with replacement within each task."""
    return np.hstack([_counts(rng, n, reps) for n in sizes])


def _aggregates(strata: list[np.ndarray], counts: np.ndarray, statistics: Sequence[str],
                gap_target: float | None, sign: float) -> dict[str, np.ndarray]:
    """rliable's aggregates of the samples ``counts`` (B, runs) draws from ``strata``."""
    sizes = [len(s) for s in strata]
    pooled = np.concatenate(strata)
    edges = np.cumsum([0, *sizes])
    out = {}
    task_means = np.column_stack([counts[:, a:b] @ pooled[a:b] / (b - a) for a, b in zip(edges, edges[1:])])
    if C.IQM in statistics:
        order = np.argsort(pooled)
        out[C.IQM] = _counted(pooled[order], counts[:, order], C.IQM)
    if C.MEAN in statistics:
        out[C.MEAN] = task_means.mean(axis=1)
    if C.MEDIAN in statistics:
        out[C.MEDIAN] = np.median(task_means, axis=1)
    if C.OPTIMALITY_GAP in statistics and gap_target is not None:
        short = np.minimum(sign * pooled, sign * gap_target)
        gaps = np.column_stack([counts[:, a:b] @ short[a:b] / (b - a) for a, b in zip(edges, edges[1:])])
        out[C.OPTIMALITY_GAP] = sign * gap_target - gaps.mean(axis=1)
    return out


def score_intervals(scores: pd.DataFrame, *, statistics: Sequence[str] | None = None,
                    targets: float | Mapping[str, float] | None = None, goals: Mapping[str, str] | None = None,
                    ci: float = 0.95, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IQM, mean, median and optimality gap per group and metric, with stratified bootstrap intervals.

    Definitions are rliable's (see the module docstring); the interval is the percentile
    interval of ``reps`` stratified bootstrap replicates (runs resampled within each task).

    Example:
        >>> score_intervals(seed_scores(hist, groups), targets={"eval/mean_reward": 500})  # doctest: +SKIP

    Args:
        scores: :func:`seed_scores`' frame.
        statistics: which of ``iqm, mean, median, optimality_gap`` (default: the first
            three, and ``optimality_gap`` where ``targets`` gives the metric a target).
        targets: the score γ the optimality gap measures against: one number for every
            metric or ``{metric: γ}`` (e.g. 500 for CartPole-v1's return).
        goals: ``{metric: "min"}`` for lower-is-better metrics (else
            ``trackbook.layout.metric_goal`` decides from the name).
        ci: the intervals' coverage.
        reps: bootstrap replicates.
        seed: seed of the bootstrap's generator.

    Returns:
        Columns ``group, metric, statistic, estimate, low, high, n_runs, n_seeds, n_tasks``.

    Raises:
        ValueError: an unknown statistic, ``optimality_gap`` asked for without a
            target, or a bad ``ci`` or ``reps``.
    """
    _check(ci, reps)
    asked = list(statistics) if statistics is not None else list(STATISTICS)
    unknown = [s for s in asked if s not in STATISTICS]
    if unknown:
        raise ValueError(f"statistics={unknown}: use some of {STATISTICS}.")
    if statistics is not None and C.OPTIMALITY_GAP in asked and targets is None:
        raise ValueError("statistics includes 'optimality_gap' but no targets= was given: pass the score to "
                         "measure against, e.g. targets={'eval/mean_reward': 500}.")
    with _one_blas_thread():
        rng = np.random.default_rng(seed)
        rows = []
        for (group, metric), frame in _by_group_metric(scores):
            strata = _strata(frame)
            target = _target(targets, metric)
            sign = _sign(metric, goals)
            point = _aggregates(strata, np.ones((1, sum(map(len, strata)))), asked, target, sign)
            counts = _stratified_counts(rng, [len(s) for s in strata], reps)
            boot = _aggregates(strata, counts, asked, target, sign)
            seeds = frame[C.SEED].dropna()
            for stat in asked:
                if stat not in point:
                    continue
                low, high = _interval(boot[stat], ci)
                rows.append({C.GROUP: group, C.METRIC: metric, C.STATISTIC: stat, C.ESTIMATE: float(point[stat][0]),
                             C.LOW: float(low), C.HIGH: float(high), C.N_RUNS: len(frame),
                             C.N_SEEDS: int(seeds.nunique()) if len(seeds) else len(frame), C.N_TASKS: len(strata)})
        return pd.DataFrame(rows, columns=C.INTERVAL_COLUMNS)


def _by_group_metric(scores: pd.DataFrame):
    """(group, metric) and their rows, in the scores' order."""
    if scores.empty:
        return []
    return list(scores.groupby([C.GROUP, C.METRIC], sort=False))


def performance_profiles(scores: pd.DataFrame, *, taus: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
                         points: int = 101, goals: Mapping[str, str] | None = None, ci: float = 0.95,
                         reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Performance profiles: per group and metric, the fraction of runs better than each τ.

    rliable's run-score distribution: per task the fraction of runs scoring above τ
    (below τ for a lower-is-better metric), averaged over tasks, with stratified
    percentile-bootstrap bands.

    Example:
        >>> profiles = performance_profiles(scores, taus=np.linspace(0, 500, 51))  # doctest: +SKIP

    Args:
        scores: :func:`seed_scores`' frame.
        taus: thresholds, for every metric or ``{metric: taus}``; default ``points``
            evenly spaced values from the metric's lowest to its highest score.
        points: how many default thresholds.
        goals: ``{metric: "min"}`` for lower-is-better metrics.
        ci, reps, seed: as in :func:`score_intervals`.

    Returns:
        Columns ``group, metric, tau, fraction, low, high``.
    """
    _check(ci, reps)
    with _one_blas_thread():
        rng = np.random.default_rng(seed)
        frames = []
        for (group, metric), frame in _by_group_metric(scores):
            chosen = taus.get(metric) if isinstance(taus, Mapping) else taus
            if chosen is None:
                all_scores = scores.loc[scores[C.METRIC] == metric, C.SCORE].to_numpy(dtype=float)
                chosen = np.linspace(all_scores.min(), all_scores.max(), points)
            grid = np.asarray(chosen, dtype=float)
            sign = _sign(metric, goals)
            strata = _strata(frame)
            sizes = [len(s) for s in strata]
            pooled = np.concatenate(strata)
            # each run's indicator per tau, weighted so that a plain sum is the mean over tasks of per-task fractions
            above = (sign * pooled[:, None] > sign * grid[None, :]) / np.repeat(np.asarray(sizes, float) * len(sizes), sizes)[:, None]
            fraction = above.sum(axis=0)
            boot = above.T @ _stratified_counts(rng, sizes, reps).T  # taus x replicates
            low, high = _interval(boot, ci)
            frames.append(pd.DataFrame({C.GROUP: group, C.METRIC: metric, C.TAU: grid, C.FRACTION: fraction,
                                        C.LOW: low, C.HIGH: high}))
        if not frames:
            return pd.DataFrame(columns=C.PROFILE_COLUMNS)
        return pd.concat(frames, ignore_index=True)[C.PROFILE_COLUMNS]


def probability_of_improvement(scores: pd.DataFrame, x: str, y: str, *, metrics: str | Sequence[str] | None = None,
                               goals: Mapping[str, str] | None = None, ci: float = 0.95, reps: int = 2000,
                               seed: int = 0) -> pd.DataFrame:
    """P(a run of group ``x`` beats a run of group ``y``), per metric, with a bootstrap interval.

    rliable's probability of improvement: per task P(X > Y) + ½ P(X = Y) over every pair
    of runs (the Mann-Whitney U statistic divided by m·n; "beats" means lower for a
    lower-is-better metric), averaged over the tasks both groups ran. The interval
    resamples each group's runs independently within each task (percentile bootstrap).

    Example:
        >>> probability_of_improvement(scores, "lr=0.001", "lr=0.0003")  # doctest: +SKIP

    Args:
        scores: :func:`seed_scores`' frame.
        x, y: group labels (``seed_groups().table["group"]``).
        metrics: which metrics (default: every metric both groups scored).
        goals: ``{metric: "min"}`` for lower-is-better metrics.
        ci, reps, seed: as in :func:`score_intervals`.

    Returns:
        Columns ``metric, group_x, group_y, probability, low, high``.

    Raises:
        ValueError: ``x`` or ``y`` is not a group of ``scores``.
    """
    _check(ci, reps)
    known = list(pd.unique(scores[C.GROUP])) if len(scores) else []
    for arg, group in (("x", x), ("y", y)):
        if group not in known:
            raise ValueError(f"{arg}={group!r} is not a group of these scores (groups: {known[:10]}). "
                             "Pass a label from seed_groups(...).table['group'].")
    with _one_blas_thread():
        rng = np.random.default_rng(seed)
        wanted = _metric_order(scores, metrics)
        rows = []
        for metric in wanted:
            fx = scores[(scores[C.GROUP] == x) & (scores[C.METRIC] == metric)]
            fy = scores[(scores[C.GROUP] == y) & (scores[C.METRIC] == metric)]
            tasks = sorted(set(fx[C.TASK]) & set(fy[C.TASK]))
            if not tasks:
                continue
            sign = _sign(metric, goals)
            point, boot = 0.0, np.zeros(reps)
            for task in tasks:
                a = sign * fx.loc[fx[C.TASK] == task, C.SCORE].to_numpy(dtype=float)
                b = sign * fy.loc[fy[C.TASK] == task, C.SCORE].to_numpy(dtype=float)
                wins = (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])
                point += wins.mean()  # the Mann-Whitney U statistic of a over b, divided by m·n
                ca, cb = _counts(rng, len(a), reps), _counts(rng, len(b), reps)
                boot += np.einsum("bi,ij,bj->b", ca, wins, cb) / (len(a) * len(b))
            low, high = _interval(boot / len(tasks), ci)
            rows.append({C.METRIC: metric, C.GROUP_X: x, C.GROUP_Y: y, C.PROBABILITY: point / len(tasks),
                         C.LOW: float(low), C.HIGH: float(high)})
        return pd.DataFrame(rows, columns=C.IMPROVEMENT_COLUMNS)


# ------------------------------------------------------------------ one door over a store

class AcrossSeeds:
    """Runs of a store grouped by configuration, with their scores and history at hand.

    Example:
        >>> result = tb.analysis.across_seeds(store, runs, "eval/mean_reward", last=3)  # doctest: +SKIP
        >>> result.intervals(targets={"eval/mean_reward": 500})                         # doctest: +SKIP
        >>> tb.plots.seed_curves(result.curves())                                        # doctest: +SKIP

    Attributes:
        groups: :class:`SeedGroups` (``.table``, ``.by``, ``.members``).
        history: the runs' history of ``metrics``.
        scores: :func:`seed_scores` of that history.
        metrics: the metrics asked for.
        goals: ``{metric: "min"}`` overrides, passed on to every estimate.
    """

    def __init__(self, groups: SeedGroups, history: pd.DataFrame, metrics: list[str], *, last: int,
                 goals: Mapping[str, str] | None) -> None:
        self.groups = groups
        self.history = history
        self.metrics = metrics
        self.goals = dict(goals or {})
        self.scores = seed_scores(history, groups, metrics, last=last)

    def __repr__(self) -> str:
        return f"<AcrossSeeds: {len(self.groups)} groups, {len(self.groups.members)} runs, metrics {self.metrics}>"

    def curves(self, metrics: str | Sequence[str] | None = None, **options) -> pd.DataFrame:
        """:func:`seed_curves` of the groups (options: ``statistic``, ``points``, ``ci``, ``reps``, ``seed``)."""
        return seed_curves(self.history, self.groups, metrics or self.metrics, **options)

    def intervals(self, **options) -> pd.DataFrame:
        """:func:`score_intervals` of the scores (options: ``statistics``, ``targets``, ``ci``, ``reps``, ``seed``)."""
        return score_intervals(self.scores, goals=self.goals, **options)

    def profiles(self, **options) -> pd.DataFrame:
        """:func:`performance_profiles` of the scores."""
        return performance_profiles(self.scores, goals=self.goals, **options)

    def improvement(self, x: str, y: str, **options) -> pd.DataFrame:
        """:func:`probability_of_improvement` of group ``x`` over group ``y``."""
        return probability_of_improvement(self.scores, x, y, goals=self.goals, **options)


def across_seeds(store: Store, runs: RunsLike, metrics: str | Sequence[str], *,
                 by: str | Sequence[str] | None = None, task: str | None = None, last: int = 1,
                 goals: Mapping[str, str] | None = None) -> AcrossSeeds:
    """Group ``runs`` by configuration and read their ``metrics`` for statistics across seeds.

    Example:
        >>> result = across_seeds(store, store.runs("ppo-sweep"), "eval/mean_reward")  # doctest: +SKIP
        >>> result.groups.by                                                           # doctest: +SKIP
        ['params.learning_rate']

    Args:
        store: where the runs live.
        runs: a ``Store.runs()`` frame, or run ids (read with ``store.lookup``).
        metrics: the metric or metrics to score.
        by: what to group by (see :func:`seed_groups`; default every varying param but
            seed-like ones).
        task: a param or tag naming each run's task.
        last: how many final evaluations make a run's score.
        goals: ``{metric: "min"}`` for lower-is-better metrics.

    Raises:
        RunNotFound: a run id is unknown.
        ValueError: ``by`` or ``task`` names no param or tag of the runs.
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not isinstance(runs, pd.DataFrame) or not any(c.startswith(C.PARAMS_PREFIX) for c in runs.columns):
        runs = store.lookup(runs)  # ids (or a frame without params): their rows, in the order given
    groups = seed_groups(runs, by=by, task=task)
    history = store.history(groups.members[C.RUN_ID].tolist(), metrics)
    return AcrossSeeds(groups, history, metrics, last=last, goals=goals)


__all__ = [
    "AcrossSeeds",
    "SeedGroups",
    "across_seeds",
    "performance_profiles",
    "probability_of_improvement",
    "score_intervals",
    "seed_curves",
    "seed_groups",
    "seed_scores",
]
