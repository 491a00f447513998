"""Learning curves and chain progress: metric histories as lines."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trackbook import columns as C
from trackbook.plots._base import MAX_POINTS, TEMPLATE, colours, empty_figure, ema, finite, label, run_names
from trackbook.store.frames import downsample


def learning_curves(
    history: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    runs: pd.DataFrame | None = None,
    smoothing: float = 0.0,
    x: str = C.STEP,
    max_points: int = MAX_POINTS,
    title: str = "Learning curves",
) -> go.Figure:
    """One panel per metric, one coloured line per run.

    Args:
        history: ``Store.history()`` (or ``Chain.history()``) frame.
        metrics: which metrics, in panel order (default: all in ``history``).
        runs: ``Store.runs()`` rows, to name runs in the legend (else short ids).
        smoothing: TensorBoard-style EMA weight in [0, 1); the raw curve stays, faint.
        x: the x column (``step``, or ``global_step`` for a chain).
        max_points: points per series kept for display (ends and spikes survive).
    """
    metrics = _metrics(history, metrics)
    if history.empty or not metrics:
        return empty_figure(title, "no metric history to plot")
    data = downsample(finite(history[history[C.METRIC].isin(metrics)]), max_points)
    names = run_names(data, runs)
    colour = colours(names)
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.08 / max(1, len(metrics) - 1)
                        if len(metrics) > 1 else 0.0, subplot_titles=[label(m) for m in metrics])
    shown: set[str] = set()
    traces, rows = [], []  # added in one call: add_trace one by one costs the square of their number
    for row, metric in enumerate(metrics, start=1):
        for rid, series in data[data[C.METRIC] == metric].groupby(C.RUN_ID, observed=True, sort=False):
            series = series.sort_values(x)
            values = series[C.VALUE].to_numpy(dtype=float)
            name = label(names.get(str(rid), str(rid)[:8]))
            common = {"x": series[x].to_numpy(), "legendgroup": str(rid), "line": {"color": colour.get(str(rid))}}
            if smoothing:
                traces.append(go.Scatter(y=values, mode="lines", opacity=0.25, showlegend=False, hoverinfo="skip",
                                         name=name, **common))
                rows.append(row)
                values = ema(values, smoothing)
            traces.append(go.Scatter(y=values, mode="lines", name=name, showlegend=str(rid) not in shown,
                                     hovertemplate=f"{name}<br>{label(x)}=%{{x}}<br>{label(metric)}=%{{y:.4g}}"
                                                   "<extra></extra>", **common))
            rows.append(row)
            shown.add(str(rid))
        fig.update_yaxes(title_text=label(metric), row=row, col=1)
    fig.add_traces(traces, rows=rows, cols=[1] * len(rows))
    fig.update_xaxes(title_text=label(x), row=len(metrics), col=1)
    fig.update_layout(title=label(title), template=TEMPLATE, height=max(350, 260 * len(metrics)),
                      legend_title_text="run", hovermode="closest")
    return fig


def chain_progress(
    chain_history: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    chain_runs: pd.DataFrame | None = None,
    smoothing: float = 0.0,
    max_points: int = MAX_POINTS,
    title: str = "Enhancement chain progress",
) -> go.Figure:
    """A chain's metrics on its continuous ``global_step`` axis, coloured by segment, with
    a dashed line where each enhancement starts.

    Args:
        chain_history: ``Chain.history()`` (has ``global_step`` and ``segment``).
        chain_runs: ``Chain.runs``, to name the segments and mark their starts.
    """
    if not chain_history.empty and C.GLOBAL_STEP not in chain_history:
        raise ValueError("chain_progress takes Chain.history() (with global_step and segment); "
                         "for plain histories use learning_curves().")
    metrics = _metrics(chain_history, metrics)
    if chain_history.empty or not metrics:
        return empty_figure(title, "the chain has no metric history to plot")
    fig = learning_curves(chain_history, metrics, runs=chain_runs, smoothing=smoothing, x=C.GLOBAL_STEP,
                          max_points=max_points, title=title)
    fig.update_layout(legend_title_text="segment")
    # Link boundaries as one list of shapes (and of labels): add_vline per link re-validates
    # every shape drawn so far, the square of the chain's length.
    if chain_runs is not None and not chain_runs.empty:
        links = chain_runs[chain_runs[C.POSITION] > 0]
        starts = [int(v) for v in links[C.OFFSET]]
        labels = [dict(x=start, y=1.0, xref="x", yref="paper", yshift=22, text=label(f"→ {name}"), showarrow=False,
                       xanchor="left", yanchor="bottom", font={"size": 10, "color": "grey"})
                  for start, name in zip(starts, links[C.NAME], strict=True)]
        fig.update_layout(annotations=[*fig.layout.annotations, *labels],
                          margin={"t": 120})  # the segment names sit above the panel titles
    else:
        first = chain_history.groupby(C.SEGMENT)[C.GLOBAL_STEP].min()
        starts = [int(start) for segment, start in first.items() if segment]
    # xaxes are matched across panels, so one shape on x spans them all
    fig.update_layout(shapes=[*fig.layout.shapes, *(
        dict(type="line", x0=start, x1=start, xref="x", y0=0, y1=1, yref="paper",
             line={"dash": "dash", "color": "grey"}, opacity=0.7) for start in starts)])
    return fig


def _metrics(history: pd.DataFrame, metrics: str | Sequence[str] | None) -> list[str]:
    if metrics is None:
        return [str(m) for m in pd.unique(history[C.METRIC].astype(str))] if len(history) else []
    wanted = [metrics] if isinstance(metrics, str) else list(metrics)
    present = set(history[C.METRIC].astype(str)) if len(history) else set()
    return [m for m in wanted if m in present] if present else []


__all__ = ["chain_progress", "learning_curves"]
