"""Set-based reads of MLflow's SQL schema (sqlite, PostgreSQL, MySQL): the bulk path.

Only SELECTs. Two queries per chunk of runs, both ordered by MLflow's
``(run_uuid, key, step)`` index:

1. ``GROUP BY run_uuid, key``: how many points each series has;
2. ``step, value, is_nan, timestamp`` only, in the same order.

The run id and metric name of each point follow from the counts, so no string is
read per point. On PostgreSQL the count is a sequential scan of the whole table (a
fifth of the read), so a run the history cache holds nothing of is not counted: its
series are the ones MLflow lists in ``latest_metrics`` with their largest steps, and
where each ends is where the steps read fall (:func:`_segments`; counted after all
only where the steps cannot tell). Where an ADBC driver is installed (``adbc-driver-sqlite``,
``adbc-driver-postgresql``: the ``fast`` extra) the second query lands in Arrow
columns from the database's C client, with no Python object per point (for sqlite in
a reading process of its own, :mod:`trackbook.store._sqlite_worker`, whose module
docstring says why); elsewhere rows come through the SQLAlchemy engine's DBAPI driver
into a NumPy record array (the fallback). If a series grew between the two queries (a RUNNING run), the
counts disagree and the chunk is read again with the labels in every row.

Rows come back in the order of the run ids asked for, then metric name and step,
which is the order ``history()`` returns, so no sort follows.

A :class:`~trackbook.store.follow.Follower`'s poll reads through
:func:`read_points_from`: per series, the points after its cursor (a step range of
the same index, and the cursor's own step by time through MLflow's primary key), so
its cost is that of the new points. Which series moved it learns from the runs'
latest metrics (MLflow's ``latest_metrics``, one row per series, as ``search_runs``
returns them); the ``COUNT(*)`` of :func:`history_index` reads every point's index
entry and is never in a poll's path.

MLflow keeps NaN as ``value=0, is_nan=true`` and ±inf as ±``sys.float_info.max``;
both are turned back into NaN and ±inf here.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from typing import Any

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook.store import _sqlite_worker
from trackbook.store.frames import RunRecord

_log = logging.getLogger(__name__)

_RUNS_PER_QUERY = 500
_FETCH_ROWS = 100_000
_ADBC_BATCH_ROWS = 65_536  # rows per Arrow batch of a sqlite read (the driver's default: 1,024)
_POINT = np.dtype([("step", "i8"), ("value", "f8"), ("is_nan", "i1"), ("timestamp", "i8")])

#: Engines whose ADBC connection failed once (driver missing or refused): not asked again.
_no_adbc: set[str] = set()


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


def _adbc_connect(engine: Any) -> tuple[Any, str] | None:
    """An ADBC connection to the engine's database and its placeholder, or None.

    None where no ADBC driver for the dialect is installed or it cannot open the
    database (then the DBAPI fallback reads, and the engine is not asked again).
    """
    url = engine.url
    key = url.render_as_string(hide_password=True)
    if key in _no_adbc:
        return None
    try:
        if url.get_backend_name() == "sqlite":
            if not url.database or url.database == ":memory:":
                raise ValueError("an in-memory database is private to its SQLAlchemy connection")
            if importlib.util.find_spec("adbc_driver_sqlite") is None:
                raise ImportError("adbc-driver-sqlite is not installed")
            # the driver is never loaded into this process: see _sqlite_worker
            conn = _sqlite_worker.WORKER.connect(url.database, batch_rows=_ADBC_BATCH_ROWS)
            placeholder = "?"
        elif url.get_backend_name() == "postgresql":
            import adbc_driver_postgresql.dbapi as adbc

            conn = adbc.connect(_libpq_uri(url))
            placeholder = "$"
        else:
            raise ValueError(f"no ADBC driver for {url.get_backend_name()}")
    except Exception:  # noqa: BLE001 - ImportError, or the driver's own errors: use the fallback
        _no_adbc.add(key)
        return None
    return conn, placeholder


#: Settings of trackbook's PostgreSQL read session (a URL's own ``options`` win).
#: ``jit``: JIT compiles each points query (half a second a query at the default ``on``)
#: and speeds up none of them. The sorts: past about 2,000,000 points of one table the
#: planner prices a parallel sequential scan with an on-disk sort (or an incremental
#: sort on the ``run_uuid`` index) below the walk of MLflow's ``(run_uuid, key, step)``
#: index, which returns the same order with no sort at all; measured on 20,000,000
#: points the sort made the read 1.6x slower (14.1 s against 9.0 s, the floor 7.1 s).
#: PostgreSQL before 13 has no ``enable_incremental_sort``, refuses the session, and
#: the DBAPI driver reads instead.
_PG_SESSION = {"jit": "off", "enable_sort": "off", "enable_incremental_sort": "off"}


def _libpq_uri(url: Any) -> str:
    """The engine's URL as libpq takes it, with :data:`_PG_SESSION`'s settings added to
    the ``options`` the URL gives (a setting the URL names is left as it says)."""
    from urllib.parse import quote

    options = url.query.get("options", "")
    options = " ".join(options) if isinstance(options, tuple) else options
    named = {m.lower().replace("-", "_") for m in re.findall(r"(?:-c\s*|--)([\w.-]+)\s*=", options)}
    for name, value in _PG_SESSION.items():
        if name not in named:
            options = f"{options} -c {name}={value}".strip()
    base = url.set(drivername="postgresql").difference_update_query(["options"]).render_as_string(hide_password=False)
    # percent-encoded by hand: libpq reads a '+' as itself, not as a space
    return f"{base}{'&' if '?' in base else '?'}options={quote(options, safe='')}"


def _no_such_index(exc: Exception) -> bool:
    """Whether sqlite refused an ``INDEXED BY`` hint because the index is not there: an
    older MLflow schema without ``index_metrics_run_uuid_key_step`` (any other error is
    a real one, and goes up)."""
    return "no such index" in str(exc)


def _marks(placeholder: str, start: int, n: int) -> str:
    """``?, ?, ...`` (qmark, %s) or ``$k, $k+1, ...`` (PostgreSQL's numbered binds)."""
    if placeholder == "$":
        return ",".join(f"${i}" for i in range(start + 1, start + n + 1))
    return ",".join([placeholder] * n)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def store_version(engine: Any) -> tuple[Any, ...] | None:
    """Something that changes whenever a point or a run is added to the store, read in
    O(1): while it stays the same, signatures read before still hold. None where the
    database has no such cheap answer (MySQL).

    sqlite: the largest rowid of ``metrics`` and of ``runs``, and the number of runs. A
    new row gets a rowid larger than every row there, so a point added anywhere moves
    it. It could only come back to an earlier value if the newest rows were deleted
    (``mlflow gc`` of the newest runs) and exactly as many points then added, with as
    many runs created; the run count and run rowid make that the more remote.

    PostgreSQL: the server's current snapshot (``pg_current_snapshot()``: the next
    transaction id, the ids still in progress). A write commits a transaction that holds
    an id: one begun after the last version moves the next id on, one in progress then
    leaves the list, so a committed point anywhere changes it, and ids are 64 bits, never
    reused. Writes of other databases and of ``ANALYZE`` change it too, which only costs a
    scan that was not needed; checkpoints, ``VACUUM`` and the log's idle bookkeeping do
    not (the write-ahead log position this was before moved for those, so a store left
    alone after a load was scanned again within seconds). Read before the signatures, so
    a commit between the two makes the next version differ. None where it is refused
    (a server before PostgreSQL 13, or a role denied the function).
    """
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        query = "SELECT (SELECT MAX(rowid) FROM metrics), (SELECT MAX(rowid) FROM runs), (SELECT COUNT(*) FROM runs)"
    elif backend == "postgresql":
        query = "SELECT pg_current_snapshot()::text"
    else:
        return None
    conn, _ = _connect(engine)
    try:
        cur = conn.cursor()
        try:
            cur.execute(query)
            row = cur.fetchone()
        except Exception:  # noqa: BLE001 - refused: no version
            if backend == "sqlite":
                raise
            return None  # (the pool rolls the connection back as it takes it back)
        finally:
            cur.close()
    finally:
        conn.close()
    return tuple(int(v or 0) for v in row) if backend == "sqlite" else tuple(row)


#: Marks the signature ``[UNREAD, largest step]`` of a series whose points are not
#: counted before they are read: it equals no signature a store reports, so no cache
#: entry is taken for it, and the read tells the real one (:func:`signatures_of`).
UNREAD = "unread"


def history_index(
    engine: Any, run_ids: list[str], known: dict[str, dict[str, Any]] | None = None,
    unread: set[str] | frozenset[str] = frozenset(),
) -> list[RunRecord]:
    """Status and per-metric signature of active runs: what the history cache checks.

    A signature changes whenever a point is added to the series, whatever its step:
    ``[count, max rowid]`` on sqlite (a new row always gets a larger rowid than every
    row there), ``[count, max step]`` elsewhere; both come from MLflow's
    ``(run_uuid, key, step)`` index without touching the table's rows. MLflow's
    ``latest_metrics`` would not do: a point logged at an earlier step leaves it as is.

    ``known`` (run id -> signatures the caller knows to be current, e.g. from an
    earlier call while :func:`store_version` stayed the same) spares those runs the
    scan of their points; their status is still read. So does ``unread``, runs no
    cache entry needs checking against: their metrics are the names MLflow lists for
    them (``latest_metrics``, one row per series, as ``get_run`` and ``search_runs``
    read them), each with the signature ``[UNREAD, largest step]``, which the points
    read then replace (:func:`signatures_of`). On PostgreSQL the scan is a sequential one of the
    whole table (a fifth of a cold read's time); sqlite answers it from its covering index.
    """
    known = known or {}
    newest = "MAX(rowid)" if engine.url.get_backend_name() == "sqlite" else "MAX(step)"
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
                sigs = dict(known[run_id]) if run_id in known else {}
                out[run_id] = RunRecord(run_id, "", "", "", status, None, None, metric_signatures=sigs)
            named = [r for r in chunk if r in unread and r not in known]
            if named:
                cur.execute(
                    f"SELECT run_uuid, key, step FROM latest_metrics WHERE run_uuid IN ({','.join([ph] * len(named))})",
                    named,
                )
                for run_id, key, step in cur.fetchall():
                    if run_id in out:
                        out[run_id].metric_signatures[key] = [UNREAD, int(step)]
            scan = [r for r in chunk if r not in known and r not in unread]
            if not scan:
                continue
            cur.execute(
                f"SELECT run_uuid, key, COUNT(*), {newest} FROM metrics WHERE run_uuid IN ({','.join([ph] * len(scan))}) "
                f"GROUP BY run_uuid, key",
                scan,
            )
            for run_id, key, count, last in cur.fetchall():
                if run_id in out:
                    out[run_id].metric_signatures[key] = [int(count), int(last)]
        cur.close()
    finally:
        conn.close()
    return list(out.values())


def signatures_of(points: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """``[count, max step]`` of each series in ``points`` (every point of it, as read):
    the signature :func:`history_index` reports for it outside sqlite, taken from the
    points themselves, so it describes exactly what was read."""
    if not len(points):
        return {}
    runs, metrics = points[C.RUN_ID].astype("category").array, points[C.METRIC].astype("category").array
    series = np.asarray(runs.codes, dtype=np.int64) * len(metrics.categories) + np.asarray(metrics.codes)
    steps = points[C.STEP].to_numpy(dtype=np.int64)
    if np.any(series[1:] < series[:-1]):  # not grouped by series (the reader's frames are)
        order = np.argsort(series, kind="stable")
        series, steps = series[order], steps[order]
    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    counts = np.diff(np.r_[starts, len(series)])
    largest = np.maximum.reduceat(steps, starts)
    out: dict[str, dict[str, list[int]]] = {}
    for code, count, step in zip(series[starts].tolist(), counts.tolist(), largest.tolist(), strict=True):
        run, metric = divmod(code, len(metrics.categories))
        out.setdefault(str(runs.categories[run]), {})[str(metrics.categories[metric])] = [count, step]
    return out


def read_points(
    engine: Any, run_ids: list[str], metrics: list[str], counts: dict[str, dict[str, int]] | None = None,
    last_steps: dict[str, dict[str, int]] | None = None,
) -> pd.DataFrame:
    """Every point of these metrics of these runs, ordered by run (as given), metric and step.

    ``counts`` (run id -> {metric: points}, from :func:`history_index` signatures)
    saves the counting query for the runs it covers; so, on PostgreSQL, do
    ``last_steps`` (run id -> {metric: largest step}, from the :data:`UNREAD`
    signatures), where the steps read tell where each series ends (:func:`_segments`). Points are only ever added, so
    if the points read add up to the counts, the counts are those of what was read;
    if not, the chunk is read again with its labels.
    """
    if not metrics or not run_ids:
        return pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS})
    adbc = _adbc_connect(engine)
    if adbc is not None:
        try:
            return _read_all(engine, adbc, run_ids, metrics, counts, last_steps, arrow=True)
        except Exception as exc:  # noqa: BLE001 - the driver's own errors only; others go up
            if not isinstance(exc, _sqlite_worker.WorkerError) and "adbc" not in type(exc).__module__:
                raise
            # e.g. sqlite's read-only handle meeting a writer's journal mid-commit: the
            # DBAPI driver (SQLAlchemy's connection, which may wait and write) reads instead
            _log.debug("trackbook: the ADBC read failed (%s); reading through the DBAPI driver", exc)
    return _read_all(engine, _connect(engine), run_ids, metrics, counts, last_steps, arrow=False)


