"""Interactive panels for JupyterLab (ipywidgets + plotly FigureWidget); FollowPanel also in Marimo.

Example:
    >>> browser = tb.widgets.RunBrowser(store); browser      # doctest: +SKIP
    >>> browser.selected_ids                                 # doctest: +SKIP
    >>> tb.widgets.FollowPanel(store, "ppo-cartpole")         # live, every 2 s  # doctest: +SKIP
"""

from trackbook.widgets.follow import FollowPanel
from trackbook.widgets.panels import ChainExplorer, ComparePanel, LiveTrainingPanel, RunBrowser, StudyPanel

__all__ = ["ChainExplorer", "ComparePanel", "FollowPanel", "LiveTrainingPanel", "RunBrowser", "StudyPanel"]
