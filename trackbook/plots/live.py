"""Curves that grow: a figure extended in place as new points of runs arrive.

A follower (``Store.follow()``) hands over the points new since its last poll;
:class:`LiveCurves` appends them to the traces already drawn (one trace per run and
metric, plus the raw points under a smoothed line), so a figure that follows a
training is never rebuilt. The pure parts — the x axis, smoothing that carries on
from where the last poll stopped, grouping of runs by study or chain — are small
functions of their own. :func:`live_curves` draws a whole history the same way, for
a figure without a widget.

Example:
    >>> follower = store.follow("ppo-cartpole", metrics=["rollout/ep_rew_mean"])      # doctest: +SKIP
    >>> fig = go.FigureWidget(); curves = LiveCurves(fig, x="relative_time", smoothing=("ema", 0.6))  # doctest: +SKIP
    >>> update = follower.poll(); curves.update(update.points, update.runs)          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trackbook import columns as C
from trackbook.analysis.chains import base_id, global_steps
from trackbook.plots._base import MAX_POINTS, PALETTE, TEMPLATE, empty_figure, finite, label
from trackbook.store.frames import downsample

#: x-axis choices: the logged step, the wall-clock time of each point, seconds since the run started.
STEP = "step"
WALL_TIME = "wall_time"
RELATIVE_TIME = "relative_time"
X_AXES = (STEP, WALL_TIME, RELATIVE_TIME)
#: Smoothing kinds: TensorBoard's debiased exponential moving average, a trailing rolling mean.
EMA = "ema"
ROLLING = "rolling"
#: Grouping choices: runs of one study (their parent run), runs of one chain (base_model_run_id links).
BY_PARENT = "parent"
BY_CHAIN = "chain"
GROUP_BYS = (BY_PARENT, BY_CHAIN)
NO_PARENT = "(no parent)"
#: Trace roles, in each trace's ``meta``: the points as logged, or their smoothed line.
RAW = "raw"
SMOOTHED = "smoothed"
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_X_TITLES = {STEP: "step", WALL_TIME: "wall time (UTC)", RELATIVE_TIME: "seconds since the run started"}


def smoothing_spec(smoothing: Any) -> tuple[str, float] | None:
    """``smoothing`` as ``(kind, parameter)``, or None for raw curves.

    Example:
        >>> smoothing_spec(0.6), smoothing_spec(("rolling", 20)), smoothing_spec(None)
        (('ema', 0.6), ('rolling', 20), None)

    Args:
        smoothing: None or 0 (raw), an EMA weight in (0, 1), ``("ema", weight)`` or
            ``("rolling", window)`` (a window of points, at least 1).

    Raises:
        ValueError: anything else, saying what is accepted.
    """
    if smoothing is None or (isinstance(smoothing, (int, float)) and not isinstance(smoothing, bool)
                             and smoothing == 0):
        return None
    if isinstance(smoothing, (int, float)) and not isinstance(smoothing, bool):
        smoothing = (EMA, smoothing)
    if isinstance(smoothing, Sequence) and not isinstance(smoothing, str) and len(smoothing) == 2:
        kind, value = smoothing
        if kind == EMA and isinstance(value, (int, float)) and 0 <= value < 1:
            return (EMA, float(value)) if value else None
        if kind == ROLLING and isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1:
            return (ROLLING, int(value))
    raise ValueError(f"smoothing={smoothing!r}: use None (raw points), an EMA weight in [0, 1) such as 0.6, "
                     "('ema', 0.6) or ('rolling', 20) (a window of points).")


class Smoother:
    """Smooths a series that arrives in pieces: each :meth:`extend` carries on from the last.

    Extending piece by piece gives the values smoothing the whole series at once gives:
    the EMA is TensorBoard's (debiased at the start, as ``learning_curves`` draws it);
    the rolling mean is over the last ``window`` points (fewer at the start).
    """

    def __init__(self, spec: tuple[str, float]) -> None:
        self.kind, self.param = spec
        self._last, self._norm = 0.0, 0.0
        self._tail = np.empty(0)

    def extend(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if self.kind == EMA:
            out = np.empty_like(values)
            w, last, norm = self.param, self._last, self._norm
            for i, v in enumerate(values):
                last = last * w + (1 - w) * v
                norm = norm * w + (1 - w)
                out[i] = last / norm
            self._last, self._norm = last, norm
            return out
        window = int(self.param)
        joined = np.concatenate([self._tail, values])
        sums = np.cumsum(np.concatenate([[0.0], joined]))
        ends = np.arange(len(self._tail) + 1, len(joined) + 1)
        starts = np.maximum(ends - window, 0)
        self._tail = joined[-(window - 1):] if window > 1 else np.empty(0)
        return (sums[ends] - sums[starts]) / (ends - starts)


def x_values(points: pd.DataFrame, x: str, start: pd.Timestamp | None = None,
             offset: int = 0, first_step: int | None = None) -> np.ndarray:
    """The x coordinates of one run's points for the chosen axis.

    Args:
        points: ``history()`` rows of one run.
        x: ``"step"`` (with ``offset``, a chain's global step, shifted as
            :func:`trackbook.analysis.chains.global_steps` says), ``"wall_time"`` (UTC
            timestamps) or ``"relative_time"`` (seconds since ``start``).
        start: the run's start time (``runs()["start_time"]``); with ``relative_time``,
            None counts from the run's first point here.
        first_step: the series' first step (what decides the shift by ``offset``);
            None: the first of ``points``.

    Raises:
        ValueError: an unknown ``x``.
    """
    if x == STEP:
        steps = points[C.STEP].to_numpy(dtype=np.int64)
        if not offset or not len(steps):
            return steps
        return global_steps(steps, int(offset), steps.min() if first_step is None else first_step)
    stamps = pd.to_datetime(points[C.TIMESTAMP], utc=True)
    if x == WALL_TIME:
        return stamps.dt.tz_localize(None).to_numpy()
    if x == RELATIVE_TIME:
        origin = pd.Timestamp(start) if start is not None and not pd.isna(start) else stamps.min()
        origin = origin.tz_localize("UTC") if origin.tzinfo is None else origin
        return ((stamps - origin).dt.total_seconds()).to_numpy(dtype=float)
    raise ValueError(f"x={x!r}: use one of {', '.join(X_AXES)}.")


def run_groups(runs: pd.DataFrame, group_by: str | None, *, store: Any = None) -> dict[str, str]:
    """run_id -> the key of its group.

    ``parent``: a run's parent run (its study); a parent is in its own group; a run with
    neither parent nor children is in ``(no parent)``. ``chain``: the first run of its
    chain, following ``base_run_id`` links through the runs given (a base outside them is
    the key of the runs continuing it); base ids are matched as ``tb.chain`` matches them
    when ``store`` is given. None: each run is its own group.

    Raises:
        ValueError: an unknown ``group_by``.
    """
    ids = [str(r) for r in runs[C.RUN_ID]] if len(runs) else []
    if group_by is None:
        return {rid: rid for rid in ids}
    if group_by == BY_PARENT:
        parents = dict(zip(ids, runs[C.PARENT_RUN_ID], strict=True)) if C.PARENT_RUN_ID in runs else {}
        has_children = {p for p in parents.values() if isinstance(p, str) and p}
        return {rid: (p if isinstance(p := parents.get(rid), str) and p else rid if rid in has_children
                      else NO_PARENT) for rid in ids}
    if group_by == BY_CHAIN:
        raw = dict(zip(ids, runs[C.BASE_RUN_ID], strict=True)) if C.BASE_RUN_ID in runs else {}
        base = {}
        for rid, value in raw.items():
            if isinstance(value, str) and value.strip():
                found = base_id(store, value) if store is not None else value.strip()
                base[rid] = found if found is not None else value.strip()
        roots = {}
        for rid in ids:
            seen, cur = {rid}, rid
            while cur in base and base[cur] not in seen:  # a cycle stops at the run where it closes
                cur = base[cur]
                seen.add(cur)
            roots[rid] = cur
        return roots
    raise ValueError(f"group_by={group_by!r}: use None, {BY_PARENT!r} (studies) or {BY_CHAIN!r} (chains).")


def state_text(status: Any, stale: Any = False) -> str:
    """A run's state as shown: its status, ``RUNNING (stale)`` for a run that stopped logging."""
    text = str(status) if isinstance(status, str) else "?"
    return f"{text} (stale)" if text == C.RUNNING and bool(stale) and not pd.isna(stale) else text