def _read_all(
    engine: Any, connection: tuple[Any, str], run_ids: list[str], metrics: list[str],
    counts: dict[str, dict[str, int]] | None, last_steps: dict[str, dict[str, int]] | None, *, arrow: bool,
) -> pd.DataFrame:
    conn, ph = connection
    sqlite = engine.url.get_backend_name() == "sqlite"
    postgres = engine.url.get_backend_name() == "postgresql"
    try:
        parts = []
        wanted = set(metrics)
        for chunk in _chunks(run_ids, _RUNS_PER_QUERY):
            known, every_key = None, False
            if counts is not None and all(r in counts for r in chunk):
                known = [(r, k, n) for r in chunk for k, n in counts[r].items() if k in wanted]
                every_key = all(k in wanted for r in chunk for k in counts[r])
            ends = None
            if known is None and last_steps is not None and all(r in last_steps for r in chunk):
                ends = [(r, k, n) for r in chunk for k, n in last_steps[r].items() if k in wanted]
            parts.append(_read_chunk(conn, ph, chunk, metrics, arrow=arrow, sqlite=sqlite, series=known,
                                     every_key=every_key, postgres=postgres, ends=ends))
    finally:
        conn.close()
    return parts[0] if len(parts) == 1 else _concat(parts)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    from pandas.api.types import union_categoricals

    # A part without points (a chunk of runs with none of the metrics, a poll's ranged
    # series with nothing new) has no label to give its categories the str dtype of the
    # others: union_categoricals refuses that mix, and the part adds no row anyway.
    parts = [p for p in parts if len(p)] or parts[:1]
    if len(parts) == 1:
        return parts[0]
    return pd.DataFrame(
        {
            col: union_categoricals([p[col] for p in parts]) if col in (C.RUN_ID, C.METRIC)
            else np.concatenate([p[col].to_numpy() for p in parts])
            for col in C.HISTORY_COLUMNS
        }
    )


