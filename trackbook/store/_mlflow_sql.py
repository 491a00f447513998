"""Set-based reads of MLflow's SQL schema (sqlite, PostgreSQL, MySQL): the bulk path.

Only SELECTs, through the engine of MLflow's own SqlAlchemyStore. Two queries per
chunk of runs, both ordered by MLflow's ``(run_uuid, key, step)`` index:

1. ``GROUP BY run_uuid, key``: how many points each series has;
2. ``step, value, is_nan, timestamp`` only, in the same order.

The run id and metric name of each point follow from the counts, so the driver never
builds two Python strings per point, which is most of the cost of a plain
``SELECT *`` into pandas. If a series grew between the two queries (a RUNNING run),
the counts disagree and the chunk is read again with the labels in every row.

MLflow keeps NaN as ``value=0, is_nan=true`` and ±inf as ±``sys.float_info.max``;
both are turned back into NaN and ±inf here.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook.store.frames import RunRecord

_RUNS_PER_QUERY = 500
_FETCH_ROWS = 100_000
_POINT = np.dtype([("step", "i8"), ("value", "f8"), ("is_nan", "i1"), ("timestamp", "i8")])


def engine_of(client: Any):
    """The SQLAlchemy engine behind an MlflowClient, or None for other stores."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return getattr(store, "engine", None)


def _connect(engine: Any) -> tuple[Any, str]:
    """A raw DBAPI connection from the engine's pool, and its driver's bind placeholder."""
    conn = engine.raw_connection()
    dbapi_connection = getattr(conn, "dbapi_connection", conn)
    module = sys.modules.get(type(dbapi_connection).__module__.split(".")[0])
    style = getattr(module, "paramstyle", "qmark")
    return conn, "?" if style == "qmark" else "%s"


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def history_index(engine: Any, run_ids: list[str]) -> list[RunRecord]:
    """Status and per-metric signature (last step, timestamp, value) of active runs."""
    out: dict[str, RunRecord] = {}
    conn, ph = _connect(engine)
    try:
        cur = conn.cursor()
        for chunk in _chunks(run_ids, _RUNS_PER_QUERY):
            marks = ",".join([ph] * len(chunk))
            cur.execute(
                f"SELECT run_uuid, status FROM runs WHERE run_uuid IN ({marks}) AND lifecycle_stage = 'active'",
                chunk,
            )
            for run_id, status in cur.fetchall():
                out[run_id] = RunRecord(run_id, "", "", "", status, None, None, metric_signatures={})
            cur.execute(
                f"SELECT run_uuid, key, step, timestamp, value, is_nan FROM latest_metrics "
                f"WHERE run_uuid IN ({marks})",
                chunk,
            )
            for run_id, key, step, timestamp, value, is_nan in cur.fetchall():
                if run_id in out:
                    out[run_id].metric_signatures[key] = [int(step), int(timestamp), repr(float(value)), bool(is_nan)]
        cur.close()
    finally:
        conn.close()
    return list(out.values())


def read_points(engine: Any, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
    """Every point of these metrics of these runs, ordered by run, metric and step."""
    if not metrics or not run_ids:
        return pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS})
    conn, ph = _connect(engine)
    try:
        parts = [_read_chunk(conn, ph, chunk, metrics) for chunk in _chunks(run_ids, _RUNS_PER_QUERY)]
    finally:
        conn.close()
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _read_chunk(conn: Any, ph: str, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
    where = (
        f"run_uuid IN ({','.join([ph] * len(run_ids))}) AND key IN ({','.join([ph] * len(metrics))})"
    )
    params = [*run_ids, *metrics]
    cur = conn.cursor()
    try:
        cur.execute(
            f"SELECT run_uuid, key, COUNT(*) FROM metrics WHERE {where} GROUP BY run_uuid, key ORDER BY run_uuid, key",
            params,
        )
        series = cur.fetchall()
        cur.execute(
            f"SELECT step, value, is_nan, timestamp FROM metrics WHERE {where} ORDER BY run_uuid, key, step",
            params,
        )
        points = _fetch_structured(cur)
        if len(points) == sum(n for _, _, n in series):
            counts = np.array([n for _, _, n in series], dtype=np.int64)
            run_col = _repeat_labels([s[0] for s in series], counts)
            key_col = _repeat_labels([s[1] for s in series], counts)
        else:  # points were added between the two queries: read them with their labels
            cur.execute(
                f"SELECT run_uuid, key, step, value, is_nan, timestamp FROM metrics WHERE {where} "
                f"ORDER BY run_uuid, key, step",
                params,
            )
            rows = cur.fetchall()
            run_col = pd.Categorical([r[0] for r in rows])
            key_col = pd.Categorical([r[1] for r in rows])
            points = np.fromiter((r[2:] for r in rows), dtype=_POINT, count=len(rows))
    finally:
        cur.close()
    return pd.DataFrame(
        {
            C.RUN_ID: run_col,
            C.METRIC: key_col,
            C.STEP: points["step"],
            C.VALUE: restore_special_values(points["value"], points["is_nan"]),
            C.TIMESTAMP: points["timestamp"],
        }
    )


def _repeat_labels(labels: list[str], counts: np.ndarray) -> pd.Categorical:
    """Each label repeated ``counts`` times, as a categorical (no string per row)."""
    names, codes = np.unique(np.array(labels, dtype=object), return_inverse=True)
    return pd.Categorical.from_codes(np.repeat(codes.astype(np.int32), counts), categories=names)


def _fetch_structured(cur: Any) -> np.ndarray:
    parts = []
    while True:
        rows = cur.fetchmany(_FETCH_ROWS)
        if not rows:
            break
        parts.append(np.fromiter(rows, dtype=_POINT, count=len(rows)))
    return np.concatenate(parts) if parts else np.empty(0, dtype=_POINT)


def restore_special_values(values: Any, is_nan: Any = None) -> Any:
    """MLflow's stored ``(value, is_nan)`` back to floats with NaN and ±inf (arrays or scalars)."""
    out = np.array(values, dtype="float64", ndmin=1)
    out[out >= sys.float_info.max] = np.inf
    out[out <= -sys.float_info.max] = -np.inf
    if is_nan is not None:
        out[np.array(is_nan, dtype=bool, ndmin=1)] = np.nan
    return float(out[0]) if np.ndim(values) == 0 else out
