"""MLflow backend of :class:`~trackbook.store.Store`: any tracking URI mlflow accepts."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from trackbook import columns as C
from trackbook import layout as L
from trackbook.errors import StoreUnavailable
from trackbook.store import _mlflow_rest, _mlflow_sql
from trackbook.store._mlflow_sql import restore_special_values
from trackbook._uri import redact_uri
from trackbook.store.base import RunRecord, Store
from trackbook.store.follow import Cursor, after_cursors

_log = logging.getLogger(__name__)

_PAGE = 1000  # search_runs page size; MLflow servers accept up to 50,000
_IDS_PER_QUERY = 100
#: Points at a cursor's step above which a poll reads that step by time, not whole.
_AT_STEP = 1000


class MLflowStore(Store):
    """Runs in an MLflow tracking store (sqlite, PostgreSQL, MySQL, or an ``mlflow server``).

    Example:
        >>> store = MLflowStore("sqlite:///mlflow.db")  # doctest: +SKIP
    """

    kind = "mlflow"
    run_id_pattern = re.compile(r"[0-9a-f]{32}")

    def __init__(self, uri: str, *, timeout: float = 10.0, cache_dir: str | Path | None = None,
                 create: bool = False) -> None:
        super().__init__(uri, cache_dir=cache_dir)
        from mlflow.tracking import MlflowClient

        if uri.startswith("sqlite:///") and not create:
            _check_sqlite_store(uri)
        if uri.startswith(("http://", "https://")):
            _probe_server(uri, timeout)
        elif not uri.startswith(("sqlite:", "file:", "databricks")):
            _probe_database(uri, timeout)
        try:
            self._client = MlflowClient(tracking_uri=uri)
            self._client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - mlflow raises many kinds; all mean "cannot open"
            raise StoreUnavailable(
                f"Could not open the MLflow store {redact_uri(uri)}: {redact_uri(_first_line(exc))}. "
                f"Check the URI (e.g. sqlite:///mlflow.db, postgresql://user@host/db, "
                f"http://127.0.0.1:5000) and that the database or server is up."
            ) from None
        #: SQLAlchemy engine of a SQL store (the bulk read path), else None.
        self._engine = _mlflow_sql.engine_of(self._client)
        #: Credentials of an mlflow server (the REST bulk path), else None.
        self._host_creds = _mlflow_rest.host_creds_of(self._client) if self._engine is None else None
        #: Point counts from the last _history_index, for the _read_history after it.
        self._index_counts: dict[str, dict[str, int]] | None = None
        #: (store version, run id -> metric signatures) from the last _history_index.
        self._index_memo: tuple[Any, dict[str, dict[str, Any]]] = (None, {})
        #: run id -> {metric: largest step} of the runs the last _history_index did not scan.
        self._index_ends: dict[str, dict[str, int]] = {}

    # ---------------------------------------------------------------- experiments

    def _experiments(self) -> list[Any]:
        from mlflow.entities import ViewType

        out, token = [], None
        while True:
            page = self._client.search_experiments(view_type=ViewType.ALL, max_results=_PAGE, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    def _list_experiments(self) -> list[dict[str, Any]]:
        return [
            {
                C.EXPERIMENT_ID: e.experiment_id,
                C.NAME: e.name,
                C.LIFECYCLE_STAGE: e.lifecycle_stage,
                C.CREATION_TIME: e.creation_time,
            }
            for e in self._experiments()
        ]

    # ----------------------------------------------------------------------- runs

    def _search(self, experiment_ids: list[str], filter_string: str = "", experiments: list[Any] | None = None
                ) -> list[RunRecord]:
        names = {e.experiment_id: e.name for e in (self._experiments() if experiments is None else experiments)}
        out, token = [], None
        while True:
            page = self._client.search_runs(
                experiment_ids, filter_string=filter_string, max_results=_PAGE, page_token=token
            )
            out.extend(_record(run, names) for run in page)
            token = page.token
            if not token:
                return out

    def _list_runs(self, experiment_ids: list[str] | None) -> list[RunRecord]:
        experiments = self._experiments()
        if experiment_ids is None:
            experiment_ids = [e.experiment_id for e in experiments if e.lifecycle_stage == "active"]
        return self._search(experiment_ids, experiments=experiments) if experiment_ids else []

    def _get_runs(self, run_ids: list[str]) -> list[RunRecord]:
        experiments = self._experiments()  # once: search_experiments is a round trip of its own
        exp_ids = [e.experiment_id for e in experiments]
        out = []
        for i in range(0, len(run_ids), _IDS_PER_QUERY):
            quoted = ", ".join(f"'{r}'" for r in run_ids[i : i + _IDS_PER_QUERY])
            out.extend(self._search(exp_ids, f"attributes.run_id IN ({quoted})", experiments))
        return out

    # -------------------------------------------------------------------- history

    def _history_index(self, run_ids: list[str]) -> list[RunRecord]:
        if self._engine is not None:
            # While nothing was written to the store (one O(1) query says so), the
            # signatures read last time still hold: no scan of the points.
            version = _mlflow_sql.store_version(self._engine)
            memo = self._index_memo[1] if version is not None and self._index_memo[0] == version else {}
            unread: set[str] = set()
            if self._engine.url.get_backend_name() != "sqlite":
                # Outside sqlite the scan reads the whole table; a run the cache holds
                # nothing of needs no check: its points are read, and tell their signatures.
                cached = self.cache.cached_runs()
                unread = {r for r in run_ids if r not in cached and r not in memo}
            records = _mlflow_sql.history_index(self._engine, run_ids, memo, unread)
            scanned = [r for r in records if r.run_id not in unread]
            if version is not None:
                memo = dict(memo) if len(memo) < 1_000_000 else {}
                memo.update((r.run_id, r.metric_signatures) for r in scanned)
            self._index_memo = (version, memo)
            self._index_counts = {r.run_id: {k: sig[0] for k, sig in r.metric_signatures.items()} for r in scanned}
            self._index_ends = {r.run_id: {k: sig[1] for k, sig in r.metric_signatures.items()}
                                for r in records if r.run_id in unread}
            return records
        if self._host_creds is not None:
            found = _mlflow_rest.history_index(self._host_creds, run_ids)
            if found is not None:
                return found
        return self._get_runs(run_ids)

    def _signatures_of_read(self, points: pd.DataFrame) -> dict[str, dict[str, Any]] | None:
        """Outside sqlite (whose signatures hold a rowid, which no point carries), the
        signatures of what was just read, from the points themselves; they also join
        the memo of the store version read before them."""
        if self._engine is None or self._engine.url.get_backend_name() == "sqlite":
            return None
        read = _mlflow_sql.signatures_of(points)
        version, memo = self._index_memo
        if version is not None:
            for run_id, sigs in read.items():
                # the memo answers for every metric of a run: a read of some of them adds to
                # a run's entry, and makes one only for an unread run all of whose metrics it read
                if run_id in memo:
                    memo[run_id] = {**memo[run_id], **sigs}
                elif run_id in self._index_ends and self._index_ends[run_id].keys() <= sigs.keys():
                    memo[run_id] = sigs
        return read

    def _history_cacheable(self) -> bool:
        """SQL stores and trackbook's server count each series' points; other stores
        (a stock mlflow server, a file store) tell only the latest point, which a point
        logged later at an earlier step does not change, so their runs are not cached."""
        if self._engine is not None:
            return True
        return self._host_creds is not None and self._host_creds.host not in _mlflow_rest._no_index

    def _read_history(self, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
        if self._engine is not None:
            # The point counts history() just had from _history_index save a query;
            # read_points checks them against what it reads.
            counts, self._index_counts = self._index_counts, None
            return _mlflow_sql.read_points(self._engine, run_ids, metrics, counts, self._index_ends)
        if self._host_creds is not None:
            return _mlflow_rest.read_points(self._host_creds, run_ids, metrics)
        return self._naive_history(run_ids, metrics)

    def _read_history_after(self, wanted: dict[tuple[str, str], Cursor | None]):
        """Only the points after each cursor: through MLflow's ``(run_uuid, key, step)``
        index from the cursor's step on (by time through MLflow's primary key where
        that step holds more than 1,000 points; the primary key leads with the metric
        name and timestamp, so that read also passes other runs' later points of the
        metric: cheap for a live run, whose cursor is recent) on a SQL store,
        trackbook's points-from endpoint, or MLflow's bulk-interval endpoint from the
        cursor's step on (its points at that step are read again and dropped) on a stock
        server (see :mod:`trackbook.store._mlflow_sql`, :mod:`trackbook.store._mlflow_rest`);
        a poll costs the new points, not the runs' length."""
        # The cursor's own step is read whole through the step index, unless it holds many
        # points (a series logged at one step): then by time, through the primary key.
        series = [
            (r, m, None, None) if c is None else (r, m, c.step, c.timestamp if c.at_step > _AT_STEP else None)
            for (r, m), c in wanted.items()
        ]
        if self._engine is not None:
            frame = _mlflow_sql.read_points_from(self._engine, series)
        elif self._host_creds is not None:
            frame = _mlflow_rest.read_points_from(self._host_creds, series)
        else:
            return super()._read_history_after(wanted)
        return after_cursors(frame, wanted, whole=False)

    def _naive_history(self, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
        """One get_metric_history call per run and metric: for stores with no bulk path."""
        cols: dict[str, list[Any]] = {c: [] for c in C.HISTORY_COLUMNS}
        for rid in run_ids:
            for key in metrics:
                for m in self._client.get_metric_history(rid, key):
                    cols[C.RUN_ID].append(rid)
                    cols[C.METRIC].append(key)
                    cols[C.STEP].append(m.step)
                    cols[C.VALUE].append(m.value)
                    cols[C.TIMESTAMP].append(m.timestamp)
        frame = pd.DataFrame(cols)
        frame[C.VALUE] = restore_special_values(frame[C.VALUE].to_numpy(dtype="float64"))
        return frame

    # ------------------------------------------------------------------ artifacts

    def _list_artifacts(self, run_id: str, path: str) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []
        pending = [path or None]
        while pending:
            for info in self._client.list_artifacts(run_id, pending.pop()):
                if info.is_dir:
                    pending.append(info.path)
                else:
                    out.append((info.path, info.file_size))
        return out

    def _download_artifact(self, run_id: str, path: str, dst: Path) -> Path:
        import mlflow.artifacts

        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=self.uri
            )
        )