def _read_chunk(
    conn: Any, ph: str, run_ids: list[str], metrics: list[str], *, arrow: bool, sqlite: bool,
    series: list[tuple[str, str, int]] | None, every_key: bool, postgres: bool, ends: list[tuple[str, str, int]] | None,
) -> pd.DataFrame:
    """The points of these runs' metrics, placed by ``series`` (run id, metric, points),
    else by where each series ends (``ends``: run id, metric, largest step; see
    :func:`_segments`), else by counts read first."""
    where = f"run_uuid IN ({_marks(ph, 0, len(run_ids))}) AND key IN ({_marks(ph, len(run_ids), len(metrics))})"
    params = [*run_ids, *metrics]
    cur = conn.cursor()
    try:
        default_collation, plain_strings = _pg_settings(cur) if postgres else (False, False)
        # The points come in the database's (run_uuid, key) order, which only it knows
        # for its collation: the counts are put in the same order.
        if series is not None and sqlite:  # sqlite compares MLflow's VARCHAR columns bytewise (BINARY)
            series = sorted(series, key=lambda s: (s[0].encode(), s[1].encode()))
        elif series is not None and default_collation:
            series = _in_db_order(cur, ph, series)
        else:  # counted in the database's order, first or (ends) once the points are read
            every_key = False
            if ends is not None and default_collation:
                ends = _in_db_order(cur, ph, ends)
            else:
                series, ends = _series_counts(cur, where, params), None
        # Every metric of these runs wanted: testing each point's key against the list
        # costs the database a fifth of the read and selects nothing less. (A metric
        # logged since the counts were read makes the totals disagree below.)
        wanted_keys = [] if every_key else metrics
        if arrow and postgres and plain_strings and not any("\x00" in v for v in [*run_ids, *wanted_keys]):
            # ADBC's PostgreSQL driver streams a result through COPY only for a query
            # without bind parameters; with them it holds the whole result in libpq
            # first, which costs a third more and twice the memory.
            order = _where_literal(run_ids, wanted_keys)
            query_params = None
        else:
            order = f"run_uuid IN ({_marks(ph, 0, len(run_ids))})"
            if wanted_keys:
                order += f" AND key IN ({_marks(ph, len(run_ids), len(wanted_keys))})"
            query_params = [*run_ids, *wanted_keys]
        order = f"WHERE {order} ORDER BY run_uuid, key, step"
        select = "SELECT step, value, is_nan, timestamp FROM metrics"
        if sqlite:
            # sqlite's planner prefers MLflow's primary key (key first) and then sorts
            # every point in a temporary B-tree; walking the run index is 3-4x faster.
            try:
                cur.execute(f"{select} INDEXED BY index_metrics_run_uuid_key_step {order}", query_params)
            except Exception as exc:  # noqa: BLE001 - sqlite3's and ADBC's errors differ in class
                if not _no_such_index(exc):
                    raise
                cur.execute(f"{select} {order}", query_params)
        elif query_params is None:
            cur.execute(f"{select} {order}")
        else:
            cur.execute(f"{select} {order}", query_params)
        batches = _arrow_batches(cur) if arrow else _dbapi_batches(cur)
        if ends is not None:
            # held as copies, the NaN flags applied: the driver's batches are let go at once
            held = [(np.array(step), restore_special_values(value, is_nan), None, np.array(timestamp))
                    for step, value, is_nan, timestamp in batches]
            series = _segments([b[0] for b in held], ends)
            if series is None:  # the steps do not tell where each series ends: counted after all
                series = _series_counts(cur, where, params)
            batches = _release(held)
        plan = _Plan(series, run_ids)
        columns = _fetch_into(batches, plan)
        if columns is None:  # points were added between the two queries: read them with their labels
            return _read_labelled(cur, where, params)
    finally:
        cur.close()
    return plan.frame(*columns)


