"""The backend-agnostic read interface: :class:`Store`.

A backend implements a handful of private primitives (list experiments, list runs,
read metric points, list and fetch artifacts) that return plain records; everything a
user calls lives here, once, so the DataFrames have the same shape whichever backend
answered.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook import layout as L
from trackbook._uri import redact_uri
from trackbook.errors import (
    ExperimentNotFound,
    InvalidFilter,
    InvalidRunId,
    RunNotFound,
)

if TYPE_CHECKING:
    from trackbook.analysis.chains import Chain
    from trackbook.analysis.studies import Study


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


RunsLike = str | Iterable[str] | pd.DataFrame | pd.Series


class Store(abc.ABC):
    """Read access to one experiment store; every answer is a pandas DataFrame.

    Get one with :func:`trackbook.connect`. Backends: :class:`~trackbook.store.MLflowStore`
    and :class:`~trackbook.store.AimStore`.
    """

    #: Short backend name, e.g. ``"mlflow"``.
    kind: str = ""
    #: What a run id of this backend looks like; other values are rejected before
    #: they reach a query.
    run_id_pattern: re.Pattern[str] = re.compile(r"[0-9a-f]{8,64}")

    def __init__(self, uri: str, *, cache_dir: str | Path | None = None) -> None:
        from trackbook.store._cache import HistoryCache

        self.uri = uri
        #: Parquet cache of finished runs' histories; ``store.cache.clear()`` empties it.
        self.cache = HistoryCache(uri, None if cache_dir is None else Path(cache_dir))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_uri(self.uri)!r})"

    # ------------------------------------------------------------------ public API

    def experiments(self) -> pd.DataFrame:
        """All experiments, one row each (columns: :data:`trackbook.columns.EXPERIMENT_COLUMNS`).

        Example:
            >>> store.experiments()["name"].tolist()  # doctest: +SKIP
            ['ppo-cartpole', 'hpo-cartpole']
        """
        frame = pd.DataFrame.from_records(self._list_experiments(), columns=C.EXPERIMENT_COLUMNS)
        frame[C.CREATION_TIME] = _to_utc(frame[C.CREATION_TIME])
        return frame.sort_values(C.NAME, kind="stable", ignore_index=True)

    def runs(
        self,
        experiment: str | Sequence[str] | None = None,
        *,
        filter: str | None = None,  # noqa: A002 - the name users know from MLflow
        status: str | Sequence[str] | None = None,
        run_ids: Iterable[str] | None = None,
        stale_after: float = 900.0,
    ) -> pd.DataFrame:
        """One row per run, newest first (columns documented in :mod:`trackbook.columns`).

        Example:
            >>> runs = store.runs("ppo-cartpole", filter="params.learning_rate > 1e-4")  # doctest: +SKIP

        Args:
            experiment: an experiment name or id, or several; all experiments if None.
            filter: a pandas query over the returned columns. ``params.x``, ``tags.x``
                and ``metrics.x`` may be written bare; names with other characters go in
                backticks (```metrics.eval/mean_reward` > 100``). MLflow's ``=``, ``AND``
                and ``OR`` are accepted too.
            status: keep only runs with this status (or these statuses).
            run_ids: keep only these runs.
            stale_after: seconds without a heartbeat or metric after which a RUNNING
                run is marked ``stale`` (its process died without ending it).

        Returns:
            The runs, sorted by start time, newest first.

        Raises:
            ExperimentNotFound: an experiment name or id is unknown.
            InvalidFilter: the filter does not parse or names a missing column.
        """
        if run_ids is not None:
            ids = [self._check_run_id(r) for r in run_ids]
            records = self._get_runs(ids) if ids else []
            if experiment is not None:
                wanted = set(self._resolve_experiments(experiment))
                records = [r for r in records if r.experiment_id in wanted]
        else:
            exp_ids = None if experiment is None else self._resolve_experiments(experiment)
            records = self._list_runs(exp_ids)
        frame = runs_frame(records, stale_after=stale_after)
        if status is not None:
            frame = frame[frame[C.STATUS].isin(_check_statuses(status))]
        if filter:
            frame = apply_filter(frame, filter)
        return frame.reset_index(drop=True)

    def run(self, run_id: str) -> pd.Series:
        """One run's details: the row :meth:`runs` would return for it, without empty fields.

        Raises:
            RunNotFound: no run has this id.
        """
        frame = self.runs(run_ids=[run_id])
        if frame.empty:
            raise RunNotFound(self._missing_run_message([run_id]))
        return frame.iloc[0].dropna()

    def history(
        self,
        runs: RunsLike,
        metrics: str | Sequence[str] | None = None,
        *,
        max_points: int | None = None,
        cache: bool = True,
    ) -> pd.DataFrame:
        """Metric points of runs as a long frame: ``run_id, metric, step, value, timestamp``.

        Points come in bulk (a few set-based queries or concurrent pages, never one
        call per run and metric); finished runs are then served from a local Parquet
        cache (see :attr:`cache`).

        Example:
            >>> hist = store.history(store.runs("ppo-cartpole"), metrics=["eval/mean_reward"])  # doctest: +SKIP
            >>> hist.pivot_table(index="step", columns="run_id", values="value")  # doctest: +SKIP

        Args:
            runs: a run id, run ids, or a frame from :meth:`runs` (its ``run_id`` column).
            metrics: a metric name or names; all metrics of the runs if None.
            max_points: down-sample each series (run, metric) to at most this many
                points for plotting, keeping every bucket's first, last, min and max
                (see :func:`downsample`). Off by default: every point is returned.
            cache: read finished runs through the local cache (and fill it).

        Returns:
            Points sorted by run (in the order given), metric and step. NaN and ±inf are
            kept as logged.

        Raises:
            RunNotFound: a run id is unknown.
        """
        run_ids = self._as_run_ids(runs)
        if isinstance(metrics, str):
            metrics = [metrics]
        metrics = None if metrics is None else list(dict.fromkeys(metrics))
        if max_points is not None and (not isinstance(max_points, int) or max_points < 4):
            raise ValueError(f"max_points={max_points!r}: pass an int >= 4 (first, last, min and max of a bucket), or None.")
        if not run_ids or metrics == []:
            return empty_history()
        index = {r.run_id: r for r in self._require_runs(run_ids, self._history_index)}

        wanted: dict[str, dict[str, Any]] = {}
        for rid in run_ids:
            sigs = index[rid].signatures()
            wanted[rid] = sigs if metrics is None else {m: sigs.get(m) for m in metrics}
        cache = cache and self._history_cacheable()
        cacheable = {r: wanted[r] for r in run_ids if cache and index[r].status in C.FINAL_STATUSES}
        hits, missed = self.cache.get_many(cacheable) if cacheable else (None, [])
        parts = [] if hits is None else [hits]
        missed_set = set(missed)
        to_read = [r for r in run_ids if r not in cacheable or r in missed_set]
        if to_read:
            names = metrics if metrics is not None else sorted({m for r in to_read for m in wanted[r]})
            fresh = self._read_history(to_read, names)
            parts.append(fresh)
            if cache:
                finished = {r: wanted[r] for r in to_read if index[r].status in C.FINAL_STATUSES}
                self.cache.put_many(fresh, finished, complete=metrics is None)
        frame = finish_history(_concat_points(parts), run_ids)
        return frame if max_points is None else downsample(frame, max_points)

    def artifacts(self, run_id: str, path: str = "") -> pd.DataFrame:
        """Files a run logged, recursively under ``path``: columns ``path, size``."""
        self._require_runs([run_id])
        rows = self._list_artifacts(run_id, path.strip("/"))
        frame = pd.DataFrame.from_records(rows, columns=C.ARTIFACT_COLUMNS)
        frame[C.SIZE] = frame[C.SIZE].astype("Int64")
        return frame.sort_values(C.PATH, ignore_index=True)

    def download_artifact(self, run_id: str, path: str, dst: str | Path | None = None) -> Path:
        """Copy one artifact (file or folder) of a run to ``dst`` (a new temp folder if None).

        Returns:
            The local path of the copy.
        """
        self._require_runs([run_id])
        if dst is None:
            import tempfile

            dst = tempfile.mkdtemp(prefix="trackbook-artifact-")
        Path(dst).mkdir(parents=True, exist_ok=True)
        return Path(self._download_artifact(run_id, path.strip("/"), Path(dst)))

    def chain(self, run_id: str) -> Chain:
        """The enhancement chain that ends at ``run_id``, walked back to its root.

        See :class:`trackbook.analysis.chains.Chain`.
        """
        from trackbook.analysis.chains import Chain

        return Chain.from_store(self, run_id)

    def chains(self, experiment: str, *, include_single: bool = False) -> pd.DataFrame:
        """The tree of enhancement chains of ``experiment``: one row per run with its
        root, depth, children count and missing base. See :func:`trackbook.analysis.chains.chain_tree`.
        """
        from trackbook.analysis.chains import chain_tree

        return chain_tree(self, experiment, include_single=include_single)

    def study(self, parent_run_id: str, *, direction: str | None = None, objective: str | None = None) -> Study:
        """The hyper-parameter study whose parent run is ``parent_run_id``.

        See :class:`trackbook.analysis.studies.Study`.
        """
        from trackbook.analysis.studies import Study

        return Study.from_store(self, parent_run_id, direction=direction, objective=objective)

    def studies(self, experiment: str) -> pd.DataFrame:
        """The studies (parent runs with child runs) of ``experiment``, one row each."""
        from trackbook.analysis.studies import study_list

        return study_list(self, experiment)

    # ------------------------------------------------------------ backend primitives

    @abc.abstractmethod
    def _list_experiments(self) -> list[dict[str, Any]]:
        """Rows with the keys of ``EXPERIMENT_COLUMNS`` (creation_time in ms)."""

    @abc.abstractmethod
    def _list_runs(self, experiment_ids: list[str] | None) -> list[RunRecord]:
        """Every active run of these experiments (all experiments if None)."""

    @abc.abstractmethod
    def _get_runs(self, run_ids: list[str]) -> list[RunRecord]:
        """The runs with these ids; unknown ids are left out."""

    def _history_cacheable(self) -> bool:
        """Whether this store's metric signatures change with every added point (else no caching)."""
        return True

    def _history_index(self, run_ids: list[str]) -> list[RunRecord]:
        """Records of these runs with status and metric signatures; unknown ids left out.

        Backends with a cheaper way to get just these override it.
        """
        return self._get_runs(run_ids)

    @abc.abstractmethod
    def _read_history(self, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
        """Points of these metrics of existing runs: columns ``run_id, metric, step, value,
        timestamp`` (ms).

        Any order, though (run, metric, step) order saves a sort.
        """

    @abc.abstractmethod
    def _list_artifacts(self, run_id: str, path: str) -> list[tuple[str, int | None]]:
        """``(path, size)`` of every file under ``path``, recursively."""

    @abc.abstractmethod
    def _download_artifact(self, run_id: str, path: str, dst: Path) -> Path:
        """Copy the artifact at ``path`` into the folder ``dst``; return the copy's path."""

    # ---------------------------------------------------------------------- helpers

    def _check_run_id(self, value: object) -> str:
        if not isinstance(value, str) or not self.run_id_pattern.fullmatch(value):
            raise InvalidRunId(
                f"{value!r} is not a {self.kind} run id (expected {self.run_id_pattern.pattern}). "
                f"Pass the id shown in the run_id column of store.runs()."
            )
        return value

    def _as_run_ids(self, runs: RunsLike) -> list[str]:
        if isinstance(runs, pd.DataFrame):
            if C.RUN_ID not in runs.columns:
                raise ValueError(
                    f"runs= got a DataFrame without a '{C.RUN_ID}' column (columns: "
                    f"{list(runs.columns)[:8]}). Pass store.runs(...) or a list of run ids."
                )
            values: Iterable[Any] = runs[C.RUN_ID]
        elif isinstance(runs, str):
            values = [runs]
        else:
            values = runs
        return list(dict.fromkeys(self._check_run_id(v) for v in values))

    def _require_runs(self, run_ids: list[str], lookup=None) -> list[RunRecord]:
        """Records of ``run_ids`` from ``lookup`` (``_get_runs`` by default); RunNotFound if any is missing."""
        records = (lookup or self._get_runs)(run_ids)
        missing = set(run_ids) - {r.run_id for r in records}
        if missing:
            raise RunNotFound(self._missing_run_message(sorted(missing)))
        return records

    def _missing_run_message(self, run_ids: list[str]) -> str:
        listed = ", ".join(run_ids[:5]) + (" ..." if len(run_ids) > 5 else "")
        return (
            f"No run with id {listed} in {redact_uri(self.uri)}. Check the id against "
            f"store.runs()['run_id'], or connect to the store that holds it."
        )

    def _resolve_experiments(self, experiment: str | Sequence[str]) -> list[str]:
        wanted = [experiment] if isinstance(experiment, str) else list(experiment)
        known = self._list_experiments()
        by_name = {e[C.NAME]: e[C.EXPERIMENT_ID] for e in known}
        by_id = {e[C.EXPERIMENT_ID] for e in known}
        ids = []
        for item in wanted:
            if item in by_name:
                ids.append(by_name[item])
            elif item in by_id:
                ids.append(item)
            else:
                names = ", ".join(sorted(by_name)) or "none"
                raise ExperimentNotFound(
                    f"No experiment named (or with id) {item!r} in {redact_uri(self.uri)}. "
                    f"Experiments there: {names}."
                )
        return ids


# -------------------------------------------------------------------- frame builders


def runs_frame(records: Iterable[RunRecord], *, stale_after: float = 900.0) -> pd.DataFrame:
    """The ``runs()`` frame for backend records: fixed columns, then params, tags, metrics."""
    import time

    now_ms = time.time() * 1000.0
    rows = []
    for r in records:
        row: dict[str, Any] = {
            C.RUN_ID: r.run_id,
            C.NAME: r.name,
            C.EXPERIMENT_ID: r.experiment_id,
            C.EXPERIMENT: r.experiment,
            C.STATUS: r.status,
            C.STALE: r.status == C.RUNNING
            and now_ms - (r.last_activity or r.start_time or now_ms) > stale_after * 1000,
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
    frame[C.START_TIME] = _to_utc(frame[C.START_TIME])
    frame[C.END_TIME] = _to_utc(frame[C.END_TIME])
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
    by run, metric, step and timestamp (a no-op check when they already are).
    """
    present = _as_categorical(frame[C.RUN_ID])
    # from_codes, not set_categories: the latter overflows its int8 codes past 127 new categories.
    position = pd.Index(run_ids).get_indexer(present.categories)
    codes = position[present.codes] if len(position) else np.full(len(present), -1)
    runs = pd.Categorical.from_codes(np.where(present.codes >= 0, codes, -1), categories=pd.Index(run_ids, dtype="str"))
    metric = _as_categorical(frame[C.METRIC])
    metric = metric.reorder_categories(sorted(metric.categories))
    out = pd.DataFrame(
        {
            C.RUN_ID: runs,
            C.METRIC: metric,
            C.STEP: frame[C.STEP].to_numpy(dtype="int64"),
            C.VALUE: frame[C.VALUE].to_numpy(dtype="float64"),
            C.TIMESTAMP: _to_utc(frame[C.TIMESTAMP]),
        }
    )
    if len(out) < 2:
        return out
    keys = (out[C.TIMESTAMP].to_numpy(dtype="int64"), out[C.STEP].to_numpy(), metric.codes, runs.codes)
    if _is_sorted(keys):  # np.lexsort order: the last key is the primary one
        return out
    return out.iloc[np.lexsort(keys)].reset_index(drop=True)


def _as_categorical(values: pd.Series) -> pd.Categorical:
    """``values`` as a categorical of the labels present, with ``str`` categories."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array
        codes = np.asarray(cat.codes)
        # bincount, not remove_unused_categories' sort of every code: O(points) once
        if not (np.bincount(codes[codes >= 0], minlength=len(cat.categories)) > 0).all():
            cat = cat.remove_unused_categories()
    else:
        cat = pd.Categorical(values.astype(object))
    if cat.categories.dtype != "str":
        cat = cat.rename_categories(cat.categories.astype("str"))
    return cat


def _concat_points(parts: list[pd.DataFrame]) -> pd.DataFrame:
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


def _split_by_run(points: pd.DataFrame, run_ids: list[str]):
    """``(run_id, points of that run)`` for each of ``run_ids``, runs without points included."""
    if not run_ids:
        return
    codes = _as_categorical(points[C.RUN_ID])
    rows = pd.Series(np.arange(len(points))).groupby(np.asarray(codes.codes)).indices
    position = {name: i for i, name in enumerate(codes.categories)}
    for rid in run_ids:
        at = rows.get(position.get(rid, -1))
        if at is None:
            yield rid, points.iloc[:0]
        elif at[-1] - at[0] + 1 == len(at):  # contiguous (the SQL path's order): a cheap slice
            yield rid, points.iloc[at[0] : at[-1] + 1]
        else:
            yield rid, points.iloc[at]


def _is_sorted(keys: tuple[np.ndarray, ...]) -> bool:
    """Whether rows are already in lexicographic order of ``keys`` (primary key last)."""
    undecided = np.ones(len(keys[0]) - 1, dtype=bool)
    for key in reversed(keys):
        diff = np.diff(key)
        if np.any(diff[undecided] < 0):
            return False
        undecided &= diff == 0
        if not undecided.any():
            return True
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


def _to_utc(values: pd.Series) -> pd.Series:
    """Milliseconds since the epoch -> UTC timestamps (ns, whatever the input's type)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        ns = values.to_numpy(dtype="int64") * 1_000_000
        return pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]"), tz="UTC"), index=values.index)
    ms = pd.to_numeric(values, errors="coerce").astype("float64").round()
    return pd.to_datetime(ms, unit="ms", utc=True).astype("datetime64[ns, UTC]")


def _numeric_if_possible(values: pd.Series) -> pd.Series:
    present = values.dropna()
    try:
        pd.to_numeric(present)
    except (ValueError, TypeError):
        return values.astype(object).where(values.notna(), None)
    return pd.to_numeric(values)


def _check_statuses(status: str | Sequence[str]) -> list[str]:
    wanted = [status] if isinstance(status, str) else list(status)
    out = []
    for s in wanted:
        if str(s).upper() not in C.STATUSES:
            raise ValueError(f"status={s!r} is not a run status; use one of {', '.join(C.STATUSES)}.")
        out.append(str(s).upper())
    return out


# --------------------------------------------------------------------------- filters

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
