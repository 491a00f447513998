"""Study figures: optimization history, parallel coordinates, param slices, importance.

They take ``Study.trials`` (and ``Study.importance()``), never a store.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trackbook import columns as C
from trackbook import layout as L
from trackbook.analysis.studies import completed_trials, spans_decades
from trackbook.plots._base import TEMPLATE, empty_figure, label

_STATE_STYLE = {L.FAIL: ("x", "#d62728"), L.PRUNED: ("triangle-down", "#ff7f0e"), L.TRIAL_RUNNING: ("circle-open", "grey")}


def _param_columns(trials: pd.DataFrame, params: Sequence[str] | None) -> list[str]:
    """``params`` as columns; by default the params that vary between completed trials."""
    columns = [c for c in trials.columns if c.startswith(C.PARAMS_PREFIX)]
    if params is None:
        done = completed_trials(trials)
        columns = [c for c in columns if done[c].astype(str).nunique() > 1]
    else:
        wanted = [p if p.startswith(C.PARAMS_PREFIX) else C.PARAMS_PREFIX + p for p in params]
        unknown = [p for p in wanted if p not in columns]
        if unknown:
            raise ValueError(f"No trial param {unknown}; the trials have {[c[7:] for c in columns]}.")
        columns = wanted
    return columns


def optimization_history(trials: pd.DataFrame, direction: str = "maximize", *,
                         title: str = "Optimization history") -> go.Figure:
    """Objective per trial with the best-so-far line; failed, pruned and running trials
    are marked along the bottom with their state."""
    if trials.empty:
        return empty_figure(title, "the study has no trials")
    done = completed_trials(trials).sort_values(C.TRIAL_NUMBER)
    fig = go.Figure()
    if len(done):
        values = done[C.OBJECTIVE].astype(float)
        best = values.cummax() if direction == "maximize" else values.cummin()
        fig.add_trace(go.Scatter(x=done[C.TRIAL_NUMBER], y=values, mode="markers", name="objective",
                                 text=[label(n) for n in done[C.NAME]],
                                 hovertemplate="trial %{x}: %{y:.4g}<br>%{text}<extra></extra>"))
        fig.add_trace(go.Scatter(x=done[C.TRIAL_NUMBER], y=best, mode="lines", name="best so far",
                                 line={"shape": "hv"}))
    floor = float(done[C.OBJECTIVE].min()) if len(done) else 0.0
    for state, (symbol, colour) in _STATE_STYLE.items():
        rows = trials[trials[C.STATE] == state]
        if len(rows):
            fig.add_trace(go.Scatter(x=rows[C.TRIAL_NUMBER], y=[floor] * len(rows), mode="markers", name=state.lower(),
                                     marker={"symbol": symbol, "color": colour, "size": 10},
                                     hovertemplate=f"trial %{{x}}: {state}<extra></extra>"))
    fig.update_layout(title=label(title), template=TEMPLATE, xaxis_title="trial", yaxis_title=C.OBJECTIVE)
    return fig


def parallel_coordinates(trials: pd.DataFrame, params: Sequence[str] | None = None, *,
                         title: str = "Parallel coordinates") -> go.Figure:
    """One axis per param and the objective, one line per completed trial (coloured by
    objective). Wide-ranging positive params are drawn as log10; categories as codes."""
    done = completed_trials(trials)
    columns = _param_columns(trials, params)
    if done.empty or not columns:
        return empty_figure(title, "no completed trials with params to draw")
    dimensions = []
    for column in columns:
        name = column[len(C.PARAMS_PREFIX):]
        numeric = pd.to_numeric(done[column], errors="coerce")
        if numeric.notna().all():
            if spans_decades(numeric):
                dimensions.append({"label": f"log10({label(name)})", "values": np.log10(numeric.astype(float))})
            else:
                dimensions.append({"label": label(name), "values": numeric.astype(float)})
        else:
            codes, cats = pd.factorize(done[column].astype(str), sort=True)
            dimensions.append({"label": label(name), "values": codes, "tickvals": list(range(len(cats))),
                               "ticktext": [label(c) for c in cats]})
    objective = done[C.OBJECTIVE].astype(float)
    dimensions.append({"label": C.OBJECTIVE, "values": objective})
    fig = go.Figure(go.Parcoords(line={"color": objective, "colorscale": "Viridis", "showscale": True},
                                 dimensions=dimensions))
    fig.update_layout(title=label(title), template=TEMPLATE)
    return fig


def param_slices(trials: pd.DataFrame, params: Sequence[str] | None = None, *,
                 title: str = "Objective by parameter") -> go.Figure:
    """One panel per param: the objective of each completed trial against the param's value."""
    done = completed_trials(trials)
    columns = _param_columns(trials, params)
    if done.empty or not columns:
        return empty_figure(title, "no completed trials with params to draw")
    fig = make_subplots(rows=1, cols=len(columns), shared_yaxes=True,
                        subplot_titles=[label(c[len(C.PARAMS_PREFIX):]) for c in columns])
    for i, column in enumerate(columns, start=1):
        fig.add_trace(go.Scatter(
            x=done[column], y=done[C.OBJECTIVE].astype(float), mode="markers", showlegend=False,
            marker={"color": done[C.TRIAL_NUMBER], "colorscale": "Blues", "size": 9, "line": {"width": 1}},
            text=[f"trial {n}" for n in done[C.TRIAL_NUMBER]], hovertemplate="%{text}: %{x} -> %{y:.4g}<extra></extra>",
        ), row=1, col=i)
        fig.update_xaxes(title_text=label(column[len(C.PARAMS_PREFIX):]),
                         type="log" if spans_decades(done[column]) else None, row=1, col=i)
    fig.update_yaxes(title_text=C.OBJECTIVE, row=1, col=1)
    fig.update_layout(title=label(title), template=TEMPLATE)
    return fig


def param_importance(importance: pd.DataFrame, *, title: str = "Hyper-parameter importance (fANOVA)") -> go.Figure:
    """Horizontal bars of ``Study.importance()``, most important on top."""
    if importance.empty:
        return empty_figure(title, "no importances to draw")
    ordered = importance.sort_values(C.IMPORTANCE)
    fig = go.Figure(go.Bar(x=ordered[C.IMPORTANCE], y=[label(p) for p in ordered[C.PARAM]], orientation="h",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(title=label(title), template=TEMPLATE, xaxis_title="importance", yaxis_title="param")
    return fig