def _series_counts(cur: Any, where: str, params: list[str]) -> list[tuple[str, str, int]]:
    """(run id, metric, points) of each series the chunk's ``where`` selects, in the
    database's ``(run_uuid, key)`` order, which is that of the points query."""
    cur.execute(
        f"SELECT run_uuid, key, COUNT(*) FROM metrics WHERE {where} GROUP BY run_uuid, key ORDER BY run_uuid, key",
        params,
    )
    return [(str(r), str(k), int(n)) for r, k, n in cur.fetchall()]


def _segments(steps: list[np.ndarray], ends: list[tuple[str, str, int]]) -> list[tuple[str, str, int]] | None:
    """(run id, metric, points) of each series, from the steps of points read in the
    database's ``(run_uuid, key, step)`` order and ``ends`` (run id, metric, largest
    step of each series, in that order), or None where the steps cannot tell.

    Steps only climb within a series, so wherever one falls a new series begins. If
    they fall exactly one time fewer than there are series, those are all the places
    where one begins (a series may also begin at a step no lower than the last one's
    end, which makes a fall too few); each series must then end at its largest step.
    ``ends`` come from MLflow's ``latest_metrics``, which holds one row, with the
    largest step, for every series that has a point: so the series are known without
    a count of their points, which PostgreSQL makes by a sequential scan of the table.
    """
    falls: list[int] = []
    ending: list[int] = []
    at, last = 0, None
    for part in steps:
        if not len(part):
            continue
        if last is not None and part[0] < last:
            falls.append(at)
            ending.append(last)
        inside = np.flatnonzero(part[1:] < part[:-1])
        falls.extend((inside + at + 1).tolist())
        ending.extend(part[inside].tolist())
        at, last = at + len(part), int(part[-1])
    if last is not None:
        ending.append(last)
    if len(falls) != len(ends) - 1 or ending != [n for _, _, n in ends]:
        return None
    return [(r, k, int(n)) for (r, k, _), n in zip(ends, np.diff([0, *falls, at]), strict=True)]


