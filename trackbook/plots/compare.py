"""Comparison bars: ``tb.compare()``'s table as one bar panel per metric."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trackbook import columns as C
from trackbook.plots._base import TEMPLATE, colours, empty_figure, label


def comparison_bars(comparison: pd.DataFrame, metrics: Sequence[str] | None = None, *, value: str = "final",
                    title: str = "Model comparison") -> go.Figure:
    """Bars of each run's ``final`` (or ``best``) value, one panel per metric.

    Args:
        comparison: ``tb.compare()``'s frame.
        metrics: which metrics (default: every one in the frame).
        value: ``"final"`` or ``"best"``.
    """
    if value not in ("final", "best"):
        raise ValueError(f"value={value!r}: use 'final' or 'best'.")
    prefix = C.FINAL_PREFIX if value == "final" else C.BEST_PREFIX
    available = [c[len(prefix):] for c in comparison.columns if c.startswith(prefix)]
    metrics = available if metrics is None else [m for m in metrics if m in available]
    if comparison.empty or not metrics:
        return empty_figure(title, "nothing to compare")
    names = [label(n if isinstance(n, str) and n else r[:8]) for n, r in zip(comparison[C.NAME], comparison[C.RUN_ID],
                                                                                 strict=True)]
    colour = colours(comparison[C.RUN_ID])
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[label(m) for m in metrics])
    for i, metric in enumerate(metrics, start=1):
        fig.add_trace(go.Bar(x=names, y=comparison[prefix + metric], showlegend=False,
                             marker_color=[colour[r] for r in comparison[C.RUN_ID]],
                             hovertemplate=f"%{{x}}<br>{value} {label(metric)}=%{{y:.4g}}<extra></extra>"),
                      row=1, col=i)
        fig.update_yaxes(title_text=f"{value} {label(metric)}", row=1, col=i)
    fig.update_layout(title=label(title), template=TEMPLATE)
    return fig
