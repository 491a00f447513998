"""What every figure builder shares: labels safe to show, colours per run, empty figures."""

from __future__ import annotations

import html
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from trackbook import columns as C

#: Points per series kept for display; longer series are down-sampled (ends and spikes kept).
MAX_POINTS = 2000
PALETTE = qualitative.Plotly + qualitative.D3
TEMPLATE = "plotly_white"


def label(text: object) -> str:
    """``text`` escaped so that plotly shows it as written (run names may hold HTML)."""
    return html.escape(str(text), quote=False)


def colours(keys) -> dict:
    """A stable colour per key, in the order the keys come."""
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(dict.fromkeys(keys))}


def run_names(frame: pd.DataFrame, runs: pd.DataFrame | None) -> dict[str, str]:
    """run_id -> display name (``runs``' names when given, else the shortened id)."""
    ids = frame[C.RUN_ID].astype(str).unique() if C.RUN_ID in frame else []
    names = {rid: rid[:8] for rid in ids}
    if runs is not None and not runs.empty:
        names.update({rid: f"{name}" for rid, name in zip(runs[C.RUN_ID], runs[C.NAME], strict=True)
                      if rid in names and isinstance(name, str) and name})
    return names


def empty_figure(title: str, why: str) -> go.Figure:
    """A titled figure that says why it is empty; warns once so scripts notice."""
    warnings.warn(f"{title}: {why}", UserWarning, stacklevel=3)
    fig = go.Figure(layout={"title": {"text": label(title)}, "template": TEMPLATE})
    fig.add_annotation(text=label(why), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": "grey"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def finite(frame: pd.DataFrame, column: str = C.VALUE) -> pd.DataFrame:
    """Rows whose ``column`` is a finite number (NaN and ±inf cannot be drawn)."""
    return frame[np.isfinite(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float))]


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: exponential moving average, debiased at the start."""
    if weight <= 0:
        return values
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing={weight}: use a weight in [0, 1), e.g. 0.6.")
    out = np.empty_like(values, dtype=float)
    last, norm = 0.0, 0.0
    for i, v in enumerate(values):
        last = last * weight + (1 - weight) * v
        norm = norm * weight + (1 - weight)
        out[i] = last / norm
    return out
