"""What report notebooks call to show things: every text escaped, every figure offline.

Report templates (and notebooks users write) use these instead of ``display(HTML(...))``
so that a run name, tag or param holding HTML is shown as text, never run as markup.

Example:
    >>> from trackbook.reports import display as rd          # doctest: +SKIP
    >>> rd.setup()
    >>> rd.headline("Training report", {"run": run["name"], "status": run["status"]})
    >>> rd.figure(tb.plots.learning_curves(hist))
    >>> rd.record(best_reward=412.0)                          # the report's key data
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from trackbook import columns as C

#: Mime type of the key data a report records; the runner collects it, HTML ignores it.
DATA_MIME = "application/vnd.trackbook.report-data+json"

_STYLE = """<style>
.tb-headline{font-family:system-ui,sans-serif;margin:0 0 12px}
.tb-headline h1{font-size:1.6em;margin:0 0 8px}
.tb-facts{display:flex;flex-wrap:wrap;gap:10px}
.tb-fact{border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:110px}
.tb-fact .k{color:#666;font-size:.8em}.tb-fact .v{font-size:1.25em;font-weight:600}
.tb-problems{border-left:4px solid #d62728;background:#fff5f5;padding:6px 12px}
.tb-ok{border-left:4px solid #2ca02c;background:#f5fff5;padding:6px 12px}
table.tb-table{border-collapse:collapse;font-size:.9em}
table.tb-table td,table.tb-table th{border:1px solid #ddd;padding:3px 8px;text-align:right}
table.tb-table th{background:#f5f5f5}
</style>"""


def _show(html_text: str) -> None:
    from IPython.display import HTML, display

    display(HTML(html_text))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:,.4g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def setup() -> None:
    """Page styles and table widths."""
    pd.set_option("display.max_colwidth", 60)
    _show(_STYLE)


def headline(title: str, facts: Mapping[str, Any] | None = None) -> None:
    """The report's title and its headline numbers, as cards."""
    cards = "".join(
        f'<div class="tb-fact"><div class="k">{html.escape(str(k))}</div><div class="v">{html.escape(_fmt(v))}</div>'
        f"</div>" for k, v in (facts or {}).items()
    )
    _show(f'<div class="tb-headline"><h1>{html.escape(str(title))}</h1><div class="tb-facts">{cards}</div></div>')


def section(title: str, text: str = "") -> None:
    body = f"<p>{html.escape(text)}</p>" if text else ""
    _show(f"<h2>{html.escape(str(title))}</h2>{body}")


def table_html(frame: pd.DataFrame, *, caption: str = "", max_rows: int = 200, index: bool = False) -> str:
    """A DataFrame as an HTML table (class ``tb-table``), every cell escaped."""
    body = frame.head(max_rows).to_html(index=index, escape=True, na_rep="—", classes="tb-table", border=0,
                                        float_format=lambda v: f"{v:,.6g}")
    if caption:
        body = body.replace(">", f"><caption>{html.escape(caption)}</caption>", 1)
    return body + (f"<p>… {len(frame) - max_rows} more rows</p>" if len(frame) > max_rows else "")


def table(frame: pd.DataFrame, *, caption: str = "", max_rows: int = 200, index: bool = False) -> None:
    """Show a DataFrame as an HTML table, every cell escaped."""
    _show(table_html(frame, caption=caption, max_rows=max_rows, index=index))


def problems(items: Sequence[str], *, ok: str = "Nothing went wrong.") -> None:
    """What went wrong (failed trials, missing links, NaN metrics), or that nothing did."""
    if items:
        lis = "".join(f"<li>{html.escape(str(i))}</li>" for i in items)
        _show(f'<div class="tb-problems"><b>What went wrong</b><ul>{lis}</ul></div>')
    else:
        _show(f'<div class="tb-ok">{html.escape(ok)}</div>')


_renderer: Any = None


def figure(fig: Any) -> None:
    """Show a plotly figure, interactive in the notebook and in the exported HTML:
    plotly.js is embedded once, before the first (offline, no CDN).

    This is plotly's ``notebook`` renderer, used directly: through ``plotly.io.renderers``
    it would import nbformat into the report's kernel first (2 s of every report).
    """
    global _renderer
    from IPython.display import display

    if _renderer is None:
        from plotly.io._base_renderers import NotebookRenderer

        _renderer = NotebookRenderer()
        _renderer.activate()  # displays plotly.js
    display(_renderer.to_mimebundle(fig.to_dict()), raw=True)


def record(**data: Any) -> None:
    """Record the report's key data (plain values); ``tb.report`` returns it."""
    from IPython.display import display

    display({DATA_MIME: _finite(json.loads(json.dumps(data, default=_plain)))}, raw=True)


def last_finite(hist: pd.DataFrame, metric: str) -> float:
    """The value a report shows for a metric: its last finite point by step, NaN if it never logged one.

    Example:
        >>> rd.last_finite(store.history(run_id), "eval/mean_reward")   # doctest: +SKIP
        412.0
    """
    points = hist[(hist[C.METRIC] == metric) & np.isfinite(hist[C.VALUE])].sort_values(C.STEP, kind="stable")
    return float(points[C.VALUE].iloc[-1]) if len(points) else float("nan")


def status_problem(name: str, status: str, *, stale: bool = False) -> str | None:
    """What a report says about a run that is not FINISHED, or None for a finished run.

    A RUNNING run has not ended: it is still going, or (``stale``) its process died
    without saying so.
    """
    if status == C.FINISHED:
        return None
    if status == C.RUNNING:
        if stale:
            return (f"{name} is still marked RUNNING but has sent no heartbeat or metric for a while (stale): "
                    f"its process was probably killed hard")
        return f"{name} is still running: what is shown is what it had logged so far"
    return f"{name} ended {status}"


def _finite(value: Any) -> Any:
    """NaN and ±inf as None: notebook outputs are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)