def _release(held: list[tuple[np.ndarray, ...]]):
    """The held batches in turn, each let go once placed (so the points are held
    twice only at the start)."""
    held.reverse()
    while held:
        yield held.pop()


def _pg_settings(cur: Any) -> tuple[bool, bool]:
    """Whether PostgreSQL compares ``metrics.run_uuid`` and ``key`` with the database's
    default collation (MLflow's schema names none), so a bare text sorts as they do;
    and whether ``'...'`` literals take backslashes as they are (``standard_conforming_strings``)."""
    cur.execute(
        "SELECT (SELECT COUNT(*) FROM pg_attribute WHERE attrelid = 'metrics'::regclass "
        "AND attname IN ('run_uuid', 'key') AND attcollation = 100), current_setting('standard_conforming_strings')"
    )
    count, strings = cur.fetchall()[0]
    return int(count) == 2, str(strings) == "on"


def _where_literal(run_ids: list[str], keys: list[str]) -> str:
    """The points' WHERE clause with its values written in (standard-conforming strings only)."""

    def quoted(values: list[str]) -> str:
        return ",".join("'" + str(v).replace("'", "''") + "'" for v in values)

    where = f"run_uuid IN ({quoted(run_ids)})"
    return where + (f" AND key IN ({quoted(keys)})" if keys else "")


