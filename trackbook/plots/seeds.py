"""Figures of results across seeds: grouped curves with bands, interval estimates,
performance profiles and probabilities of improvement (``trackbook.analysis.seeds``' frames)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb
from plotly.subplots import make_subplots

from trackbook import columns as C
from trackbook.plots._base import MAX_POINTS, TEMPLATE, colours, empty_figure, label

_NAMES = {C.IQM: "IQM", C.MEAN: "Mean", C.MEDIAN: "Median", C.OPTIMALITY_GAP: "Optimality gap"}


def _fill(colour: str, alpha: float = 0.2) -> str:
    r, g, b = hex_to_rgb(colour) if colour.startswith("#") else (99, 110, 250)
    return f"rgba({r},{g},{b},{alpha})"


def _thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """At most ``max_points`` evenly spaced rows, the ends kept (a band has no spikes to save)."""
    if len(frame) <= max_points:
        return frame
    return frame.iloc[np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(int))]


def _band_traces(x, estimate, low, high, *, name: str, colour: str, show: bool, hover: str) -> list[go.Scatter]:
    """A filled band (one closed polygon) and the line through it."""
    x = np.asarray(x)
    low, high = np.asarray(low, float), np.asarray(high, float)
    ok = ~(np.isnan(low) | np.isnan(high))
    band = go.Scatter(x=np.concatenate([x[ok], x[ok][::-1]]), y=np.concatenate([high[ok], low[ok][::-1]]),
                      fill="toself", fillcolor=_fill(colour), line={"width": 0}, hoverinfo="skip",
                      legendgroup=name, showlegend=False, name=name)
    line = go.Scatter(x=x, y=estimate, mode="lines", name=name, legendgroup=name, showlegend=show,
                      line={"color": colour}, customdata=np.column_stack([low, high]), hovertemplate=hover)
    return [band, line]


def seed_curves(curves: pd.DataFrame, metrics: str | Sequence[str] | None = None, *, max_points: int = MAX_POINTS,
                title: str = "Learning curves across seeds") -> go.Figure:
    """One panel per metric; per group its curve (IQM, mean or median across runs) and band.

    Example:
        >>> fig = tb.plots.seed_curves(tb.analysis.seed_curves(hist, groups))  # doctest: +SKIP

    Args:
        curves: :func:`trackbook.analysis.seed_curves`' frame.
        metrics: which metrics, in panel order (default: all in ``curves``).
        max_points: grid steps per curve kept for display.
        title: the figure's title.

    Returns:
        The figure; empty and titled (with a warning) when there is nothing to draw.
    """
    metrics = _wanted(curves, metrics)
    if curves.empty or not metrics:
        return empty_figure(title, "no grouped curves to plot")
    colour = colours(curves[C.GROUP])
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, subplot_titles=[label(m) for m in metrics],
                        vertical_spacing=0.08 / max(1, len(metrics) - 1) if len(metrics) > 1 else 0.0)
    shown: set[str] = set()
    for row, metric in enumerate(metrics, start=1):
        for group, frame in curves[curves[C.METRIC] == metric].groupby(C.GROUP, sort=False):
            frame = _thin(frame.sort_values(C.STEP), max_points)
            name = label(group)
            hover = (f"{name}<br>step=%{{x}}<br>{label(metric)}=%{{y:.4g}} "
                     "[%{customdata[0]:.4g}, %{customdata[1]:.4g}]<extra></extra>")
            fig.add_traces(_band_traces(frame[C.STEP], frame[C.ESTIMATE], frame[C.LOW], frame[C.HIGH], name=name,
                                        colour=colour[group], show=group not in shown, hover=hover),
                           rows=row, cols=1)
            shown.add(group)
        fig.update_yaxes(title_text=label(metric), row=row, col=1)
    fig.update_xaxes(title_text="step", row=len(metrics), col=1)
    fig.update_layout(title=label(title), template=TEMPLATE, height=max(350, 260 * len(metrics)),
                      legend_title_text="group")
    return fig


def score_intervals(intervals: pd.DataFrame, *, statistics: Sequence[str] | None = None,
                    title: str = "Interval estimates across seeds") -> go.Figure:
    """rliable's interval-estimate panel: per metric (row) and statistic (column), each
    group's estimate as a dot and its confidence interval as a bar.

    Example:
        >>> fig = tb.plots.score_intervals(tb.analysis.score_intervals(scores))  # doctest: +SKIP

    Args:
        intervals: :func:`trackbook.analysis.score_intervals`' frame.
        statistics: which statistics, in column order (default: all in the frame).
        title: the figure's title.
    """
    if intervals.empty:
        return empty_figure(title, "no interval estimates to plot")
    stats = [s for s in (statistics or pd.unique(intervals[C.STATISTIC])) if s in set(intervals[C.STATISTIC])]
    metrics = list(pd.unique(intervals[C.METRIC]))
    if not stats:
        return empty_figure(title, "none of the statistics asked for is in the frame")
    groups = list(pd.unique(intervals[C.GROUP]))
    colour = colours(groups)
    fig = make_subplots(rows=len(metrics), cols=len(stats), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"{label(m)}: {_NAMES.get(s, s)}" for m in metrics for s in stats])
    for row, metric in enumerate(metrics, start=1):
        for col, stat in enumerate(stats, start=1):
            frame = intervals[(intervals[C.METRIC] == metric) & (intervals[C.STATISTIC] == stat)]
            frame = frame.set_index(C.GROUP).reindex(groups).dropna(subset=[C.ESTIMATE]).reset_index()
            if frame.empty:
                continue
            est = frame[C.ESTIMATE].to_numpy(float)
            fig.add_trace(go.Scatter(
                x=est, y=[label(g) for g in frame[C.GROUP]], mode="markers", showlegend=False,
                marker={"color": [colour[g] for g in frame[C.GROUP]], "size": 9},
                error_x={"type": "data", "symmetric": False, "array": frame[C.HIGH] - est,
                         "arrayminus": est - frame[C.LOW], "thickness": 6, "width": 0},
                customdata=frame[[C.LOW, C.HIGH, C.N_RUNS]].to_numpy(),
                hovertemplate="%{y}<br>%{x:.4g} [%{customdata[0]:.4g}, %{customdata[1]:.4g}]"
                              "<br>%{customdata[2]} runs<extra></extra>"), row=row, col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=label(title), template=TEMPLATE, height=max(300, (120 + 28 * len(groups)) * len(metrics)),
                      width=max(700, 260 * len(stats)))
    return fig


def performance_profiles(profiles: pd.DataFrame, metrics: str | Sequence[str] | None = None, *,
                         title: str = "Performance profiles") -> go.Figure:
    """Per metric, each group's fraction of runs scoring better than τ, with its band.

    Example:
        >>> fig = tb.plots.performance_profiles(tb.analysis.performance_profiles(scores))  # doctest: +SKIP

    Args:
        profiles: :func:`trackbook.analysis.performance_profiles`' frame.
        metrics: which metrics, in panel order (default: all in the frame).
        title: the figure's title.
    """
    metrics = _wanted(profiles, metrics)
    if profiles.empty or not metrics:
        return empty_figure(title, "no performance profiles to plot")
    colour = colours(profiles[C.GROUP])
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[label(m) for m in metrics])
    shown: set[str] = set()
    for col, metric in enumerate(metrics, start=1):
        for group, frame in profiles[profiles[C.METRIC] == metric].groupby(C.GROUP, sort=False):
            frame = frame.sort_values(C.TAU)
            name = label(group)
            hover = f"{name}<br>τ=%{{x:.4g}}<br>fraction=%{{y:.2f}} [%{{customdata[0]:.2f}}, %{{customdata[1]:.2f}}]<extra></extra>"
            fig.add_traces(_band_traces(frame[C.TAU], frame[C.FRACTION], frame[C.LOW], frame[C.HIGH], name=name,
                                        colour=colour[group], show=group not in shown, hover=hover), rows=1, cols=col)
            shown.add(group)
        fig.update_xaxes(title_text=f"{label(metric)} τ", row=1, col=col)
    fig.update_yaxes(title_text="fraction of runs better than τ", range=[0, 1.02], row=1, col=1)
    fig.update_layout(title=label(title), template=TEMPLATE, legend_title_text="group")
    return fig


def probability_of_improvement(improvement: pd.DataFrame, *,
                               title: str = "Probability of improvement") -> go.Figure:
    """Each pair's P(a run of X beats a run of Y) with its interval; 0.5 is a tie.

    Example:
        >>> poi = tb.analysis.probability_of_improvement(scores, "lr=0.001", "lr=0.0003")  # doctest: +SKIP
        >>> fig = tb.plots.probability_of_improvement(poi)  # doctest: +SKIP

    Args:
        improvement: :func:`trackbook.analysis.probability_of_improvement`' frame, or
            several concatenated.
        title: the figure's title.
    """
    if improvement.empty:
        return empty_figure(title, "no probabilities of improvement to plot")
    metrics = list(pd.unique(improvement[C.METRIC]))
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, subplot_titles=[label(m) for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        frame = improvement[improvement[C.METRIC] == metric]
        p = frame[C.PROBABILITY].to_numpy(float)
        pairs = [f"P({label(x)} > {label(y)})" for x, y in zip(frame[C.GROUP_X], frame[C.GROUP_Y], strict=True)]
        fig.add_trace(go.Scatter(x=p, y=pairs, mode="markers", showlegend=False, marker={"size": 9},
                                 error_x={"type": "data", "symmetric": False, "array": frame[C.HIGH] - p,
                                          "arrayminus": p - frame[C.LOW], "thickness": 6, "width": 0},
                                 hovertemplate="%{y} = %{x:.2f}<extra></extra>"), row=1, col=col)
        fig.add_vline(x=0.5, line_dash="dash", line_color="grey", row=1, col=col)
        fig.update_xaxes(range=[0, 1], title_text="probability", row=1, col=col)
    fig.update_layout(title=label(title), template=TEMPLATE, height=max(280, 120 + 40 * len(improvement)))
    return fig


def _wanted(frame: pd.DataFrame, metrics: str | Sequence[str] | None) -> list[str]:
    present = list(pd.unique(frame[C.METRIC].astype(str))) if len(frame) else []
    if metrics is None:
        return present
    return [m for m in ([metrics] if isinstance(metrics, str) else metrics) if m in present]


__all__ = ["performance_profiles", "probability_of_improvement", "score_intervals", "seed_curves"]
