"""Model comparison: runs side by side, on the params that differ and the metrics that matter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook import layout as L
from trackbook.analysis._series import series_summary

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from trackbook.store.base import RunsLike, Store

def compare(store: Store, runs: RunsLike, metrics: str | Sequence[str], *,
            goals: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Runs side by side: one row per run, in the order given.

    Columns: ``run_id``, ``name``, ``status``, the ``params.*`` whose values differ
    between the runs, then per metric ``final.<m>`` (last finite value by step),
    ``best.<m>`` (best value over the run) and ``rank.<m>`` (1 = best final value; runs
    that never logged it rank last). Higher is better unless ``goals`` (``{metric:
    "min"}``) or the metric's name (loss, error, ...) says otherwise. ``.T`` turns it
    into one column per run.

    Example:
        >>> tb.compare(store, run_ids, ["eval/mean_reward", "train/loss"])   # doctest: +SKIP
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    table = store.lookup(runs)
    run_ids = table[C.RUN_ID].tolist()
    params = [c for c in table.columns if c.startswith(C.PARAMS_PREFIX)
              and table[c].astype(str).nunique(dropna=False) > 1]
    out = table[[C.RUN_ID, C.NAME, C.STATUS, *params]].copy()
    summary = series_summary(store.history(run_ids, metrics))
    nan = {"last": np.nan, "max": np.nan, "min": np.nan}
    for metric in metrics:
        goal = L.metric_goal(metric, goals)
        stats = [summary.get((rid, metric), nan) for rid in out[C.RUN_ID]]
        final = pd.Series([s["last"] for s in stats], index=out.index, dtype=float)
        out[C.FINAL_PREFIX + metric] = final
        out[C.BEST_PREFIX + metric] = [s[goal] for s in stats]
        out[C.RANK_PREFIX + metric] = final.rank(ascending=goal == "min", method="min", na_option="bottom").astype("int64")
    return out