def _in_db_order(cur: Any, ph: str, series: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """``series`` in PostgreSQL's ``ORDER BY run_uuid, key`` order, from one query that
    sorts only the distinct run ids and metric names (not a scan of the points, which
    the counting ``GROUP BY`` would be)."""
    runs = list(dict.fromkeys(s[0] for s in series))
    keys = list(dict.fromkeys(s[1] for s in series))
    if not series:
        return series
    labels = [*runs, *keys]
    marks = _marks(ph, 0, len(labels)).split(",")
    rows = ",".join(f"({int(i >= len(runs))}, {mark})" for i, mark in enumerate(marks))
    cur.execute(f"SELECT g, v FROM (VALUES {rows}) AS t(g, v) ORDER BY g, v", labels)
    rank: list[dict[str, int]] = [{}, {}]
    for g, v in cur.fetchall():
        rank[int(g)][str(v)] = len(rank[int(g)])
    return sorted(series, key=lambda s: (rank[0][s[0]], rank[1][s[1]]))


def _read_labelled(cur: Any, where: str, params: list[str]) -> pd.DataFrame:
    """Every point with its run id and metric name: the rare path for a series that grew."""
    cur.execute(
        f"SELECT run_uuid, key, step, value, is_nan, timestamp FROM metrics WHERE {where} "
        f"ORDER BY run_uuid, key, step",
        params,
    )
    rows = cur.fetchall()
    points = np.fromiter((tuple(r[2:]) for r in rows), dtype=_POINT, count=len(rows))
    return pd.DataFrame(
        {
            C.RUN_ID: pd.Categorical([r[0] for r in rows]),
            C.METRIC: pd.Categorical([r[1] for r in rows]),
            C.STEP: points["step"],
            C.VALUE: restore_special_values(points["value"], points["is_nan"]),
            C.TIMESTAMP: points["timestamp"],
        }
    )


class _Plan:
    """Where each point of a (run_uuid, key, step)-ordered result goes in the order
    asked for (run as given, metric name, step), and the labels of that order."""

    def __init__(self, series: list[tuple[str, str, int]], run_ids: list[str]) -> None:
        counts = np.array([n for _, _, n in series], dtype=np.int64)
        #: Run labels are the runs asked for, in that order: the order history() returns.
        self.run_names = np.array(run_ids, dtype=object)
        position = {r: i for i, r in enumerate(run_ids)}
        run_codes = np.array([position[s[0]] for s in series], dtype=np.int64)
        self.key_names, key_codes = np.unique(np.array([s[1] for s in series], dtype=object), return_inverse=True)
        order = np.lexsort((key_codes, run_codes))
        self.total = int(counts.sum())
        self.shift = None  # the database's order is already the one asked for
        self.db_counts, self.db_ends = counts, np.cumsum(counts)
        if len(order) and np.any(np.diff(order) != 1):
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            out_starts = np.cumsum(counts[order]) - counts[order]
            #: per series in the database's order: where its points go, less where they come
            self.shift = out_starts[rank] - (self.db_ends - counts)
        self.run_codes, self.key_codes, self.counts = run_codes[order], key_codes[order], counts[order]

    def dest(self, at: int, n: int) -> slice | np.ndarray:
        """Where the result's rows ``at .. at + n`` go (built per batch: never an index of every point)."""
        if self.shift is None:
            return slice(at, at + n)
        first, last = np.searchsorted(self.db_ends, [at, at + n - 1], side="right")
        ends = self.db_ends[first : last + 1]
        # never negative: series first and last hold rows at and at + n - 1, those between lie inside
        lengths = np.minimum(ends, at + n) - np.maximum(ends - self.db_counts[first : last + 1], at)
        out = np.repeat(self.shift[first : last + 1], lengths)
        out += np.arange(at, at + n, dtype=np.int64)
        return out

    def frame(self, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {
                C.RUN_ID: pd.Categorical.from_codes(_codes(self.run_codes, self.counts, len(self.run_names)),
                                                    categories=self.run_names),
                C.METRIC: pd.Categorical.from_codes(_codes(self.key_codes, self.counts, len(self.key_names)),
                                                    categories=self.key_names),
                C.STEP: steps,
                C.VALUE: values,
                C.TIMESTAMP: times,
            },
            copy=False,
        )


def _codes(series_codes: np.ndarray, counts: np.ndarray, n_categories: int) -> np.ndarray:
    """Per point, its series' label code, in the smallest type pandas keeps for that many
    categories (so ``Categorical.from_codes`` takes the array as it is)."""
    dtype = np.int8 if n_categories < 127 else np.int16 if n_categories < 32767 else np.int32
    return np.repeat(series_codes.astype(dtype), counts)


def _fetch_into(batches, plan: _Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The points, batch by batch, straight into their place in three preallocated
    columns: the result is never held twice. None if the rows do not add up to the
    counts. A batch whose NaN flags are None has them applied to its values already."""
    steps = np.empty(plan.total, dtype=np.int64)
    values = np.empty(plan.total, dtype=np.float64)
    times = np.empty(plan.total, dtype=np.int64)
    at = 0
    for step, value, is_nan, timestamp in batches:
        n = len(step)
        if at + n > plan.total:
            return None
        if not n:
            continue
        where = plan.dest(at, n)
        steps[where] = step
        values[where] = value if is_nan is None else restore_special_values(value, is_nan)
        times[where] = timestamp
        at += n
    return (steps, values, times) if at == plan.total else None


def _arrow_batches(cur: Any):
    """``(step, value, is_nan, timestamp)`` arrays per Arrow record batch of an ADBC cursor."""
    for batch in cur.fetch_record_batch():
        columns = []
        for name in ("step", "value", "is_nan", "timestamp"):
            col = batch.column(name)
            if col.null_count:  # sqlite's loose typing: cannot happen in MLflow's NOT NULL columns
                raise ValueError(f"NULL {name} in MLflow's metrics table")
            columns.append(col.to_numpy(zero_copy_only=False))
        yield columns


def _dbapi_batches(cur: Any):
    """The same from a DBAPI cursor, through a NumPy record array per ``fetchmany``."""
    while True:
        rows = cur.fetchmany(_FETCH_ROWS)
        if not rows:
            return
        points = np.fromiter(rows, dtype=_POINT, count=len(rows))
        yield points["step"], points["value"], points["is_nan"], points["timestamp"]


def restore_special_values(values: Any, is_nan: Any = None) -> Any:
    """MLflow's stored ``(value, is_nan)`` back to floats with NaN and ±inf (arrays or scalars)."""
    out = np.array(values, dtype="float64", ndmin=1)
    out[out >= sys.float_info.max] = np.inf
    out[out <= -sys.float_info.max] = -np.inf
    if is_nan is not None:
        out[np.array(is_nan, dtype=bool, ndmin=1)] = np.nan
    return float(out[0]) if np.ndim(values) == 0 else out


_SERIES_PER_QUERY = 200


def points_after_sql(placeholder: str, n_series: int, *, sqlite: bool, op: str = ">=") -> str:
    """The query for the points of ``n_series`` series from (``>=``) or after (``>``)
    a step: one ``(run_uuid = ? AND key = ? AND step >= ?)`` term each, so that every
    term is a range of MLflow's ``(run_uuid, key, step)`` index (sqlite: a MULTI-INDEX
    OR; PostgreSQL: a BitmapOr of index scans) and the cost is that of the points in range."""
    if op not in (">=", ">"):
        raise ValueError(f"op={op!r}")
    term = f"(run_uuid = {placeholder} AND key = {placeholder} AND step {op} {placeholder})"
    hint = " INDEXED BY index_metrics_run_uuid_key_step" if sqlite else ""
    return f"SELECT {_LABELLED} FROM metrics{hint} WHERE " + " OR ".join([term] * n_series)


def points_at_step_after_sql(placeholder: str, n_series: int) -> str:
    """The query for the points of ``n_series`` series at one step, logged after a
    time: ``(key = ? AND timestamp > ? AND step = ? AND run_uuid = ?)`` terms, which
    MLflow's primary key ``(key, timestamp, step, run_uuid, ...)`` serves as a range.
    (Through the step index, a series logged at one step throughout, as ``log_metric``
    without a step does, would be read whole each poll.)"""
    term = f"(key = {placeholder} AND timestamp > {placeholder} AND step = {placeholder} AND run_uuid = {placeholder})"
    return f"SELECT {_LABELLED} FROM metrics WHERE " + " OR ".join([term] * n_series)


_LABELLED = "run_uuid, key, step, value, is_nan, timestamp"


def read_points_from(engine: Any, series: list[tuple[str, str, int | None, int | None]]) -> pd.DataFrame:
    """Points of each series ``(run id, metric, step, timestamp)`` after that point:
    a greater step, or the same step and a later timestamp; where the timestamp is
    None, every point from the step on; where the step is None, every point. With
    their labels, in any order.

    Series read from their start go through :func:`read_points` (the bulk reader,
    grouped by runs with the same metrics, so that no other series is read); the
    others through :func:`points_after_sql` and :func:`points_at_step_after_sql`,
    whose cost is that of the points found.
    """
    parts = []
    whole: dict[str, list[str]] = {}
    for run_id, key, step, _ in series:
        if step is None:
            whole.setdefault(run_id, []).append(key)
    groups: dict[tuple[str, ...], list[str]] = {}
    for run_id, keys in whole.items():
        groups.setdefault(tuple(sorted(keys)), []).append(run_id)
    for keys, run_ids in groups.items():
        parts.append(read_points(engine, run_ids, list(keys)))
    ranged = [(r, k, int(s), None if t is None else int(t)) for r, k, s, t in series if s is not None]
    if ranged:
        sqlite = engine.url.get_backend_name() == "sqlite"
        by_step = [(r, k, s) for r, k, s, t in ranged if t is None]
        by_time = [(r, k, s, t) for r, k, s, t in ranged if t is not None]
        conn, ph = _connect(engine)
        try:
            cur = conn.cursor()
            rows: list[Any] = []
            for op, todo in ((">=", by_step), (">", by_time)):
                for i in range(0, len(todo), _SERIES_PER_QUERY):
                    chunk = todo[i : i + _SERIES_PER_QUERY]
                    params = [v for item in chunk for v in item[:3]]
                    try:
                        cur.execute(points_after_sql(ph, len(chunk), sqlite=sqlite, op=op), params)
                    except Exception as exc:  # noqa: BLE001 - sqlite3's and ADBC's errors differ in class
                        if not (sqlite and _no_such_index(exc)):
                            raise
                        cur.execute(points_after_sql(ph, len(chunk), sqlite=False, op=op), params)  # the planner picks
                    rows.extend(cur.fetchall())
                    if op == ">":  # the cursor's own step, by time
                        params = [v for r, k, s, t in chunk for v in (k, t, s, r)]
                        cur.execute(points_at_step_after_sql(ph, len(chunk)), params)
                        rows.extend(cur.fetchall())
            cur.close()
        finally:
            conn.close()
        points = np.fromiter((tuple(r[2:]) for r in rows), dtype=_POINT, count=len(rows))
        parts.append(
            pd.DataFrame(
                {
                    C.RUN_ID: pd.Categorical([str(r[0]) for r in rows]),
                    C.METRIC: pd.Categorical([str(r[1]) for r in rows]),
                    C.STEP: points["step"],
                    C.VALUE: restore_special_values(points["value"], points["is_nan"]),
                    C.TIMESTAMP: points["timestamp"],
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS})
    return parts[0] if len(parts) == 1 else _concat(parts)
