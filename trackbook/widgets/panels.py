"""The panels: RunBrowser, ChainExplorer, StudyPanel, ComparePanel, LiveTrainingPanel.

Each composes the store's DataFrames, ``trackbook.analysis`` and ``trackbook.plots``;
none holds logic of its own beyond wiring widgets. Display one as the last expression
of a cell; drive one from code through its widgets (``panel.filter.value = ...``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook import layout as L
from trackbook import plots
from trackbook import analysis
from trackbook.analysis.compare import compare
from trackbook.analysis.seeds import across_seeds
from trackbook.widgets._base import Panel, figure_widget, show_figure, table_html
from trackbook.widgets.follow import FollowSwitch

_ALL = "(all)"
#: Grouping choices: each run alone, or runs grouped by configuration (every varying param but seeds).
_NO_GROUPS = "(each run)"
_CONFIGURATION = "(configuration)"


def _group_options(runs: pd.DataFrame) -> list[str]:
    """Grouping choices for a runs frame: none, by configuration, or by one param."""
    params = sorted(c[len(C.PARAMS_PREFIX):] for c in runs.columns if c.startswith(C.PARAMS_PREFIX))
    return [_NO_GROUPS, _CONFIGURATION, *params]


def _by(choice: str) -> str | None:
    return None if choice == _CONFIGURATION else choice


def _group_summary(result: Any, intervals: pd.DataFrame) -> pd.DataFrame:
    """One row per group and metric: runs, seeds, and each statistic as 'estimate [low, high]'."""
    text = [f"{e:.4g} [{lo:.4g}, {hi:.4g}]" for e, lo, hi in
            zip(intervals[C.ESTIMATE], intervals[C.LOW], intervals[C.HIGH], strict=True)]
    wide = intervals.assign(interval=text).pivot(index=[C.GROUP, C.METRIC], columns=C.STATISTIC, values="interval")
    wide.columns.name = None
    groups = result.groups.table.set_index(C.GROUP)[[C.N_RUNS, C.SEEDS]]
    return groups.join(wide.reset_index(C.METRIC), how="inner").reset_index()


def _experiment_of(store: Any, run_id: str | None, experiment: str | None, arg: str, what: str) -> str:
    """``experiment``, else the experiment of ``run_id``; one of them is needed."""
    if run_id and not experiment:
        experiment = store.run(run_id)[C.EXPERIMENT]
    if not experiment:
        raise ValueError(f"Give {arg}= or experiment= to choose the {what} from.")
    return experiment


class RunBrowser(Panel):
    """Pick an experiment, filter and sort its runs, select some, plot their metrics.

    An experiment of thousands of runs opens on its first page (``page_size`` runs in the
    sort order): the table and, when no run is selected, the figure show that page.

    Attributes:
        selected: the selected runs' rows (the runs of the current page when none is selected).
        selected_ids: their run ids.
    """

    def __init__(self, store: Any, experiment: str | None = None, *, metrics: Sequence[str] | None = None,
                 page_size: int = 25) -> None:
        super().__init__()
        self.store = store
        self.runs = pd.DataFrame()
        self.page_size = page_size
        #: Which page of ``page_size`` runs the table shows (and the figure, when none is selected).
        self.page = W.BoundedIntText(description="Page", value=1, min=1, max=1, layout=W.Layout(width="160px"))
        self.experiment = W.Dropdown(description="Experiment")
        self.status_filter = W.Dropdown(description="Status", options=[_ALL, *C.STATUSES], value=_ALL)
        self.filter = W.Text(description="Filter", placeholder="e.g. params.learning_rate > 1e-4",
                             continuous_update=False, layout=W.Layout(width="420px"))
        self.sort = W.Dropdown(description="Sort by")
        self.descending = W.Checkbox(description="descending", value=True, indent=False)
        self.run_select = W.SelectMultiple(description="Runs", rows=8, layout=W.Layout(width="560px"))
        self.metric_select = W.SelectMultiple(description="Metrics", rows=8, layout=W.Layout(width="320px"))
        #: Plot each run, or groups of runs over seeds (IQM and 95% bootstrap band per group).
        self.group_by = W.Dropdown(description="Group", options=[_NO_GROUPS, _CONFIGURATION], value=_NO_GROUPS)
        self.groups_table = W.HTML()
        self.table = W.HTML()
        self.figure = figure_widget()
        self._wanted_metrics = list(metrics or [])
        #: On: the figure follows the selected runs (the page's when none is) live, extended in place.
        self.follow = FollowSwitch(store, self.figure, self._follow_spec, message=self.message)
        self.widget.children = [
            W.HBox([self.experiment, self.status_filter]), W.HBox([self.filter, self.sort, self.descending]),
            self.status, W.HBox([self.run_select, self.metric_select]),
            W.HBox([self.group_by, self.page, self.follow.checkbox]), self.table, self.groups_table, self.figure,
        ]
        self.guarded(lambda: self._load_experiments(experiment))
        self.experiment.observe(lambda _: self.guarded(self.refresh), "value")
        for control in (self.status_filter, self.filter, self.sort, self.descending):
            control.observe(self.debounced(self.refresh), "value")
        for control in (self.run_select, self.metric_select):
            control.observe(self.debounced(self.plot), "value")
        self.group_by.observe(lambda _: self.guarded(self.plot), "value")
        self.page.observe(lambda _: self.guarded(self._show_page), "value")
        self.follow.checkbox.observe(lambda _: self.guarded(self.plot), "value")
        self.guarded(self.refresh)

    def _load_experiments(self, experiment: str | None) -> None:
        experiments = self.store.experiments()
        active = experiments[experiments[C.LIFECYCLE_STAGE] == "active"]
        names = active[C.NAME].tolist()
        if not names:
            self.message("The store has no experiments yet: log a run first.")
            return
        self.experiment.options = names
        if experiment not in names:  # the experiment with the newest run, else the newest experiment
            newest = self.store.runs().head(1)
            experiment = newest[C.EXPERIMENT].iloc[0] if len(newest) else \
                active.sort_values(C.CREATION_TIME)[C.NAME].iloc[-1]
        self.experiment.value = experiment

    @property
    def page_runs(self) -> pd.DataFrame:
        """The runs of the current page, in the sort order."""
        start = (self.page.value - 1) * self.page_size
        return self.runs.iloc[start : start + self.page_size]

    @property
    def selected(self) -> pd.DataFrame:
        chosen = list(self.run_select.value)
        return self.runs[self.runs[C.RUN_ID].isin(chosen)] if chosen else self.page_runs

    @property
    def selected_ids(self) -> list[str]:
        return self.selected[C.RUN_ID].tolist()

    def refresh(self) -> None:
        """Re-read the runs with the current experiment, status, filter and sort."""
        if not self.experiment.value:
            return
        status = None if self.status_filter.value == _ALL else self.status_filter.value
        runs = self.store.runs(self.experiment.value, filter=self.filter.value.strip() or None, status=status)
        sortable = [C.START_TIME, C.NAME, C.STATUS, C.DURATION] + [c for c in runs.columns
                                                                   if c.startswith(C.METRICS_PREFIX)]
        if list(self.sort.options) != sortable:
            keep = self.sort.value if self.sort.value in sortable else C.START_TIME
            self.sort.options = sortable
            self.sort.value = keep
        if len(runs) and self.sort.value in runs:
            runs = runs.sort_values(self.sort.value, ascending=not self.descending.value, na_position="last",
                                    kind="stable")
        self.runs = runs.reset_index(drop=True)
        self.run_select.options = [(f"{r[C.NAME]}  [{r[C.STATUS]}]", r[C.RUN_ID]) for _, r in self.runs.iterrows()]
        metrics = sorted(c[len(C.METRICS_PREFIX):] for c in runs.columns if c.startswith(C.METRICS_PREFIX))
        chosen = [m for m in (self.metric_select.value or self._wanted_metrics) if m in metrics] or metrics[:2]
        self.metric_select.options = metrics
        self.metric_select.value = chosen
        options = _group_options(self.runs)
        if list(self.group_by.options) != options:
            keep = self.group_by.value if self.group_by.value in options else _NO_GROUPS
            self.group_by.options = options
            self.group_by.value = keep
        pages = max(1, -(-len(self.runs) // self.page_size))
        self.page.max = pages
        self.page.value = min(self.page.value, pages)
        if len(self.runs) > self.page_size:
            self.message(f"{len(self.runs)} runs match; page {self.page.value} of {pages} shown "
                         f"({self.page_size} a page; select runs to plot others).")
        elif len(self.runs):
            self.message(f"{len(self.runs)} runs match")
        elif self.filter.value.strip() or status:
            self.message("0 runs match: loosen the filter or the status.")
        else:
            self.message(f"Experiment {self.experiment.value!r} has no runs yet.")
        self._show_page()

    def _show_page(self) -> None:
        chosen = list(self.metric_select.value)
        shown = [C.NAME, C.STATUS, C.START_TIME, C.DURATION, *[C.METRICS_PREFIX + m for m in chosen]]
        page = self.page_runs
        self.table.value = table_html(page[[c for c in shown if c in page]], max_rows=self.page_size)
        self.plot()

    def _follow_spec(self) -> dict[str, Any]:
        return {"runs": self.selected_ids, "metrics": list(self.metric_select.value), "smoothing": 0.6,
                "title": "Learning curves, live"}

    def plot(self) -> None:
        metrics = list(self.metric_select.value)
        runs = self.selected
        self.follow.stop()
        if self.follow.on and len(runs) and metrics:
            self.groups_table.value = ""
            self.follow.restart()
            return
        if runs.empty or not metrics:
            show_figure(self.figure, plots.learning_curves(pd.DataFrame(columns=C.HISTORY_COLUMNS), title="No runs"))
            return
        if self.group_by.value != _NO_GROUPS:
            result = across_seeds(self.store, runs, metrics, by=_by(self.group_by.value))
            self.groups_table.value = table_html(result.groups.table.drop(columns=[C.RUN_IDS]))
            show_figure(self.figure, plots.seed_curves(result.curves(), metrics,
                                                       title="IQM across seeds, 95% bootstrap band"))
            return
        self.groups_table.value = ""
        hist = self.store.history(runs[C.RUN_ID].tolist(), metrics, max_points=1000)
        show_figure(self.figure, plots.learning_curves(hist, metrics, runs=runs, smoothing=0.6))


class ChainExplorer(Panel):
    """Pick a chain (by its last run), pick metrics, see progress and before/after per link."""

    def __init__(self, store: Any, run_id: str | None = None, *, experiment: str | None = None,
                 metrics: Sequence[str] | None = None) -> None:
        super().__init__()
        self.store = store
        self.chain = None
        self.leaf = W.Dropdown(description="Chain end", layout=W.Layout(width="520px"))
        self.metric_select = W.SelectMultiple(description="Metrics", rows=5)
        self.figure = figure_widget()
        self.links = W.HTML()
        self.tree = W.HTML()
        self._wanted = list(metrics or ())  # none: the reward metric the chain logged
        #: On: the chain's runs are followed live on its global step, curves extended in place.
        self.follow = FollowSwitch(store, self.figure, self._follow_spec, message=self.message)
        self.widget.children = [W.HBox([self.leaf, self.metric_select, self.follow.checkbox]), self.status, self.figure,
                                W.HTML("<b>Before / after each link</b>"), self.links,
                                W.HTML("<b>Tree of the experiment</b>"), self.tree]
        self.guarded(lambda: self._load(run_id, experiment))
        self.leaf.observe(lambda _: self.guarded(self.refresh), "value")
        self.metric_select.observe(self.debounced(self.refresh), "value")
        self.follow.checkbox.observe(lambda _: self.guarded(self.refresh), "value")
        self.guarded(self.refresh)

    def _follow_spec(self) -> dict[str, Any]:
        runs = self.chain.runs
        return {"runs": runs[C.RUN_ID].tolist(), "metrics": list(self.metric_select.value), "group_by": "chain",
                "offsets": dict(zip(runs[C.RUN_ID], runs[C.OFFSET].astype(int), strict=True)),
                "title": "Enhancement chain progress, live (x: the chain's global step)"}

    def _load(self, run_id: str | None, experiment: str | None) -> None:
        experiment = _experiment_of(self.store, run_id, experiment, "run_id", "chains")
        tree = analysis.chain_tree(self.store, experiment)
        self.tree.value = table_html(tree[[C.NAME, C.STATUS, C.DEPTH, C.CHILDREN, C.MISSING_BASE]])
        leaves = tree[tree[C.CHILDREN] == 0]
        options = [(f"{'  ' * int(r[C.DEPTH])}{r[C.NAME]} (depth {int(r[C.DEPTH])})", r[C.RUN_ID])
                   for _, r in leaves.iterrows()]
        if run_id and run_id not in [v for _, v in options]:
            options.append((self.store.run(run_id)[C.NAME], run_id))
        if not options:
            self.message(f"Experiment {experiment!r} has no enhancement chain (no run has base_model_run_id).")
            return
        self.leaf.options = options
        self.leaf.value = run_id or options[-1][1]

    def refresh(self) -> None:
        if not self.leaf.value:
            return
        self.chain = analysis.chain(self.store, self.leaf.value)
        logged = sorted(c[len(C.METRICS_PREFIX):] for c in self.chain.runs.columns if c.startswith(C.METRICS_PREFIX)
                        and self.chain.runs[c].notna().any())
        if list(self.metric_select.options) != logged:
            reward = L.reward_metric(logged)
            chosen = [m for m in self._wanted if m in logged] or ([reward] if reward else logged[:1])
            self.metric_select.options = logged
            self.metric_select.value = chosen
        metrics = list(self.metric_select.value)
        broken = f" Its root's base {self.chain.missing_base} is missing." if self.chain.missing_base else ""
        self.message(f"{len(self.chain)} runs in this chain.{broken}")
        self.follow.stop()
        if self.follow.on and metrics:
            self.follow.restart()
        else:
            show_figure(self.figure, plots.chain_progress(self.chain.history(metrics), metrics,
                                                          chain_runs=self.chain.runs))
        links = self.chain.links(metrics)
        self.links.value = table_html(links.drop(columns=[C.RUN_ID, C.BASE_RUN_ID]))


class StudyPanel(Panel):
    """A study: trials table, optimization history, parallel coordinates, importance;
    click a trial's point (or pick it) to see its curves."""

    def __init__(self, store: Any, parent_run_id: str | None = None, *, experiment: str | None = None,
                 metric: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.study = None
        self.metric = metric
        self.study_select = W.Dropdown(description="Study", layout=W.Layout(width="520px"))
        self.trial_select = W.Dropdown(description="Trial")
        self.history_fig, self.parallel_fig, self.importance_fig, self.trial_fig = (
            figure_widget(), figure_widget(), figure_widget(), figure_widget())
        self.trials = W.HTML()
        self.widget.children = [self.study_select, self.status, self.history_fig, self.parallel_fig,
                                self.importance_fig, self.trials, self.trial_select, self.trial_fig]
        self.guarded(lambda: self._load(parent_run_id, experiment))
        self.study_select.observe(lambda _: self.guarded(self.refresh), "value")
        self.trial_select.observe(lambda _: self.guarded(self.show_trial), "value")
        self.guarded(self.refresh)

    def _load(self, parent_run_id: str | None, experiment: str | None) -> None:
        experiment = _experiment_of(self.store, parent_run_id, experiment, "parent_run_id", "studies")
        studies = analysis.study_list(self.store, experiment)
        if studies.empty:
            self.message(f"Experiment {experiment!r} has no study (no run with child runs).")
            return
        self.study_select.options = [(f"{r[C.NAME]} ({r['n_trials']} trials)", r[C.RUN_ID])
                                     for _, r in studies.iterrows()]
        self.study_select.value = parent_run_id or studies[C.RUN_ID].iloc[-1]

    def refresh(self) -> None:
        if not self.study_select.value:
            return
        study = self.study = analysis.study(self.store, self.study_select.value)
        trials = study.trials
        params = [c[len(C.PARAMS_PREFIX):] for c in study.param_columns]
        show_figure(self.history_fig, plots.optimization_history(trials, study.direction))
        self.history_fig.data[0].on_click(self._clicked)
        show_figure(self.parallel_fig, plots.parallel_coordinates(trials, params or None))
        try:
            show_figure(self.importance_fig, plots.param_importance(study.importance()))
        except Exception as exc:  # noqa: BLE001 - too few trials is a message, not a failure
            show_figure(self.importance_fig, plots.param_importance(pd.DataFrame(columns=[C.PARAM, C.IMPORTANCE]),
                                                                    title=str(exc)[:80]))
        shown = [C.TRIAL_NUMBER, C.NAME, C.STATE, C.OBJECTIVE, C.DURATION, *study.param_columns]
        self.trials.value = table_html(trials[shown])
        self.trial_select.options = [(f"trial {int(t[C.TRIAL_NUMBER])} [{t[C.STATE]}]", t[C.RUN_ID])
                                     for _, t in trials.iterrows()]
        best = study.best
        self.trial_select.value = (best if best is not None else trials.iloc[0])[C.RUN_ID]
        bad = trials[trials[C.STATE] != L.COMPLETE]
        best_text = "—" if best is None else f"{best['objective']:.4g}"
        not_complete = ", ".join(f"{n} ({s})" for n, s in zip(bad[C.NAME], bad[C.STATE], strict=True))
        self.message(f"{len(trials)} trials, best objective {best_text}"
                     + (f"; not complete: {not_complete}" if len(bad) else ""))
        self.show_trial()

    def _clicked(self, trace: Any, points: Any, _state: Any) -> None:
        if points.point_inds:
            number = int(trace.x[points.point_inds[0]])
            match = self.study.trials[self.study.trials[C.TRIAL_NUMBER] == number]
            if len(match):
                self.trial_select.value = match[C.RUN_ID].iloc[0]

    def show_trial(self) -> None:
        run_id = self.trial_select.value
        if not run_id:
            return
        hist = self.store.history(run_id, max_points=1000)
        logged = set(hist[C.METRIC].astype(str))
        metric = self.metric or L.reward_metric(logged)  # none given: the reward metric the trial logged
        metrics = [m for m in dict.fromkeys((metric, "rollout/ep_rew_mean", L.METRIC_OBJECTIVE)) if m in logged] \
            or sorted(logged)[:2]
        runs = self.study.trials[self.study.trials[C.RUN_ID] == run_id]
        show_figure(self.trial_fig, plots.learning_curves(hist, metrics, runs=runs, title="Trial curves"))


class ComparePanel(Panel):
    """Runs side by side: pick metrics, see the table of params that differ, values and ranks."""

    def __init__(self, store: Any, run_ids: Sequence[str], *, metrics: Sequence[str] | None = None) -> None:
        super().__init__()
        self.store = store
        self.run_ids = list(run_ids)
        runs = store.runs(run_ids=self.run_ids)
        logged = sorted(c[len(C.METRICS_PREFIX):] for c in runs.columns if c.startswith(C.METRICS_PREFIX))
        self.metric_select = W.SelectMultiple(description="Metrics", options=logged, rows=6,
                                              value=[m for m in (metrics or logged[:2]) if m in logged])
        self.value_kind = W.ToggleButtons(options=["final", "best"], value="final")
        #: Compare each run, or groups of runs over seeds (IQM, mean, median with 95% intervals).
        self.group_by = W.Dropdown(description="Group", options=_group_options(runs), value=_NO_GROUPS)
        self.table = W.HTML()
        self.figure = figure_widget()
        self.comparison = pd.DataFrame()
        #: With grouping on: score_intervals() of the groups.
        self.intervals = pd.DataFrame()
        self.widget.children = [W.HBox([self.metric_select, self.value_kind, self.group_by]), self.status,
                                self.figure, self.table]
        self.metric_select.observe(self.debounced(self.refresh), "value")
        self.value_kind.observe(lambda _: self.guarded(self.refresh), "value")
        self.group_by.observe(lambda _: self.guarded(self.refresh), "value")
        self.guarded(self.refresh)

    def refresh(self) -> None:
        metrics = list(self.metric_select.value)
        if not metrics:
            self.message("Pick at least one metric.")
            return
        if self.group_by.value != _NO_GROUPS:
            result = across_seeds(self.store, self.run_ids, metrics, by=_by(self.group_by.value))
            self.intervals = result.intervals()
            self.table.value = table_html(_group_summary(result, self.intervals), max_rows=100)
            show_figure(self.figure, plots.score_intervals(self.intervals, title="Final scores across seeds"))
            self.message(f"{len(self.run_ids)} runs in {len(result.groups)} groups by "
                         f"{[c.removeprefix(C.PARAMS_PREFIX) for c in result.groups.by] or 'nothing'}; "
                         "intervals: 95% stratified bootstrap over seeds")
            return
        self.comparison = compare(self.store, self.run_ids, metrics)
        self.table.value = table_html(self.comparison.drop(columns=[C.RUN_ID]).T.reset_index(), max_rows=100)
        show_figure(self.figure, plots.comparison_bars(self.comparison, metrics, value=self.value_kind.value))
        self.message(f"{len(self.run_ids)} runs compared")


class LiveTrainingPanel(Panel):
    """Curves that grow while ``model.learn()`` runs in the same notebook.

    Attach it to a :class:`~trackbook.tracking.TrackingCallback`; points are appended
    to a buffer by the callback's listener (microseconds) and drawn at most every
    ``refresh`` seconds by extending the traces in place, so the figure neither
    flickers nor slows training.

    Example:
        >>> cb = tb.TrackingCallback(store, experiment="ppo", eval_env=env, eval_freq=1000)  # doctest: +SKIP
        >>> panel = LiveTrainingPanel(cb, ["rollout/ep_rew_mean", "eval/mean_reward"]); panel
        >>> model.learn(20_000, callback=cb)
    """

    def __init__(self, callback: Any, metrics: Sequence[str] | None = None, *,
                 refresh: float = 2.0) -> None:
        super().__init__()
        # none given: the reward metrics a training may log (traces of those never logged stay empty)
        self.metrics = list(metrics) if metrics else list(L.REWARD_METRICS[:3])
        self.refresh = refresh
        self.figure = figure_widget()
        self.figure.update_layout(title="Live training", xaxis_title="step", height=380)
        for metric in self.metrics:
            self.figure.add_scatter(x=[], y=[], mode="lines+markers", name=metric, marker={"size": 4})
        self._buffer: dict[str, list[tuple[int, float]]] = {m: [] for m in self.metrics}
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self.points_drawn = 0
        self.draws = 0
        self.widget.children = [self.status, self.figure]
        self.message("Waiting for the first points ...")
        callback.add_listener(self)

    def __call__(self, metrics: dict[str, Any], step: int) -> None:
        """The callback's listener: buffer the points, draw when ``refresh`` has passed."""
        with self._lock:
            for name, value in metrics.items():
                if name in self._buffer and np.isfinite(value):
                    self._buffer[name].append((step, float(value)))
        now = time.monotonic()
        if now - self._last_draw >= self.refresh:
            self._last_draw = now
            self.draw()

    def draw(self) -> None:
        """Move buffered points into the figure (also call it once after training)."""
        with self._lock:
            pending = {m: pts for m, pts in self._buffer.items() if pts}
            self._buffer = {m: [] for m in self.metrics}
        if not pending:
            return
        with self.figure.batch_update():
            for trace in self.figure.data:
                points = pending.get(trace.name)
                if points:
                    trace.x = tuple(trace.x or ()) + tuple(p[0] for p in points)
                    trace.y = tuple(trace.y or ()) + tuple(p[1] for p in points)
                    self.points_drawn += len(points)
        self.draws += 1
        last = {t.name: t.y[-1] for t in self.figure.data if t.y}
        self.message("latest: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items()))
