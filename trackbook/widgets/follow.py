"""Panels that follow the store live: FollowPanel, and the follow switch of RunBrowser
and ChainExplorer.

Everything here is built to display in JupyterLab and in Marimo alike: the figure is
plotly's ``FigureWidget`` and the run table a small HTML view, both anywidgets (Marimo
shows anywidgets, not classic ipywidgets), and the refresh is a daemon thread that
polls a follower (``Store.follow()``) every ``interval`` seconds, which both kernels
forward to the page. A poll reads only the points new since the last one and appends
them to the traces drawn (:class:`trackbook.plots.live.LiveCurves`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anywidget
import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import traitlets

from trackbook import columns as C
from trackbook.plots.live import (BY_CHAIN, BY_PARENT, EMA, RELATIVE_TIME, ROLLING, STEP, WALL_TIME, LiveCurves,
                                  run_groups, smoothing_spec)
from trackbook.widgets._base import Panel, figure_widget, table_html


class HtmlView(anywidget.AnyWidget):
    """A block of HTML that a kernel can change (an anywidget: shown by JupyterLab and Marimo)."""

    _esm = """
    function render({ model, el }) {
      const draw = () => { el.innerHTML = model.get("value"); };
      draw();
      model.on("change:value", draw);
    }
    export default { render };
    """
    # the table's style as the widget's own stylesheet: a <style> in the HTML does not reach Marimo's cells
    _css = (".tb-follow .tb-table{border-collapse:collapse;font-size:12px}"
            ".tb-follow .tb-table td,.tb-follow .tb-table th{border:1px solid #ddd;padding:2px 6px}")
    value = traitlets.Unicode("").tag(sync=True)


class Following:
    """A follower polled every ``interval`` seconds, each update drawn into ``curves``.

    The thread holds the Following only weakly: a panel nobody holds any more (a Marimo
    cell run again, a notebook variable rebound) stops polling by itself.

    Attributes:
        poll_times: ``time.monotonic()`` at the end of each poll, for the interval achieved.
        last_update: the latest ``FollowUpdate``.
    """

    def __init__(self, follower: Any, curves: LiveCurves, *, interval: float = 2.0,
                 on_update: Callable[[Any], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.follower, self.curves, self.interval = follower, curves, float(interval)
        self.on_update, self.on_error = on_update, on_error
        self.poll_times: list[float] = []
        self.last_update: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> Any:
        """Read what is new, draw it, tell ``on_update``; returns the ``FollowUpdate``."""
        with self._lock:
            update = self.follower.poll()
            self.curves.update(update.points, update.runs, getattr(update, "reread", ()))
            self.last_update = update
            if self.on_update is not None:
                self.on_update(update)
            self.poll_times.append(time.monotonic())
            return update

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Poll every ``interval`` seconds in a daemon thread (until :meth:`stop`)."""
        if self.running or self.interval <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=_loop, args=(weakref.ref(self), self._stop, self.interval),
                                        name="trackbook-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, self.interval * 2))
        self._thread = None


def _loop(ref: weakref.ref, stop: threading.Event, interval: float) -> None:
    due = time.monotonic() + interval
    # polls start every `interval` s, however long one takes (a slow one delays the next, never piles up)
    while not stop.wait(max(0.0, due - time.monotonic())):
        due = max(due + interval, time.monotonic())
        following = ref()
        if following is None:
            return
        try:
            following.poll()
        except Exception as exc:  # noqa: BLE001 - a store that is down for a moment is a message, not the end
            if following.on_error is not None:
                following.on_error(f"{type(exc).__name__}: {exc} (the panel keeps polling)")
        del following


def run_table(runs: pd.DataFrame, states: Mapping[str, Sequence[str]], groups: Mapping[str, str],
              counts: Mapping[str, int], last_steps: Mapping[str, int], group_names: Mapping[str, str]) -> pd.DataFrame:
    """One row per followed run, as the panel shows it: name, group, the states seen in
    order (``RUNNING → FINISHED``), points drawn and last step."""
    rows = []
    for rid, name in zip(runs[C.RUN_ID].astype(str), runs[C.NAME], strict=True):
        group = groups.get(rid)
        rows.append({C.NAME: name if isinstance(name, str) and name else rid[:8],
                     "group": group_names.get(group, group) if group else "",
                     C.STATUS: " → ".join(states.get(rid, ())), "points": int(counts.get(rid, 0)),
                     "last step": last_steps.get(rid, ""), C.RUN_ID: rid})
    return pd.DataFrame(rows, columns=[C.NAME, "group", C.STATUS, "points", "last step", C.RUN_ID])