class LiveCurves:
    """One subplot row per metric, one trace per run (two with smoothing: raw and
    smoothed), extended in place by :meth:`update`.

    Each trace's ``meta`` is ``{"run_id", "metric", "role"}`` (``role``: ``raw`` or
    ``smoothed``), so what is drawn can be matched to what is stored. An update bringing
    more than ``max_points`` points of one series (the first poll of a long run) is
    down-sampled for drawing as ``learning_curves`` does (ends and spikes kept, the
    smoothing computed on every point); ``history`` keeps every point. Runs are named in
    the legend with their state (``ppo-3 · RUNNING``); with ``group_by`` they share a
    colour and a legend group per study or chain, each run of a group its own dash.

    Attributes:
        history: every raw point drawn so far (``history()`` columns), for a redraw with
            other options and for the user.
        states: run_id -> the states shown, in order (``["RUNNING", "FINISHED"]``).
    """

    def __init__(self, figure: go.Figure, metrics: Sequence[str] | None = None, *, x: str = STEP,
                 smoothing: Any = None, group_by: str | None = None, store: Any = None,
                 offsets: Mapping[str, int] | None = None, title: str = "Following runs",
                 max_points: int | None = MAX_POINTS) -> None:
        if x not in X_AXES:
            raise ValueError(f"x={x!r}: use one of {', '.join(X_AXES)}.")
        if group_by is not None and group_by not in GROUP_BYS:
            raise ValueError(f"group_by={group_by!r}: use None, {BY_PARENT!r} (studies) or {BY_CHAIN!r} (chains).")
        self.figure = figure
        self.x, self.spec, self.group_by, self.store, self.title = x, smoothing_spec(smoothing), group_by, store, title
        self.offsets = dict(offsets or {})
        self.max_points = max_points
        self.metrics: list[str] = list(metrics or [])
        self._fixed_metrics = metrics is not None
        self.history = pd.DataFrame(columns=C.HISTORY_COLUMNS)
        self.runs = pd.DataFrame(columns=C.RUN_COLUMNS)
        self.states: dict[str, list[str]] = {}
        self._traces: dict[tuple[str, str, str], int] = {}
        self._smoothers: dict[tuple[str, str], Smoother] = {}
        self._starts: dict[str, pd.Timestamp] = {}
        #: (run, metric) -> the first step drawn: whether a chain's offset shifts the series.
        self._first_steps: dict[tuple[str, str], int] = {}
        self._groups: dict[str, str] = {}
        self._legend_shown: set[str] = set()
        self._layout()

    # -- the figure ------------------------------------------------------------------------
    def _layout(self) -> None:
        rows = max(1, len(self.metrics))
        base = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08 / max(1, rows - 1)
                             if rows > 1 else 0.0, subplot_titles=[label(m) for m in self.metrics] or None)
        base.update_xaxes(title_text=label(_X_TITLES[self.x]), row=rows, col=1)
        for row, metric in enumerate(self.metrics, start=1):
            base.update_yaxes(title_text=label(metric), row=row, col=1)
        base.update_layout(title=label(self.title), template=TEMPLATE, height=max(360, 260 * rows),
                           hovermode="closest", legend={"groupclick": "toggleitem"} if self.group_by else {},
                           uirevision="follow")  # a user's zoom survives the updates
        self.figure.layout = base.layout
        for trace in self.figure.data:
            self._place(trace, trace.meta["metric"])

    def _place(self, trace: Any, metric: str) -> None:
        row = self.metrics.index(metric) + 1
        trace.xaxis, trace.yaxis = ("x", "y") if row == 1 else (f"x{row}", f"y{row}")

    def _name(self, rid: str) -> str:
        names = dict(zip(self.runs[C.RUN_ID].astype(str), self.runs[C.NAME], strict=True)) if len(self.runs) else {}
        name = names.get(rid)
        return name if isinstance(name, str) and name else rid[:8]

    def _legend(self, rid: str) -> str:
        states = self.states.get(rid)
        return label(f"{self._name(rid)} · {states[-1]}" if states else self._name(rid))

    def _style(self, rid: str) -> dict[str, Any]:
        group = self._groups.get(rid, rid)
        groups = list(dict.fromkeys(self._groups.get(r, r) for r in self._starts))
        colour = PALETTE[groups.index(group) % len(PALETTE)] if group in groups else PALETTE[0]
        members = [r for r in self._starts if self._groups.get(r, r) == group]
        style = {"legendgroup": group, "line": {"color": colour}}
        if self.group_by:
            style["line"]["dash"] = _DASHES[members.index(rid) % len(_DASHES)] if rid in members else "solid"
            style["legendgrouptitle_text"] = label(self._group_label(group))
        return style

    def _group_label(self, key: str) -> str:
        if key == NO_PARENT:
            return key
        what = "study" if self.group_by == BY_PARENT else "chain"
        known = set(self.runs[C.RUN_ID].astype(str)) if len(self.runs) else set()
        return f"{what}: {self._name(key)}" if key in known else f"{what}: {key[:8]}"

    def _new_trace(self, rid: str, metric: str, role: str) -> int:
        name = self._legend(rid)
        common = {"x": [], "y": [], "mode": "lines", "name": name, "meta": {"run_id": rid, "metric": metric,
                                                                          "role": role}, **self._style(rid)}
        if role == RAW and self.spec:
            trace = go.Scatter(opacity=0.25, showlegend=False, hoverinfo="skip", **common)
        else:
            show = rid not in self._legend_shown
            self._legend_shown.add(rid)
            trace = go.Scatter(showlegend=show, hovertemplate=f"{name}<br>%{{x}}<br>{label(metric)}=%{{y:.4g}}"
                                                              "<extra></extra>", **common)
        if metric not in self.metrics:
            self.metrics.append(metric)
            self._layout()
        self.figure.add_traces([trace])
        self._place(self.figure.data[-1], metric)
        index = len(self.figure.data) - 1
        self._traces[(rid, metric, role)] = index
        return index

    # -- updates ---------------------------------------------------------------------------
    def update(self, points: pd.DataFrame, runs: pd.DataFrame | None = None,
               reread: Sequence[tuple[str, str]] = ()) -> int:
        """Append ``points`` (new since the last update) to their traces; ``runs`` (the
        followed runs now) renames legends whose state changed; the ``reread`` series
        (run id, metric: a follower's ``FollowUpdate.reread``) are in ``points`` whole,
        so what was drawn of them is dropped first. Returns the points drawn."""
        if runs is not None and len(runs):
            self._runs_seen(runs)
        for key in reread:
            self._forget(str(key[0]), str(key[1]))
        if points is None or points.empty:
            return 0
        points = finite(points)
        if self._fixed_metrics:
            points = points[points[C.METRIC].astype(str).isin(self.metrics)]
        if points.empty:
            return 0
        self.history = points.copy() if self.history.empty else pd.concat([self.history, points], ignore_index=True)
        drawn = 0
        with self.figure.batch_update():
            for (rid, metric), series in points.groupby([points[C.RUN_ID].astype(str), points[C.METRIC].astype(str)],
                                                          sort=False):
                series = series.sort_values([C.STEP, C.TIMESTAMP], kind="stable")
                if rid not in self._starts:
                    self._start(rid, series)
                first = self._first_steps.setdefault((rid, metric), int(series[C.STEP].iloc[0]))
                xs = x_values(series, self.x, self._starts[rid], self.offsets.get(rid, 0), first)
                values = series[C.VALUE].to_numpy(dtype=float)
                smoothed = self._smoothers.setdefault((rid, metric), Smoother(self.spec)).extend(values) \
                    if self.spec else None
                if self.max_points and len(values) > self.max_points:
                    rows = series.assign(_row=np.arange(len(series)))
                    kept = downsample(rows, self.max_points)["_row"].to_numpy()
                    xs, values = xs[kept], values[kept]
                    smoothed = smoothed[kept] if smoothed is not None else None
                self._append((rid, metric, RAW), xs, values)
                if smoothed is not None:
                    self._append((rid, metric, SMOOTHED), xs, smoothed)
                drawn += len(values)
        return drawn

    def _forget(self, rid: str, metric: str) -> None:
        if len(self.history):
            mine = (self.history[C.RUN_ID].astype(str) == rid) & (self.history[C.METRIC].astype(str) == metric)
            self.history = self.history[~mine].reset_index(drop=True)
        self._smoothers.pop((rid, metric), None)
        self._first_steps.pop((rid, metric), None)
        with self.figure.batch_update():
            for role in (RAW, SMOOTHED):
                if (index := self._traces.get((rid, metric, role))) is not None:
                    self.figure.data[index].x, self.figure.data[index].y = [], []

    def _start(self, rid: str, series: pd.DataFrame) -> None:
        row = self.runs[self.runs[C.RUN_ID].astype(str) == rid] if len(self.runs) else self.runs
        start = row[C.START_TIME].iloc[0] if len(row) and C.START_TIME in row else None
        self._starts[rid] = start if start is not None and not pd.isna(start) else \
            pd.to_datetime(series[C.TIMESTAMP], utc=True).min()
        self._groups = run_groups(self.runs, self.group_by, store=self.store) if len(self.runs) else {}

    def _append(self, key: tuple[str, str, str], xs: np.ndarray, ys: np.ndarray) -> None:
        index = self._traces.get(key)
        if index is None:
            index = self._new_trace(*key)
        trace = self.figure.data[index]
        old_x = trace.x if trace.x is not None else ()
        old_y = trace.y if trace.y is not None else ()
        trace.x = np.concatenate([np.asarray(old_x, dtype=xs.dtype), xs]) if len(old_x) else xs
        trace.y = np.concatenate([np.asarray(old_y, dtype=float), ys]) if len(old_y) else ys

    def _runs_seen(self, runs: pd.DataFrame) -> None:
        self.runs = runs.reset_index(drop=True)
        renamed = []
        for rid, status, stale in zip(runs[C.RUN_ID].astype(str), runs[C.STATUS],
                                      runs[C.STALE] if C.STALE in runs else [False] * len(runs), strict=True):
            state = state_text(status, stale)
            trail = self.states.setdefault(rid, [])
            if not trail or trail[-1] != state:
                trail.append(state)
                renamed.append(rid)
        if renamed and self._traces:
            self._groups = run_groups(self.runs, self.group_by, store=self.store)
            with self.figure.batch_update():
                for (rid, _metric, _role), index in self._traces.items():
                    if rid in renamed:
                        self.figure.data[index].name = self._legend(rid)

    def redraw(self, *, x: str | None = None, smoothing: Any = "unchanged", group_by: Any = "unchanged") -> None:
        """Draw the points kept so far anew with other options (one figure update)."""
        history, runs = self.history, self.runs
        states = self.states
        fresh = LiveCurves(go.Figure(), self.metrics if self._fixed_metrics else None, x=x or self.x,
                           smoothing=self.spec if smoothing == "unchanged" else smoothing,
                           group_by=self.group_by if group_by == "unchanged" else group_by,
                           store=self.store, offsets=self.offsets, title=self.title, max_points=self.max_points)
        fresh.states = {rid: list(trail) for rid, trail in states.items()}
        fresh.runs = runs
        fresh.update(history)
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.layout = fresh.figure.layout
            self.figure.add_traces(list(fresh.figure.data))
        fresh.figure = self.figure
        self.__dict__.update(fresh.__dict__)


