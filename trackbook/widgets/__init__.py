"""Interactive panels for JupyterLab (ipywidgets + plotly FigureWidget).

Example:
    >>> browser = tb.widgets.RunBrowser(store); browser      # doctest: +SKIP
    >>> browser.selected_ids                                 # doctest: +SKIP
"""

from trackbook.widgets.panels import ChainExplorer, ComparePanel, LiveTrainingPanel, RunBrowser, StudyPanel

__all__ = ["ChainExplorer", "ComparePanel", "LiveTrainingPanel", "RunBrowser", "StudyPanel"]