def _record(run: Any, experiment_names: dict[str, str]) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        run_id=info.run_id,
        name=info.run_name or data.tags.get(L.TAG_MLFLOW_RUN_NAME, ""),
        experiment_id=info.experiment_id,
        experiment=experiment_names.get(info.experiment_id, ""),
        status=info.status,
        start_time=info.start_time,
        end_time=info.end_time,
        params=dict(data.params),
        tags=dict(data.tags),
        metrics={k: restore_special_values(v) for k, v in data.metrics.items()},
        parent_run_id=data.tags.get(L.TAG_MLFLOW_PARENT),
        metric_signatures={
            m.key: [int(m.step), int(m.timestamp), repr(float(m.value))] for m in getattr(data, "_metric_objs", [])
        }
        or None,
        last_activity=max(
            [float(data.tags.get(L.TAG_HEARTBEAT) or 0)] + [float(m.timestamp) for m in getattr(data, "_metric_objs", [])]
        )
        or None,
    )


#: Tables every MLflow SQL store has; a file without them is some other application's database.
_MLFLOW_TABLES = {"experiments", "runs", "metrics", "params", "tags"}


def _check_sqlite_store(uri: str) -> None:
    """Refuse, without writing anything, a sqlite file that is missing or not an MLflow store.

    MLflow's client would create the file (and its folder) or add its tables to any
    database it is pointed at; a reader must never do either.
    """
    import sqlite3

    path = Path(uri[len("sqlite:///") :].split("?", 1)[0])
    if str(path) == ":memory:":
        return
    if not path.is_file():
        raise StoreUnavailable(
            f"No MLflow store at {path}: the file does not exist. Readers never create a store: check the "
            f"path, train first (a tracker or TrackingCallback creates it), or pass create=True to "
            f"tb.connect to start an empty one."
        )
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailable(f"{path} is not a sqlite database ({exc}); pass the path of an MLflow store.") from None
    if not _MLFLOW_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:8]) or "none"
        raise StoreUnavailable(
            f"{path} is a sqlite database but not an MLflow store (its tables: {shown}); trackbook reads "
            f"it only if it holds MLflow's tables. Pass the path of an MLflow store."
        )


def _probe_server(uri: str, timeout: float) -> None:
    """Fail fast (instead of mlflow's minutes of retries) when a server is not there."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
    except requests.RequestException as exc:
        raise StoreUnavailable(
            f"Could not reach the MLflow server at {redact_uri(uri)} ({type(exc).__name__}). "
            f"Start it (mlflow server --host 127.0.0.1 --port PORT ...) or point "
            f"MLFLOW_TRACKING_URI / tb.connect() at the right address."
        ) from None


def _probe_database(uri: str, timeout: float) -> None:
    """One connection attempt with a timeout: mlflow retries an unreachable database for
    up to an hour (15 attempts, doubling sleeps) before it says anything."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    args = {"connect_timeout": max(1, int(timeout))} if uri.startswith(("postgresql", "mysql")) else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=NullPool)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - driver errors vary; all mean "cannot open"
        raise StoreUnavailable(
            f"Could not open the MLflow store {redact_uri(uri)}: {redact_uri(_first_line(exc))}. "
            f"Check that the database is up and the URI (user, host, port, database name) is right."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