def live_curves(history: pd.DataFrame, metrics: str | Sequence[str] | None = None, *,
                runs: pd.DataFrame | None = None, x: str = STEP, smoothing: Any = None,
                group_by: str | None = None, title: str = "Learning curves") -> go.Figure:
    """A history drawn as :class:`LiveCurves` draws it while following (same traces,
    axes, smoothing and groups), as a plain figure.

    Example:
        >>> fig = tb.plots.live_curves(store.history(runs), runs=runs, x="relative_time", group_by="parent")  # doctest: +SKIP

    Args:
        history: ``history()`` rows.
        metrics: the metrics, one row each (default: every metric in ``history``).
        runs: ``runs()`` rows: names, states, start times, parents and bases.
        x: ``step``, ``wall_time`` or ``relative_time``.
        smoothing: None, an EMA weight, ``("ema", w)`` or ``("rolling", n)``.
        group_by: None, ``parent`` or ``chain``.

    Returns:
        The figure (an empty titled one, with a warning, when nothing is left to draw).
    """
    wanted = [metrics] if isinstance(metrics, str) else metrics
    curves = LiveCurves(go.Figure(), wanted, x=x, smoothing=smoothing, group_by=group_by, title=title)
    if runs is not None:
        curves.update(pd.DataFrame(columns=C.HISTORY_COLUMNS), runs)
    if not curves.update(history):
        return empty_figure(title, "no metric history to plot")
    return curves.figure


__all__ = ["LiveCurves", "Smoother", "live_curves", "run_groups", "smoothing_spec", "state_text", "x_values"]
