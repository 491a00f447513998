"""Plotly figure builders: tidy DataFrames in, ``plotly.graph_objects.Figure`` out, never shown.

Example:
    >>> fig = tb.plots.learning_curves(store.history(runs, "eval/mean_reward"), runs=runs)  # doctest: +SKIP
    >>> fig = tb.plots.chain_progress(chain.history("eval/mean_reward"), chain_runs=chain.runs)  # doctest: +SKIP
    >>> tb.plots.save_figure(fig, "chain.png")     # PNG/SVG/PDF through Chromium  # doctest: +SKIP
"""

from trackbook.plots.compare import comparison_bars
from trackbook.plots.curves import chain_progress, learning_curves
from trackbook.plots.live import LiveCurves, live_curves
from trackbook.plots.seeds import performance_profiles, probability_of_improvement, score_intervals, seed_curves
from trackbook.plots.export import save_figure, to_image
from trackbook.plots.studies import optimization_history, parallel_coordinates, param_importance, param_slices

__all__ = [
    "LiveCurves",
    "chain_progress",
    "comparison_bars",
    "learning_curves",
    "live_curves",
    "optimization_history",
    "parallel_coordinates",
    "param_importance",
    "param_slices",
    "save_figure",
    "to_image",
    "performance_profiles",
    "probability_of_improvement",
    "score_intervals",
    "seed_curves",
]
