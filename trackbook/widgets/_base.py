"""What every panel shares: a root widget, messages instead of tracebacks, debouncing,
and figures that update in place."""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

from trackbook.reports.display import table_html as escaped_table


class Panel:
    """A panel displays as its ``widget`` (a VBox); ``message`` says what is wrong in words."""

    #: Seconds a text input must rest before the panel reacts (0: react at once).
    debounce = 0.4

    def __init__(self) -> None:
        self.status = W.HTML()
        self.widget = W.VBox()
        self._local = threading.local()  # per thread: is the panel itself setting values?

    @property
    def _quiet(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    @contextlib.contextmanager
    def quietly(self):
        """Set widget values from code without triggering the panel's own observers
        (in this thread; a user's change arriving meanwhile is still seen)."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def message(self, text: str = "", *, error: bool = False) -> None:
        colour = "#b00020" if error else "#555"
        self.status.value = f'<div style="color:{colour}">{html.escape(text)}</div>' if text else ""

    def guarded(self, action: Callable[[], None]) -> None:
        """Run ``action`` (unless the panel is setting values itself); a failure shows as a
        message on the panel, not a traceback."""
        if self._quiet:
            return
        try:
            with self.quietly():
                action()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a readable message
            self.message(f"{type(exc).__name__}: {exc}", error=True)

    def debounced(self, action: Callable[[], None]) -> Callable[[Any], None]:
        """An observer that runs ``action`` once input has been quiet for ``debounce`` s."""
        timer: list[threading.Timer | None] = [None]

        def observe(_change: Any = None) -> None:
            if self._quiet:
                return
            if self.debounce <= 0:
                self.guarded(action)
                return
            if timer[0] is not None:
                timer[0].cancel()
            timer[0] = threading.Timer(self.debounce, self.guarded, args=(action,))
            timer[0].start()

        return observe


def figure_widget() -> go.FigureWidget:
    return go.FigureWidget(layout={"template": "plotly_white", "height": 360})


def show_figure(target: go.FigureWidget, fig: go.Figure) -> None:
    """Replace ``target``'s traces and layout by ``fig``'s, in one update (no flicker)."""
    with target.batch_update():
        target.data = ()
        target.layout = fig.layout
        target.add_traces(list(fig.data))


_TABLE_STYLE = ("<style>.tb-table{border-collapse:collapse;font-size:12px}.tb-table td,.tb-table th"
                "{border:1px solid #ddd;padding:2px 6px}</style>")


def table_html(frame, max_rows: int = 50) -> str:
    """A DataFrame as an escaped HTML table for an ``HTML`` widget (styled in place:
    a widget has no page stylesheet)."""
    return _TABLE_STYLE + escaped_table(frame, max_rows=max_rows)