class _Shown:
    """What the run table counts, kept up to date from each update's new points."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last_steps: dict[str, int] = {}

    def add(self, points: pd.DataFrame) -> None:
        if points is None or points.empty:
            return
        ids = points[C.RUN_ID].astype(str)
        for rid, n in ids.value_counts().items():
            self.counts[rid] = self.counts.get(rid, 0) + int(n)
        for rid, step in points.groupby(ids, sort=False)[C.STEP].max().items():
            self.last_steps[rid] = max(int(step), self.last_steps.get(rid, int(step)))


class FollowPanel(Panel):
    """Follow an experiment, or some runs, while they train: new runs appear, their state
    (RUNNING, stale, FINISHED ...) shows as it changes, and curves are extended in place
    every ``interval`` seconds with the points new since the last poll.

    Displays in JupyterLab (the panel as a cell's last expression) and in Marimo (the
    same; or ``mo.ui.anywidget(panel.figure)`` for the figure alone).

    Example:
        >>> panel = tb.widgets.FollowPanel(store, "ppo-cartpole", metrics=["rollout/ep_rew_mean"],
        ...                                x="relative_time", smoothing=("ema", 0.6), group_by="parent")  # doctest: +SKIP
        >>> panel                                          # shows it; it polls every 2 s  # doctest: +SKIP
        >>> panel.stop()                                   # doctest: +SKIP

    Args:
        store: the store (``tb.connect(...)``).
        experiment: the experiment to follow (every run in it, new ones too); neither
            this nor ``runs``: every experiment's runs.
        runs: run ids (or a ``runs()`` frame) to follow instead, a fixed set.
        metrics: the metrics to draw, one row each (default: every metric logged).
        interval: seconds between polls; 0 polls only when :meth:`poll` is called.
        x: ``"step"``, ``"wall_time"`` or ``"relative_time"`` (seconds since the run started).
        smoothing: None (raw), an EMA weight such as 0.6, ``("ema", 0.6)`` or ``("rolling", 20)``;
            the raw points stay drawn, faint, under the smoothed line.
        group_by: None, ``"parent"`` (the runs of a study together) or ``"chain"`` (runs
            linked by ``base_model_run_id``): a colour and a legend group per group.
        stale_after: seconds without a sign of life after which a RUNNING run shows as stale.

    Attributes:
        figure: the ``FigureWidget``; ``history``: every raw point drawn; ``states``:
            run_id -> the states shown, in order; ``table``: the run table as a DataFrame.
    """

    def __init__(self, store: Any, experiment: str | None = None, *, runs: Sequence[str] | None = None,
                 metrics: Sequence[str] | None = None, interval: float = 2.0, x: str = STEP,
                 smoothing: Any = None, group_by: str | None = None, stale_after: float = 900.0) -> None:
        super().__init__()
        self.store = store
        self.figure = figure_widget()
        metrics = [metrics] if isinstance(metrics, str) else metrics
        what = experiment or ("every experiment" if runs is None else f"{len(runs)} runs")
        self.curves = LiveCurves(self.figure, metrics, x=x, smoothing=smoothing, group_by=group_by, store=store,
                                 title=f"Following {what}")
        self.follower = store.follow(experiment, runs=runs,
                                     metrics=list(metrics) if metrics else None, stale_after=stale_after)
        self.view = HtmlView()
        self.table = run_table(pd.DataFrame(columns=C.RUN_COLUMNS), {}, {}, {}, {}, {})
        self._shown = _Shown()
        self._note = ""
        self._controls(x, smoothing, group_by)
        self.widget.children = [W.HBox([self.x_axis, self.smoothing, self.group_by]), self.view, self.figure]
        self.following = Following(self.follower, self.curves, interval=interval, on_update=self._show,
                                   on_error=lambda text: self.message(text, error=True))
        self.guarded(self.following.poll)
        self.following.start()

    def _controls(self, x: str, smoothing: Any, group_by: str | None) -> None:
        """JupyterLab's controls for the x axis, smoothing and grouping (Marimo: the arguments, or redraw())."""
        spec = smoothing_spec(smoothing)
        smoothings = [("raw", None), ("EMA 0.6", (EMA, 0.6)), ("EMA 0.9", (EMA, 0.9)), ("rolling 10", (ROLLING, 10)),
                      ("rolling 50", (ROLLING, 50))]
        if spec not in [v for _, v in smoothings]:
            smoothings.append((f"{spec[0]} {spec[1]:g}", spec))
        self.x_axis = W.ToggleButtons(options=[("step", STEP), ("wall time", WALL_TIME), ("since start", RELATIVE_TIME)],
                                      value=x, style={"button_width": "90px"})
        self.smoothing = W.Dropdown(description="Smoothing", options=smoothings, value=spec,
                                    layout=W.Layout(width="220px"))
        self.group_by = W.Dropdown(description="Group", options=[("each run", None), ("by study", BY_PARENT),
                                                                 ("by chain", BY_CHAIN)], value=group_by,
                                   layout=W.Layout(width="220px"))
        # the widgets stay registered while the kernel lives: they hold the panel only weakly, so that a
        # panel nobody holds any more is collected and its polling stops
        ref = weakref.ref(self)

        def changed(_change: Any) -> None:
            if (panel := ref()) is not None:
                panel.guarded(lambda: panel.redraw(x=panel.x_axis.value, smoothing=panel.smoothing.value,
                                                   group_by=panel.group_by.value))

        for control in (self.x_axis, self.smoothing, self.group_by):
            control.observe(changed, "value")

    @property
    def history(self) -> pd.DataFrame:
        return self.curves.history

    @property
    def states(self) -> dict[str, list[str]]:
        return self.curves.states

    @property
    def interval(self) -> float:
        return self.following.interval

    def poll(self) -> Any:
        """Poll now (also while the timer runs); returns the ``FollowUpdate``."""
        return self.following.poll()

    def start(self) -> None:
        self.following.start()

    def stop(self) -> None:
        """Stop polling (the figure stays as drawn)."""
        self.following.stop()
        self.message(self._note + " Stopped.")

    def redraw(self, *, x: str | None = None, smoothing: Any = "unchanged", group_by: Any = "unchanged") -> None:
        """Draw what was followed so far anew with another x axis, smoothing or grouping
        (what JupyterLab's controls above the figure do)."""
        with self.following._lock:
            self.curves.redraw(x=x, smoothing=smoothing, group_by=group_by)
        self._render_table()

    def message(self, text: str = "", *, error: bool = False) -> None:
        super().message(text, error=error)
        self._render()

    def _render_table(self, runs: pd.DataFrame | None = None) -> None:
        runs = self.curves.runs if runs is None else runs
        groups = run_groups(runs, self.curves.group_by, store=self.store) if self.curves.group_by and len(runs) else {}
        names = {key: self.curves._group_label(key) for key in set(groups.values())}
        self.table = run_table(runs, self.curves.states, groups, self._shown.counts, self._shown.last_steps, names)
        self._render()

    def _show(self, update: Any) -> None:
        self._shown.add(update.points)
        runs = update.runs
        self._render_table(runs)
        running = int((runs[C.STATUS] == C.RUNNING).sum()) if len(runs) else 0
        new = f", {len(update.new_runs)} new" if len(update.new_runs) else ""
        gaps = np.diff(self.following.poll_times[-11:])
        achieved = f" (achieved: {gaps.mean():.2f} s apart)" if len(gaps) and self.following.running else ""
        self._note = (f"{len(runs)} runs ({running} running{new}); {sum(self._shown.counts.values())} points "
                      f"drawn; polled at {pd.Timestamp.now(tz='UTC'):%H:%M:%S} UTC, every {self.interval:g} s"
                      f"{achieved}.")
        self.message(self._note)

    def _render(self) -> None:
        shown = self.table.drop(columns=[C.RUN_ID])
        if not self.curves.group_by:
            shown = shown.drop(columns=["group"])
        table = table_html(shown, max_rows=200) if len(shown) else ""
        self.view.value = f'<div class="tb-follow">{self.status.value}{table}</div>'

    def _display_(self) -> Any:
        """Marimo's display hook: the run table and the figure, as anywidgets."""
        import marimo as mo

        return mo.vstack([mo.ui.anywidget(self.view), mo.ui.anywidget(self.figure)])


