"""Frame builders: backend records (:class:`RunRecord`) and raw points in, the frames
``Store`` returns out.

Every backend hands its answers to these functions, so ``runs()`` and ``history()``
have the same columns and dtypes (:mod:`trackbook.columns`) whichever backend answered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook import layout as L

@dataclass
class RunRecord:
    """One run as a backend reports it; times in milliseconds since the epoch."""

    run_id: str
    name: str
    experiment_id: str
    experiment: str
    status: str
    start_time: float | None
    end_time: float | None
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    parent_run_id: str | None = None
    #: metric -> what identifies its last point (e.g. last step, timestamp, value);
    #: the history cache is valid while these stay the same. Defaults to the last values.
    metric_signatures: dict[str, Any] | None = None
    #: last sign of life of a live run (heartbeat, metric), ms since the epoch; None: its start.
    last_activity: float | None = None

    def signatures(self) -> dict[str, Any]:
        if self.metric_signatures is not None:
            return self.metric_signatures
        return {k: repr(float(v)) for k, v in self.metrics.items()}



def is_stale(record: RunRecord, now_ms: float, stale_after: float) -> bool:
    """Whether a run is RUNNING with no sign of life for ``stale_after`` seconds at ``now_ms``."""
    last = record.last_activity or record.start_time or now_ms
    return record.status == C.RUNNING and now_ms - last > stale_after * 1000


def runs_frame(records: Iterable[RunRecord], *, stale_after: float = 900.0) -> pd.DataFrame:
    """The ``runs()`` frame for backend records: fixed columns, then params, tags, metrics."""
    now_ms = time.time() * 1000.0
    rows = []
    for r in records:
        row: dict[str, Any] = {
            C.RUN_ID: r.run_id,
            C.NAME: r.name,
            C.EXPERIMENT_ID: r.experiment_id,
            C.EXPERIMENT: r.experiment,
            C.STATUS: r.status,
            C.STALE: is_stale(r, now_ms, stale_after),
            C.START_TIME: r.start_time,
            C.END_TIME: r.end_time,
            C.PARENT_RUN_ID: r.parent_run_id,
            C.BASE_RUN_ID: r.tags.get(L.TAG_BASE_RUN) or None,
        }
        row.update({C.PARAMS_PREFIX + k: str(v) for k, v in r.params.items()})
        row.update({C.TAGS_PREFIX + k: str(v) for k, v in r.tags.items() if not k.startswith(L.SYSTEM_TAG_PREFIXES)})
        row.update({C.METRICS_PREFIX + k: float(v) for k, v in r.metrics.items()})
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    for col in C.RUN_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    frame[C.STALE] = frame[C.STALE].fillna(False).astype(bool)
    frame[C.START_TIME] = to_utc(frame[C.START_TIME])
    frame[C.END_TIME] = to_utc(frame[C.END_TIME])
    frame[C.DURATION] = (frame[C.END_TIME] - frame[C.START_TIME]).dt.total_seconds()
    for col in (C.PARENT_RUN_ID, C.BASE_RUN_ID):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)

    def group(prefix: str) -> list[str]:
        return sorted(c for c in frame.columns if c.startswith(prefix))

    params, tags, metrics = group(C.PARAMS_PREFIX), group(C.TAGS_PREFIX), group(C.METRICS_PREFIX)
    for col in params:
        frame[col] = _numeric_if_possible(frame[col])
    for col in metrics:
        frame[col] = frame[col].astype("float64")
    frame = frame[C.RUN_COLUMNS + params + tags + metrics]
    return frame.sort_values([C.START_TIME, C.NAME], ascending=[False, True], kind="stable", ignore_index=True)


def empty_history() -> pd.DataFrame:
    """A history frame with no points, typed as a full one."""
    return finish_history(pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS}), [])


def finish_history(frame: pd.DataFrame, run_ids: list[str]) -> pd.DataFrame:
    """Type and order raw points (timestamp in ms) as ``history()`` returns them.

    ``run_id`` becomes a categorical whose categories are ``run_ids`` in the order
    given, ``metric`` a categorical of the metric names in sorted order; rows are sorted
    by run, metric, step and timestamp (a no-op check when they already are). Labels
    that already are so (the SQL reader's) are kept as they are, not copied.
    """
    wanted = pd.Index(run_ids, dtype="str")
    given = frame[C.RUN_ID].dtype
    if isinstance(given, pd.CategoricalDtype) and given.categories.dtype == "str" and given.categories.equals(wanted):
        runs = frame[C.RUN_ID].array
    else:
        present = _as_categorical(frame[C.RUN_ID])
        # from_codes, not set_categories: the latter overflows its int8 codes past 127 new categories.
        position = wanted.get_indexer(present.categories).astype(np.int32)
        codes = position[present.codes] if len(position) else np.full(len(present), -1, dtype=np.int32)
        runs = pd.Categorical.from_codes(np.where(present.codes >= 0, codes, -1), categories=wanted)
    metric = _as_categorical(frame[C.METRIC])
    if not metric.categories.is_monotonic_increasing:
        metric = metric.reorder_categories(sorted(metric.categories))
    out = pd.DataFrame(
        {
            C.RUN_ID: runs,
            C.METRIC: metric,
            C.STEP: frame[C.STEP].to_numpy(dtype="int64"),
            C.VALUE: frame[C.VALUE].to_numpy(dtype="float64"),
            C.TIMESTAMP: to_utc(frame[C.TIMESTAMP]),
        },
        copy=False,  # fresh or read-only columns already; a dict would be copied by default
    )
    if len(out) < 2:
        return out
    # asi8: a view of the nanoseconds (to_numpy(dtype="int64") of a tz-aware column copies them)
    keys = (out[C.TIMESTAMP].array.asi8, out[C.STEP].to_numpy(), metric.codes, np.asarray(runs.codes))
    if _is_sorted(keys):  # np.lexsort order: the last key is the primary one
        return out
    return out.iloc[np.lexsort(keys)].reset_index(drop=True)


def _as_categorical(values: pd.Series) -> pd.Categorical:
    """``values`` as a categorical of the labels present, with ``str`` categories."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array
        if not _all_used(np.asarray(cat.codes), len(cat.categories)):
            cat = cat.remove_unused_categories()
    else:
        cat = pd.Categorical(values.astype(object))
    if cat.categories.dtype != "str":
        cat = cat.rename_categories(cat.categories.astype("str"))
    return cat


def _all_used(codes: np.ndarray, n_categories: int, block: int = 1 << 18) -> bool:
    """Whether every category code occurs: bincount, not remove_unused_categories' sort of
    every code, a block at a time (bincount widens the codes to int64 first)."""
    seen = np.zeros(n_categories, dtype=bool)
    for start in range(0, len(codes), block):
        part = codes[start : start + block]
        seen |= np.bincount(part[part >= 0], minlength=n_categories) > 0
        if seen.all():
            return True
    return bool(seen.all())


def concat_points(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate raw point frames, keeping the label columns categorical."""
    if len(parts) == 1:
        return parts[0]
    from pandas.api.types import union_categoricals

    labels = {
        col: union_categoricals([_as_categorical(p[col]) for p in parts], ignore_order=True)
        for col in (C.RUN_ID, C.METRIC)
    }
    numbers = pd.concat([p[[C.STEP, C.VALUE, C.TIMESTAMP]] for p in parts], ignore_index=True)
    return numbers.assign(**labels)


def _is_sorted(keys: tuple[np.ndarray, ...], block: int = 1 << 18) -> bool:
    """Whether rows are already in lexicographic order of ``keys`` (primary key last).

    Checked a block of rows at a time (each block overlapping the next by one row), so
    the differences it takes never cost memory in proportion to the frame.
    """
    for start in range(0, len(keys[0]) - 1, block):
        part = slice(start, start + block + 1)
        undecided = np.ones(len(keys[0][part]) - 1, dtype=bool)
        for key in reversed(keys):
            diff = np.diff(key[part])
            if np.any((diff < 0) & undecided):  # masks, not diff[undecided]: no copy of the diffs
                return False
            undecided &= diff == 0
            if not undecided.any():
                break
    return True


def downsample(history: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """At most ``max_points`` points per (run, metric) series, for plotting.

    A longer series is cut into ``max_points // 4`` equal buckets of consecutive
    points; each bucket keeps its first, last, smallest and largest value, so spikes
    and the curve's ends survive. Shorter series are returned whole.

    Example:
        >>> small = downsample(store.history(runs), 1000)  # doctest: +SKIP
    """
    if history.empty:
        return history
    series = history.groupby([C.RUN_ID, C.METRIC], sort=False, observed=True)
    length = series[C.STEP].transform("size").to_numpy()
    if length.max() <= max_points:
        return history
    position = series.cumcount().to_numpy()
    n_buckets = max(1, max_points // 4)
    bucket = (position * n_buckets) // length
    series_code = series.ngroup().to_numpy()
    key = series_code.astype("int64") * n_buckets + bucket
    values = history[C.VALUE].to_numpy()
    frame = pd.DataFrame({"key": key, "value": values, "row": np.arange(len(history))})
    grouped = frame.groupby("key", sort=False)["row"]
    keep = np.zeros(len(history), dtype=bool)
    keep[grouped.min().to_numpy()] = True
    keep[grouped.max().to_numpy()] = True
    finite = frame[~np.isnan(values)]  # index labels are row numbers
    if not finite.empty:
        by_key = finite.groupby("key", sort=False)["value"]
        keep[by_key.idxmin().to_numpy()] = True
        keep[by_key.idxmax().to_numpy()] = True
    keep |= length <= max_points
    return history[keep].reset_index(drop=True)


def to_utc(values: pd.Series) -> pd.Series:
    """Milliseconds since the epoch -> UTC timestamps (ns, whatever the input's type)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        ns = values.to_numpy(dtype="int64") * 1_000_000
        return pd.Series(_utc_array(ns), index=values.index, copy=False)
    ms = pd.to_numeric(values, errors="coerce").astype("float64").round()
    return pd.to_datetime(ms, unit="ms", utc=True).astype("datetime64[ns, UTC]")


def _utc_array(ns: np.ndarray) -> Any:
    """A fresh int64 array of nanoseconds as a UTC datetime array, without a copy.

    Every public constructor of a tz-aware array copies the values once more (a
    column as large as the frame's biggest); ``_simple_new`` wraps them. Where a
    pandas release changes it, the public path (one copy) takes over.
    """
    dtype = pd.DatetimeTZDtype("ns", "UTC")
    try:
        return pd.arrays.DatetimeArray._simple_new(ns.view("datetime64[ns]"), dtype=dtype)
    except (AttributeError, TypeError, ValueError):
        return pd.array(ns.view("datetime64[ns]"), dtype=dtype)


#: Param texts that mean "no value" in a numeric column (MLflow logs Python's None as "None").
_MISSING_TEXTS = frozenset({"", "None", "none", "null", "nan", "NaN"})
#: A zero-padded number ("007") is a code, not a quantity: its column stays text.
_ZERO_PADDED = re.compile(r"[+-]?0\d")


def _numeric_if_possible(values: pd.Series) -> pd.Series:
    """A params column as numbers when every value that is there reads as one, else as text."""
    text = values.astype(object).where(values.notna(), None)
    present = text.dropna().astype(str).str.strip()
    present = present[~present.isin(_MISSING_TEXTS)]
    if present.empty or present.str.match(_ZERO_PADDED).any():
        return text
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.isna().any():
        return text
    return pd.to_numeric(text.where(~text.astype(str).str.strip().isin(_MISSING_TEXTS)), errors="coerce")


def check_statuses(status: str | Sequence[str]) -> list[str]:
    wanted = [status] if isinstance(status, str) else list(status)
    out = []
    for s in wanted:
        if str(s).upper() not in C.STATUSES:
            raise ValueError(f"status={s!r} is not a run status; use one of {', '.join(C.STATUSES)}.")
        out.append(str(s).upper())
    return out


