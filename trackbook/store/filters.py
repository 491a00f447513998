"""The runs filter language: pandas query expressions over a ``runs()`` frame.

``params.x``, ``tags.x`` and ``metrics.x`` may be written bare (word characters and
dots), quoted or in backticks; MLflow's ``=``, ``AND``, ``OR`` and ``NOT`` are read as
pandas' ``==``, ``and``, ``or`` and ``not`` outside quoted strings.
"""

from __future__ import annotations

import re

import pandas as pd

from trackbook import columns as C
from trackbook.errors import InvalidFilter

# params.x / tags.x / metrics.x, bare (word characters and dots), quoted or backticked.
_PREFIXED = re.compile(r"""(?<![\w`.])(params|tags|metrics)\.(?:`([^`]+)`|"([^"]+)"|'([^']+)'|([\w.]+))""")
_SQL_EQ = re.compile(r"(?<![=!<>])=(?!=)")
_SQL_BOOL = re.compile(r"\b(AND|OR|NOT)\b")


def apply_filter(frame: pd.DataFrame, expression: str) -> pd.DataFrame:
    """Rows of a runs frame for which ``expression`` holds (see :meth:`Store.runs`)."""

    def backtick(match: re.Match[str]) -> str:
        name = next(g for g in match.groups()[1:] if g is not None)
        return f"`{match.group(1)}.{name}`"

    query = _PREFIXED.sub(backtick, expression)
    query = _outside_quotes(query, lambda s: _SQL_BOOL.sub(lambda m: m.group(1).lower(), _SQL_EQ.sub("==", s)))
    try:
        kept = frame.query(query, engine="python")
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds; all mean a bad filter
        cols = [c for c in frame.columns if c.startswith((C.PARAMS_PREFIX, C.TAGS_PREFIX, C.METRICS_PREFIX))]
        raise InvalidFilter(
            f"Could not apply filter {expression!r}: {type(exc).__name__}: {exc}. Filters are pandas "
            f"query expressions over the runs() columns, e.g. \"params.learning_rate > 1e-4 and "
            f"status == 'FINISHED'\". Columns here: {', '.join(cols[:20]) or 'none'}."
        ) from None
    return kept


def _outside_quotes(text: str, fn) -> str:
    """Apply ``fn`` to the parts of ``text`` outside quotes and backticks."""
    parts = re.split(r"""(`[^`]*`|"[^"]*"|'[^']*')""", text)
    return "".join(p if i % 2 else fn(p) for i, p in enumerate(parts))
