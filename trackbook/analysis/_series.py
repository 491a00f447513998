"""Per-series summaries of a history frame, shared by chains and comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trackbook import columns as C


def series_summary(hist: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """``{(run_id, metric): {"last", "max", "min"}}`` over the finite points, ``last`` by step.

    Keys are plain strings, so lookups never go through a categorical index.
    """
    finite = hist[np.isfinite(hist[C.VALUE].to_numpy())].sort_values(C.STEP, kind="stable")
    table = finite.groupby([C.RUN_ID, C.METRIC], observed=True)[C.VALUE].agg(["last", "max", "min"])
    return {(str(r), str(m)): row for (r, m), row in zip(table.index, table.to_dict("records"), strict=True)}