class FollowSwitch:
    """The "follow" switch of a panel: on, its figure is drawn by :class:`LiveCurves` from
    a follower and extended every ``interval`` seconds; off, the panel draws it again.

    ``spec()`` tells what to follow now: a dict of ``Store.follow`` arguments
    (``experiment``, ``runs``, ``metrics``) plus ``LiveCurves`` options (``group_by``,
    ``offsets``, ``x``, ``smoothing``, ``title``).
    """

    def __init__(self, store: Any, figure: go.FigureWidget, spec: Callable[[], dict[str, Any]], *,
                 message: Callable[..., None], interval: float = 2.0) -> None:
        self.store, self.figure, self.spec, self.message, self.interval = store, figure, spec, message, interval
        self.checkbox = W.Checkbox(description="follow live", value=False, indent=False,
                                   layout=W.Layout(width="120px"))
        self.following: Following | None = None

    @property
    def on(self) -> bool:
        return bool(self.checkbox.value)

    def restart(self) -> None:
        """Follow what ``spec()`` names now, from its first point (the figure is drawn anew once)."""
        self.stop()
        wanted = dict(self.spec())
        follow_args = {k: wanted.pop(k, None) for k in ("experiment", "runs", "metrics")}
        with self.figure.batch_update():
            self.figure.data = ()
        curves = LiveCurves(self.figure, follow_args["metrics"], store=self.store, **wanted)
        follower = self.store.follow(follow_args["experiment"], runs=follow_args["runs"],
                                     metrics=follow_args["metrics"])
        self.following = Following(follower, curves, interval=self.interval,
                                   on_error=lambda text: self.message(text, error=True))
        update = self.following.poll()
        self.message(f"Following {len(update.runs)} runs live, every {self.interval:g} s.")
        self.following.start()

    def stop(self) -> None:
        if self.following is not None:
            self.following.stop()
            self.following = None


__all__ = ["FollowPanel", "FollowSwitch", "Following", "HtmlView", "run_table"]
