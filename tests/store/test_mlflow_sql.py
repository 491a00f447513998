"""The SQL reader of MLflow stores (``trackbook.store._mlflow_sql``) on a small sqlite store.

Runs are written by MLflow's own client into a copy of a migrated empty store (seconds,
so that scripts/mutation can run these for each mutant); every expected point comes
from ``MlflowClient.get_metric_history``, with MLflow's stored ``±sys.float_info.max``
read as ±inf by hand. Both readers run on the same store: ADBC (the ``fast`` extra)
and the DBAPI fallback a store without it uses.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

import trackbook as tb
from tests._mlflow_template import empty_mlflow_db, written_once
from trackbook import columns as C
from trackbook.store import _mlflow_sql as sql

T0 = 1_700_000_000_000
BIG_STEP = 2**40  # past int32


def _points(name: str) -> dict[str, list[tuple[int, float]]]:
    """Each run's (step, value) points per metric, in the order they are logged."""
    rng = np.random.default_rng(7)
    if name == "r0":
        loss = [(s, float(v)) for s, v in enumerate(rng.normal(size=120))]
        loss[5], loss[7], loss[9] = (5, math.nan), (7, math.inf), (9, -math.inf)
        return {"loss": loss, "acc": [(10 * s, s / 30) for s in range(30)],
                "B": [(s, float(s)) for s in range(10)], "a": [(s, -float(s)) for s in range(10)]}
    if name == "r1":  # RUNNING: three points a step, a negative step, one far past int32
        loss = [(-5, 0.25)] + [(s // 3, float(s)) for s in range(60)] + [(BIG_STEP, 1.5)]
        return {"loss": loss, "acc": [(s, 0.5 + s) for s in range(5)]}
    if name == "r2":
        return {"acc": [(s, float(s) ** 0.5) for s in range(20)]}
    if name == "wide":  # more metric names than int8 category codes hold
        return {f"m{i:03d}": [(0, float(i)), (1, -float(i))] for i in range(130)}
    if name == "deleted":
        return {"loss": [(s, 1.0) for s in range(5)]}
    return {}  # r4: no metrics


_STATUS = {"r0": "FINISHED", "r1": "RUNNING", "r2": "FAILED", "deleted": "FINISHED", "r4": "FINISHED",
           "wide": "FINISHED"}


def _log(client: MlflowClient, run_id: str, key: str, points, t: list[int]) -> None:
    """Log ``points`` with strictly increasing timestamps (``t`` is the clock, advanced)."""
    client.log_batch(run_id, metrics=_metrics(key, points, t))


def _metrics(key: str, points, t: list[int]) -> list[Metric]:
    out = []
    for step, value in points:
        out.append(Metric(key, value, t[0], step))
        t[0] += 1
    return out


def _write(uri: str) -> dict[str, str]:
    client = MlflowClient(uri)
    exp = client.create_experiment("sql")
    ids, clock = {}, [T0]
    for name in _STATUS:
        run_id = client.create_run(exp, run_name=name).info.run_id
        batch = [m for key, points in _points(name).items() for m in _metrics(key, points, clock)]
        for i in range(0, len(batch), 1000):  # MLflow's most metrics per log_batch
            client.log_batch(run_id, metrics=batch[i : i + 1000])
        if _STATUS[name] != "RUNNING":
            client.set_terminated(run_id, _STATUS[name])
        ids[name] = run_id
    client.delete_run(ids["deleted"])
    return ids


@pytest.fixture(scope="module")
def written() -> tuple[Path, dict[str, str]]:
    """The store file and its run ids (name -> id), written once a process; read only:
    tests that write copy it."""
    path, ids = written_once("sql", _write)
    _READ_ONLY.add(f"sqlite:///{path}")
    return path, ids


@pytest.fixture()
def copy(written, tmp_path):
    """A private copy of the store, free to be written to: (uri, path, ids)."""
    path, ids = written
    shutil.copyfile(path, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlflow.db", ids


def _engine(uri: str):
    return sql.engine_of(MlflowClient(uri))


_FALLBACK = "trackbook: the ADBC read failed (%s); reading through the DBAPI driver"


@pytest.fixture(params=["adbc", "dbapi"])
def reader(request, monkeypatch, caplog):
    """The ADBC reader (which must not have fallen back to the DBAPI one: no failed ADBC
    read is logged), or the DBAPI fallback a store without the ``fast`` extra uses."""
    if request.param == "dbapi":
        monkeypatch.setattr(sql, "_adbc_connect", lambda engine: None)
    with caplog.at_level("DEBUG", logger=sql.__name__):
        yield request.param
    assert [r.getMessage() for r in caplog.records if r.msg == _FALLBACK] == []


def _unstored(value: float) -> float:
    """MLflow keeps ±inf as ±sys.float_info.max (and get_metric_history returns that)."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


#: Stores no test writes to (``written``, ``pg_written``), whose MLflow points are read once
#: a process: run ids are uuids, so a key never meets another store's. A mutation run's
#: forks inherit what its first run read.
_READ_ONLY: set[str] = set()
_TRUTH: dict[tuple, pd.DataFrame] = {}


def _expected(uri: str, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
    """MLflow's own points, ordered by run as given, metric name, step, then time."""
    key = (uri, tuple(run_ids), tuple(metrics))
    if uri in _READ_ONLY:
        if key not in _TRUTH:
            _TRUTH[key] = _mlflows_points(uri, run_ids, metrics)
        return _TRUTH[key].copy()
    return _mlflows_points(uri, run_ids, metrics)


def _mlflows_points(uri: str, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
    client = MlflowClient(uri)
    rows = [(r, k, m.step, _unstored(m.value), m.timestamp)
            for r in run_ids for k in metrics for m in client.get_metric_history(r, k)]
    rows.sort(key=lambda p: (run_ids.index(p[0]), p[1].encode(), p[2], p[4]))
    return _plain(pd.DataFrame(rows, columns=C.HISTORY_COLUMNS))


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Labels as str, numbers in the types read_points gives (timestamps in ms)."""
    return frame.astype({C.RUN_ID: "str", C.METRIC: "str", C.STEP: "int64", C.VALUE: "float64",
                         C.TIMESTAMP: "int64"}).reset_index(drop=True)[C.HISTORY_COLUMNS]


def _unordered(frame: pd.DataFrame) -> pd.DataFrame:
    return _plain(frame).sort_values(C.HISTORY_COLUMNS, ignore_index=True)


ALL = ["loss", "acc", "B", "a"]


# ------------------------------------------------------------------------ read_points


@pytest.mark.parametrize(("order", "runs_per_query", "batch_rows", "metrics"), [
    ("sorted", 500, 7, ALL + ["never-logged"]),  # the database's order: rows go where they come, 7 a batch
    ("reversed", 500, 7, ALL + ["never-logged"]),  # rows moved into the order asked, batches across series
    ("reversed", 2, None, ALL),  # queries of two runs, concatenated
    ("sorted", 1, None, ["loss", "a"]),  # a query a run: some find none of these metrics
], ids=["db-order", "reordered", "chunks-of-2", "a-query-a-run"])
def test_read_points_equals_mlflows_own_history(written, reader, monkeypatch, order, runs_per_query, batch_rows,
                                                metrics):
    path, ids = written
    uri = f"sqlite:///{path}"
    monkeypatch.setattr(sql, "_RUNS_PER_QUERY", runs_per_query)
    if batch_rows:
        monkeypatch.setattr(sql, "_FETCH_ROWS", batch_rows)
        monkeypatch.setattr(sql, "_ADBC_BATCH_ROWS", batch_rows)
    asked = sorted([ids["r0"], ids["r1"], ids["r2"], ids["r4"]], reverse=order == "reversed")
    got = sql.read_points(_engine(uri), asked, metrics)
    want = _expected(uri, asked, metrics)
    assert len(want) == sum(len(_points(n).get(k, [])) for n in ("r0", "r1", "r2") for k in metrics)
    pdt.assert_frame_equal(_plain(got), want)  # rows in the order history() returns, no sort needed
    assert [got[c].dtype for c in (C.STEP, C.VALUE, C.TIMESTAMP)] == ["int64", "float64", "int64"]
    assert all(isinstance(got[c].dtype, pd.CategoricalDtype) for c in (C.RUN_ID, C.METRIC))
    if runs_per_query == 500:  # one query: the labels are the runs asked for and the metric names, sorted
        assert list(got[C.RUN_ID].cat.categories) == asked
        assert list(got[C.METRIC].cat.categories) == sorted(set(want[C.METRIC]))


def test_more_metric_names_than_int8_codes_hold(written):
    path, ids = written
    uri = f"sqlite:///{path}"
    names = sorted(_points("wide"))
    got = sql.read_points(_engine(uri), [ids["wide"], ids["r0"]], [*names, "loss"])
    pdt.assert_frame_equal(_plain(got), _expected(uri, [ids["wide"], ids["r0"]], [*names, "loss"]))
    assert got[C.METRIC].nunique() == 131 and got[C.METRIC].iloc[-1] == "loss"


def test_values_nan_and_infinities_come_back(written, reader):
    path, ids = written
    got = sql.read_points(_engine(f"sqlite:///{path}"), [ids["r0"]], ["loss"]).set_index(C.STEP)[C.VALUE]
    assert math.isnan(got[5]) and got[7] == math.inf and got[9] == -math.inf
    assert got.drop([5, 7, 9]).tolist() == [v for s, v in _points("r0")["loss"] if s not in (5, 7, 9)]


def test_nothing_asked_is_an_empty_history_frame(written, reader):
    path, ids = written
    engine = _engine(f"sqlite:///{path}")
    for run_ids, metrics in (([], ["loss"]), ([ids["r0"]], []), ([ids["r4"]], ["loss"])):
        got = sql.read_points(engine, run_ids, metrics)
        assert got.empty and list(got.columns) == C.HISTORY_COLUMNS


@pytest.mark.parametrize(("metrics", "runs_per_query"), [(None, 500), (["loss", "a"], 1)],
                         ids=["every-metric", "some-a-query-a-run"])
def test_history_through_the_index_counts_equals_mlflows_own(written, reader, monkeypatch, metrics, runs_per_query):
    """history() hands read_points the counts its index read, and reads every metric unfiltered.
    A query a run: runs without the metrics asked (r2, r4) are queries without points."""
    path, ids = written
    monkeypatch.setattr(sql, "_RUNS_PER_QUERY", runs_per_query)
    monkeypatch.setattr(sql, "_series_counts", lambda *a: pytest.fail("series counted though their counts were told"))
    uri = f"sqlite:///{path}"
    asked = [ids["r2"], ids["r0"], ids["r4"], ids["r1"]]
    got = tb.connect(uri).history(asked, metrics, cache=False)
    want = _expected(uri, asked, metrics or ALL)
    assert (got[C.TIMESTAMP].astype("int64") // 1_000_000).tolist() == want[C.TIMESTAMP].tolist()
    pdt.assert_frame_equal(_plain(got.assign(**{C.TIMESTAMP: want[C.TIMESTAMP]})), want)


@pytest.mark.parametrize("metrics", [ALL + ["late"], ["loss", "late"]], ids=["every-metric", "some"])
def test_points_logged_after_the_counts_are_read_again_with_their_labels(copy, reader, metrics):
    uri, _, ids = copy
    engine = _engine(uri)
    asked = [ids["r1"], ids["r0"]]
    counts = {r.run_id: {k: s[0] for k, s in r.metric_signatures.items()} for r in sql.history_index(engine, asked)}
    client = MlflowClient(uri)
    _log(client, ids["r1"], "loss", [(61, 7.0), (3, 8.0)], [T0 + 10_000])  # one past the end, one earlier
    _log(client, ids["r0"], "late", [(0, 1.0)], [T0 + 10_000])  # a metric the counts do not know
    got = sql.read_points(engine, asked, metrics, counts)
    pdt.assert_frame_equal(_unordered(got), _unordered(_expected(uri, asked, metrics)))


def test_counts_that_exceed_the_points_read_are_not_trusted(written, reader):
    path, ids = written
    uri = f"sqlite:///{path}"
    asked = [ids["r0"], ids["r1"]]
    for extra in (1, 1_000_000):  # a point short, or far more than there are
        counts = {ids["r0"]: {"loss": 120 + extra, "acc": 30}, ids["r1"]: {"loss": 62, "acc": 5}}
        got = sql.read_points(_engine(uri), asked, ["loss", "acc"], counts)
        pdt.assert_frame_equal(_unordered(got), _unordered(_expected(uri, asked, ["loss", "acc"])))


def test_true_counts_of_zero_and_counts_of_other_runs_read_the_same(written, reader):
    """A metric counted at 0 points (it has none), between others in the database's order;
    counts that cover none of the runs asked are not used."""
    path, ids = written
    uri = f"sqlite:///{path}"
    asked = sorted([ids["r0"], ids["r2"]], reverse=True)
    metrics = ["loss", "acc", "ab", "a"]
    counts = {ids["r0"]: {"loss": 120, "acc": 30, "ab": 0, "a": 10, "B": 10}, ids["r2"]: {"acc": 20, "ab": 0}}
    want = _expected(uri, asked, metrics)
    pdt.assert_frame_equal(_plain(sql.read_points(_engine(uri), asked, metrics, counts)), want)
    others = {ids["r1"]: {"loss": 62, "acc": 5}}
    pdt.assert_frame_equal(_plain(sql.read_points(_engine(uri), asked, metrics, others)), want)


def test_a_store_without_mlflows_run_key_step_index_is_read_the_same(copy, reader):
    """Older MLflow schemas lack index_metrics_run_uuid_key_step, which the reads ask sqlite for."""
    uri, path, ids = copy
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX index_metrics_run_uuid_key_step")
    asked = [ids["r1"], ids["r0"]]
    pdt.assert_frame_equal(_plain(sql.read_points(_engine(uri), asked, ALL)), _expected(uri, asked, ALL))
    series = [(ids["r1"], "loss", 10, None), (ids["r1"], "acc", 2, T0), (ids["r0"], "B", None, None)]
    got = sql.read_points_from(_engine(uri), series)
    want = pd.concat([_after(uri, *s) for s in series])
    assert len(want) == 31 + 3 + 10
    pdt.assert_frame_equal(_unordered(got), _unordered(want))


# Holds an exclusive lock on the database until a line comes on its stdin. In another process: in this one,
# ADBC's own copy of sqlite would not see a lock the sqlite3 module's copy holds.
_LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()  # held until the test says
db.rollback()
"""


def test_a_failed_adbc_read_is_read_again_through_the_dbapi_driver(copy, caplog):
    """A writer holding sqlite's lock: ADBC's read-only handle fails at once, SQLAlchemy's
    connection waits for the lock (its busy timeout) and reads once the writer lets go,
    which it does when the fallback has been logged."""
    uri, path, ids = copy
    engine = _engine(uri)
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)

    def release_once_fallen_back():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(r.msg == _FALLBACK for r in caplog.records):
            time.sleep(0.01)
        locker.stdin.write("go\n")
        locker.stdin.flush()

    releaser = threading.Thread(target=release_once_fallen_back, daemon=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        with caplog.at_level("DEBUG", logger=sql.__name__):
            releaser.start()
            got = sql.read_points(engine, [ids["r1"]], ["loss"])
    finally:
        releaser.join(timeout=30)
        locker.wait(timeout=30)
    pdt.assert_frame_equal(_plain(got), _expected(uri, [ids["r1"]], ["loss"]))
    said = [r.getMessage() for r in caplog.records if r.msg == _FALLBACK]
    assert len(said) == 1 and "locked" in said[0], caplog.text


def _numbers(path: Path, n: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(0, 2 * n, 2)])


def test_an_adbc_read_holds_off_a_writer_of_this_process_and_sees_no_torn_rows(tmp_path):
    """ADBC's driver carries its own SQLite: loaded into this process, its read would not
    hold off a commit by the sqlite3 module's copy (MLflow's client logging from a thread
    of the same kernel), which rewrote the pages under it ("database disk image is
    malformed", or rows of two states). Read from the worker process, it does."""
    import sqlalchemy

    path = tmp_path / "numbers.db"
    _numbers(path, 200_000)  # 1.6 MB of Arrow: far more than a pipe holds, so the read stays open
    conn, _ = sql._adbc_connect(sqlalchemy.create_engine(f"sqlite:///{path}"))
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        cur = conn.cursor()
        cur.execute("SELECT a FROM t ORDER BY a")
        batches = cur.fetch_record_batch()
        first = next(batches)
        writer.execute("BEGIN IMMEDIATE")
        writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1, 400_000, 2)])
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            writer.execute("COMMIT")
        rest = [b.column(0).to_numpy() for b in batches]
        cur.close()
    finally:
        conn.close()
    read = np.concatenate([first.column(0).to_numpy(), *rest])
    np.testing.assert_array_equal(read, np.arange(0, 400_000, 2))
    writer.execute("COMMIT")  # the read is over: the lock is free
    writer.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 400_000


@pytest.mark.not_under_mutation  # a fresh interpreter each time: 3-4 s a mutant
def test_trackbook_never_loads_adbcs_sqlite_into_its_own_process(written):
    """The reads went through ADBC (the worker), yet neither the driver's module nor its
    library (with its copy of SQLite) is in the reading process."""
    path, ids = written
    code = (
        "import sys; import trackbook as tb; from trackbook.store import _mlflow_sql as sql\n"
        f"store = tb.connect('sqlite:///{path}')\n"
        f"assert len(store.history({ids['r1']!r}, cache=False)) > 0\n"
        "assert sql._no_adbc == set() and sql._sqlite_worker.WORKER._proc.poll() is None\n"
        "maps = open('/proc/self/maps').read()\n"
        "assert 'adbc_driver_sqlite' not in sys.modules and 'libadbc_driver_sqlite' not in maps\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_worker_that_died_is_started_again_and_a_result_left_half_read_is_drained(tmp_path):
    import sqlalchemy

    from trackbook.store import _sqlite_worker

    path = tmp_path / "numbers.db"
    _numbers(path, 100_000)
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    conn, _ = sql._adbc_connect(engine)
    try:
        cur = conn.cursor()
        cur.execute("SELECT a FROM t ORDER BY a")
        next(cur.fetch_record_batch())  # left after one batch of several
        cur.execute("SELECT COUNT(*), MAX(a) FROM t")
        assert cur.fetchall() == [(100_000, 199_998)]
        with pytest.raises(_sqlite_worker.WorkerError, match="no such table"):
            cur.execute("SELECT * FROM nowhere")
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
        cur.close()
    finally:
        conn.close()
    first = _sqlite_worker.WORKER._proc
    first.kill()
    first.wait()
    conn, _ = sql._adbc_connect(engine)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchall() == [(100_000,)]
    finally:
        conn.close()
    assert _sqlite_worker.WORKER._proc is not first and _sqlite_worker.WORKER._proc.poll() is None


def test_adbc_opens_the_file_read_only_and_never_an_in_memory_database(written, monkeypatch):
    import sqlalchemy

    path, _ = written
    conn, placeholder = sql._adbc_connect(_engine(f"sqlite:///{path}"))
    try:
        assert placeholder == "?"
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM metrics")
        assert cur.fetchall()[0][0] > 0
        with pytest.raises(Exception, match="readonly"):
            cur.execute("DELETE FROM metrics")
        cur.close()
    finally:
        conn.close()
    monkeypatch.setattr(sql, "_no_adbc", set())
    for url in ("sqlite://", "sqlite:///:memory:"):  # each its own database, ADBC could not see it
        memory = sqlalchemy.create_engine(url)
        assert sql._adbc_connect(memory) is None
        assert sql._no_adbc == {memory.url.render_as_string(hide_password=True)}  # not asked again
        sql._no_adbc.clear()


def test_engine_of_an_sql_store_and_of_others(written):
    import sqlalchemy

    path, _ = written
    engine = sql.engine_of(MlflowClient(f"sqlite:///{path}"))
    assert isinstance(engine, sqlalchemy.engine.Engine) and engine.url.database == str(path)
    assert sql.engine_of(MlflowClient("http://127.0.0.1:9")) is None  # a server's REST store: no engine
    assert sql.engine_of(object()) is None


# ------------------------------------------------------------------------ the index


def _newest_rowid(path: Path, run_id: str, key: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT MAX(rowid) FROM metrics WHERE run_uuid = ? AND key = ?", (run_id, key)).fetchone()[0]


@pytest.mark.parametrize("runs_per_query", [500, 2], ids=["one-query", "chunks-of-2"])
def test_history_index_has_each_active_runs_status_and_signatures(copy, monkeypatch, runs_per_query):
    uri, path, ids = copy
    monkeypatch.setattr(sql, "_RUNS_PER_QUERY", runs_per_query)
    client = MlflowClient(uri)
    asked = [ids[n] for n in ("r4", "deleted", "r2", "r0", "r1")] + ["f" * 32]
    records = {r.run_id: r for r in sql.history_index(_engine(uri), asked)}
    assert sorted(records) == sorted(ids[n] for n in ("r4", "r2", "r0", "r1"))  # no deleted or unknown run
    assert {r: rec.status for r, rec in records.items()} == {ids[n]: _STATUS[n] for n in ("r4", "r2", "r0", "r1")}
    for name in ("r4", "r2", "r0", "r1"):
        run_id = ids[name]
        assert records[run_id].metric_signatures == {
            k: [len(client.get_metric_history(run_id, k)), _newest_rowid(path, run_id, k)] for k in _points(name)}
    before = records[ids["r1"]].metric_signatures["loss"]
    _log(client, ids["r1"], "loss", [(0, 9.0)], [T0 + 10_000])  # at an earlier step: latest_metrics stays
    after = {r.run_id: r for r in sql.history_index(_engine(uri), asked)}[ids["r1"]].metric_signatures["loss"]
    assert after[0] == before[0] + 1 and after[1] > before[1]


@pytest.mark.parametrize("runs_per_query", [500, 1], ids=["one-query", "a-query-a-run"])
def test_history_index_takes_known_signatures_as_they_are_and_still_reads_the_status(copy, monkeypatch,
                                                                                       runs_per_query):
    uri, path, ids = copy
    monkeypatch.setattr(sql, "_RUNS_PER_QUERY", runs_per_query)
    known = {ids["r0"]: {"loss": [1, 2]}, ids["deleted"]: {"loss": [3, 4]}}
    client = MlflowClient(uri)
    client.set_terminated(ids["r1"], "KILLED")
    records = sql.history_index(_engine(uri), [ids["r0"], ids["deleted"], ids["r1"]], known)
    assert sorted((r.run_id, r.status, r.metric_signatures) for r in records) == sorted([
        (ids["r0"], "FINISHED", {"loss": [1, 2]}),
        (ids["r1"], "KILLED", {k: [len(client.get_metric_history(ids["r1"], k)), _newest_rowid(path, ids["r1"], k)]
                               for k in ("loss", "acc")}),
    ])
    assert sql.history_index(_engine(uri), [ids["r0"]], {ids["r0"]: {}})[0].metric_signatures == {}


def test_store_version_moves_with_every_point_and_run(copy, tmp_path):
    import sqlalchemy

    uri, path, ids = copy

    def by_hand() -> tuple[int, int, int]:
        with sqlite3.connect(path) as db:
            return (db.execute("SELECT MAX(rowid) FROM metrics").fetchone()[0],
                    db.execute("SELECT MAX(rowid) FROM runs").fetchone()[0],
                    db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    engine = _engine(uri)
    first = sql.store_version(engine)
    assert first == by_hand() and first[2] == len(_STATUS)
    MlflowClient(uri).log_metric(ids["r0"], "loss", 1.0, step=0)  # an earlier step, a finished run
    second = sql.store_version(engine)
    assert second == by_hand() and second[0] == first[0] + 1 and second[1:] == first[1:]
    empty = _engine(empty_mlflow_db(tmp_path / "empty.db"))
    assert sql.store_version(empty) == (0, 0, 0)
    sqlite3.connect(tmp_path / "not-mlflow.db").close()
    with pytest.raises(Exception, match="no such table"):  # a sqlite error is a real one, not "no version"
        sql.store_version(sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'not-mlflow.db'}"))
    mysql = types.SimpleNamespace(url=sqlalchemy.engine.make_url("mysql://u@127.0.0.1:1/db"))
    assert sql.store_version(mysql) is None  # no cheap answer there: asked nothing


def test_segments_are_where_the_steps_fall_and_only_where_that_tells_every_series():
    """Steps climb within a series; a fall begins the next one. Where there are fewer
    falls than series boundaries (a series beginning at or above the last one's end),
    or a series does not end at its largest step, the steps cannot tell: None."""
    ends = [("r0", "a", 9), ("r0", "b", 4), ("r1", "a", 2)]
    steps = [np.arange(10), np.arange(3), np.array([3, 4, 0, 1, 2])]  # the falls: inside a batch and between two
    assert sql._segments(steps, ends) == [("r0", "a", 10), ("r0", "b", 5), ("r1", "a", 3)]
    assert sql._segments([np.arange(10), np.array([], dtype=np.int64), np.arange(5), np.arange(3)], ends) == [
        ("r0", "a", 10), ("r0", "b", 5), ("r1", "a", 3)]
    assert sql._segments([np.array([5, 5, 5])], [("r0", "a", 5)]) == [("r0", "a", 3)]
    assert sql._segments([np.arange(10), np.arange(10, 15), np.arange(3)], ends) is None  # "b" begins at 10
    assert sql._segments([np.arange(10), np.arange(4), np.arange(3)], ends) is None  # "b" ends at 3, not 4
    assert sql._segments([np.arange(10), np.arange(5), np.arange(3), np.arange(2)], ends) is None  # a fourth series
    assert sql._segments([np.array([], dtype=np.int64)], [("r0", "a", 0)]) is None  # no point, one series
    assert sql._segments([], []) is None
    assert sql._segments([np.arange(4), np.array([3])], [("r0", "a", 3), ("r0", "b", 3)]) is None  # no fall at 3, 3


@pytest.mark.parametrize("n_categories", [2, 127, 128, 200, 32767, 40_000, 70_000])
def test_codes_hold_the_largest_category_of_any_count(n_categories):
    """Each series' code repeated per point, in a type that holds the largest code."""
    codes = sql._codes(np.array([0, n_categories - 1, n_categories // 2]), np.array([2, 1, 3]), n_categories)
    assert codes.tolist() == [0, 0, n_categories - 1] + [n_categories // 2] * 3


@pytest.mark.parametrize("run_ids", [["r1", "r2"], ["r2", "r1"]], ids=["database-order", "runs-swapped"])
def test_each_row_of_every_batch_goes_where_the_order_asked_puts_it(run_ids):
    """_Plan.dest against every row placed by hand, for every batch start and length,
    on series of one point and more in the database's order (r1 before r2, keys as sorted)."""
    series = [("r1", "b", 3), ("r1", "c", 1), ("r1", "d", 2), ("r2", "a", 1), ("r2", "b", 4)]
    plan = sql._Plan(series, run_ids)
    rank = {r: i for i, r in enumerate(run_ids)}
    # each database row as (series, position in it); the asked order sorts by run asked, key, position
    rows = [(i, j) for i, (_, _, n) in enumerate(series) for j in range(n)]
    asked = sorted(rows, key=lambda row: (rank[series[row[0]][0]], series[row[0]][1], row[1]))
    where = [asked.index(row) for row in rows]
    assert plan.total == len(rows) == 11
    for at in range(len(rows)):
        for n in range(1, len(rows) - at + 1):
            got = plan.dest(at, n)
            got = list(range(got.start, got.stop)) if isinstance(got, slice) else got.tolist()
            assert got == where[at : at + n], (at, n)


def test_signatures_of_points_are_count_and_largest_step_grouped_or_not():
    frame = pd.DataFrame({C.RUN_ID: ["x", "x", "y", "x", "y", "x"], C.METRIC: ["m", "m", "m", "n", "m", "m"],
                          C.STEP: [0, 7, 3, 2, 1, 5], C.VALUE: 0.0, C.TIMESTAMP: 0})
    assert sql.signatures_of(frame) == {"x": {"m": [3, 7], "n": [1, 2]}, "y": {"m": [2, 3]}}
    grouped = frame.sort_values([C.RUN_ID, C.METRIC, C.STEP]).astype({C.RUN_ID: "category", C.METRIC: "category"})
    assert sql.signatures_of(grouped) == sql.signatures_of(frame)
    assert sql.signatures_of(frame.iloc[:0]) == {}


# ------------------------------------------------------------------------ follow reads


def _after(uri: str, run_id: str, key: str, step, timestamp) -> pd.DataFrame:
    """MLflow's points of a series after (step, timestamp), by the rule read_points_from states."""
    frame = _expected(uri, [run_id], [key])
    if step is None:
        return frame
    later = frame[C.STEP] > step
    at = frame[C.STEP] == step
    return frame[later | (at & (True if timestamp is None else frame[C.TIMESTAMP] > timestamp))]


@pytest.mark.parametrize("series_per_query", [200, 1], ids=["one-query", "one-series-a-query"])
def test_read_points_from_returns_the_points_after_each_cursor(written, reader, monkeypatch, series_per_query):
    path, ids = written
    uri = f"sqlite:///{path}"
    monkeypatch.setattr(sql, "_SERIES_PER_QUERY", series_per_query)
    client = MlflowClient(uri)
    at_7 = [m.timestamp for m in client.get_metric_history(ids["r1"], "loss") if m.step == 7]
    series = [
        (ids["r0"], "loss", None, None), (ids["r0"], "acc", None, None),  # read whole: one read_points
        (ids["r2"], "acc", None, None),  # other metrics: another
        (ids["r1"], "loss", 7, at_7[1]),  # the third point at step 7 on
        (ids["r1"], "acc", 2, None),  # from step 2 on
        (ids["r0"], "B", 8, None), (ids["r0"], "a", 3, T0),  # a timestamp before every point at step 3
    ]
    got = sql.read_points_from(_engine(uri), series)
    want = pd.concat([_after(uri, *s) for s in series])
    assert len(want) == 120 + 30 + 20 + (1 + 3 * 12 + 1) + 3 + 2 + 7
    pdt.assert_frame_equal(_unordered(got), _unordered(want))
    assert [got[c].dtype for c in (C.STEP, C.VALUE, C.TIMESTAMP)] == ["int64", "float64", "int64"]
    only_ranged = sql.read_points_from(_engine(uri), series[3:])
    pdt.assert_frame_equal(_unordered(only_ranged), _unordered(pd.concat([_after(uri, *s) for s in series[3:]])))
    only_whole = sql.read_points_from(_engine(uri), series[:3])
    pdt.assert_frame_equal(_unordered(only_whole), _unordered(pd.concat([_after(uri, *s) for s in series[:3]])))


def test_a_poll_whose_ranged_series_have_nothing_new_returns_the_whole_ones(written, reader):
    """A new series read whole next to series with no point after their cursor (a poll's usual mix)."""
    path, ids = written
    uri = f"sqlite:///{path}"
    series = [(ids["r0"], "acc", None, None), (ids["r1"], "loss", BIG_STEP + 1, None), (ids["r1"], "acc", 4, T0 + 10**6)]
    got = sql.read_points_from(_engine(uri), series)
    pdt.assert_frame_equal(_unordered(got), _unordered(_expected(uri, [ids["r0"]], ["acc"])))
    assert len(got) == 30


def test_read_points_from_keeps_nan_and_infinities_and_nothing_asked_is_empty(written, reader):
    path, ids = written
    engine = _engine(f"sqlite:///{path}")
    got = sql.read_points_from(engine, [(ids["r0"], "loss", 5, None)]).set_index(C.STEP)[C.VALUE]
    assert math.isnan(got[5]) and got[7] == math.inf and got[9] == -math.inf and len(got) == 115
    for series in ([], [(ids["r4"], "loss", None, None)], [(ids["r0"], "loss", 1_000, None)]):
        empty = sql.read_points_from(engine, series)
        assert empty.empty and list(empty.columns) == C.HISTORY_COLUMNS


def test_points_after_sql_reads_from_the_step_by_default_and_refuses_other_comparisons():
    assert sql.points_after_sql("?", 2, sqlite=True) == sql.points_after_sql("?", 2, sqlite=True, op=">=")
    assert sql.points_after_sql("?", 1, sqlite=False).count("step >= ?") == 1
    with pytest.raises(ValueError, match="op='<'"):
        sql.points_after_sql("?", 1, sqlite=True, op="<")


def test_a_poll_reads_a_step_range_of_mlflows_run_key_step_index(written):
    path, ids = written
    with sqlite3.connect(path) as db:
        plan = db.execute("EXPLAIN QUERY PLAN " + sql.points_after_sql("?", 2, sqlite=True, op=">"),
                          [ids["r1"], "loss", 10, ids["r0"], "acc", 3]).fetchall()
    details = [row[-1] for row in plan]
    assert any("index_metrics_run_uuid_key_step (run_uuid=? AND key=? AND step>?)" in d for d in details), details
    assert not any(d.startswith("SCAN") for d in details), details


# ------------------------------------------------------------------------ small helpers


def test_restore_special_values_of_arrays_and_scalars():
    top = sys.float_info.max
    below = np.nextafter(top, 0)
    got = sql.restore_special_values([1.5, top, -top, below, -below, 0.0], [0, 0, 0, 0, 0, 1])
    assert got.dtype == "float64"
    np.testing.assert_array_equal(got, [1.5, math.inf, -math.inf, below, -below, math.nan])
    np.testing.assert_array_equal(sql.restore_special_values(np.array([top, 2.0])), [math.inf, 2.0])
    for value, want in ((top, math.inf), (-top, -math.inf), (3, 3.0)):
        scalar = sql.restore_special_values(value)
        assert type(scalar) is float and scalar == want
    assert math.isnan(sql.restore_special_values(0.0, True))
    assert sql.restore_special_values(0.0, False) == 0.0


def test_bind_marks_of_each_placeholder_style():
    assert sql._marks("?", 4, 3) == "?,?,?"
    assert sql._marks("%s", 0, 2) == "%s,%s"
    assert sql._marks("$", 2, 3) == "$3,$4,$5"  # PostgreSQL's numbered binds, after the first two
    assert sql._marks("$", 0, 1) == "$1"


def test_the_literal_where_clause_matches_only_the_names_given(written):
    """What sqlite's standard strings read from it (PostgreSQL's with standard_conforming_strings)."""
    path, ids = written
    with sqlite3.connect(path) as db:
        def count(where: str) -> int:
            return db.execute(f"SELECT COUNT(*) FROM metrics WHERE {where}").fetchone()[0]

        assert count(sql._where_literal([ids["r0"], "x' OR '1'='1"], ["loss", "it's", "a\\' OR 1=1 --"])) == 120
        assert count(sql._where_literal([ids["r0"], ids["r2"]], [])) == 120 + 30 + 10 + 10 + 20
        assert count(sql._where_literal([ids["r1"]], ["acc", "B"])) == 5
    names = ["it's", "a\\' OR 1=1 --", "''", "plain"]
    with sqlite3.connect(":memory:") as db:  # a name with quotes is matched as it is
        db.execute("CREATE TABLE metrics (run_uuid TEXT, key TEXT)")
        db.executemany("INSERT INTO metrics VALUES (?, ?)", [("r'1", n) for n in names] + [("r2", "it's")])
        for name in names:
            where = sql._where_literal(["r'1"], [name])
            assert db.execute(f"SELECT key FROM metrics WHERE {where}").fetchall() == [(name,)]


# ------------------------------------------------------------------------ PostgreSQL's order

#: Metric names whose order differs between bytes and a linguistic collation.
_PG_KEYS = ["train/loss", "train_loss", "Train", "a", "B", "x y:z"]


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    """A function from a database name to its URI on a running PostgreSQL server."""
    import glob
    import os

    from tests.requirements import SHARED_POSTGRES, require
    from trackbook.servers import postgres_server

    shared = os.environ.get(SHARED_POSTGRES)
    if shared:
        base = shared.rsplit("/", 1)[0]
        yield lambda database: f"{base}/{database}"
        return
    require(bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres)", "apt-get install postgresql")
    with postgres_server(tmp_path_factory.mktemp("sql-pg"), databases=()) as pg:
        yield pg.uri


def _create_icu_database(admin, name: str) -> None:
    """A database sorting text by ICU's en-US rules (or the server's default collation, on a
    server built without ICU): "a" before "B", where bytes put every capital first."""
    import psycopg

    try:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                      "LOCALE 'C.UTF-8'")
    except psycopg.Error:
        admin.execute(f"CREATE DATABASE {name}")


@pytest.fixture(scope="module")
def postgres(pg_server):
    """A scratch ICU database of this process's own (forks of a mutation run share the server)."""
    import os

    import psycopg

    name = f"scratch_{os.getpid()}"
    with psycopg.connect(pg_server("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        _create_icu_database(admin, name)
    yield pg_server(name)
    with psycopg.connect(pg_server("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def pg_written(pg_server) -> tuple[str, dict[str, str]]:
    """The runs of ``written``, logged by MLflow's client into an MLflow store on PostgreSQL
    (an ICU database, whose order of metric names is not Python's): (uri, name -> id).
    Written once per server and read only, under a lock for concurrent forks."""
    import psycopg

    uri = pg_server("mlflow_sql").replace("postgresql://", "postgresql+psycopg://")
    with psycopg.connect(pg_server("postgres"), autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(7341)")
        try:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = 'mlflow_sql'").fetchone() is None:
                _create_icu_database(admin, "mlflow_sql")
                ids = _write(uri)
            else:
                with psycopg.connect(pg_server("mlflow_sql")) as db:
                    ids = dict(db.execute("SELECT name, run_uuid FROM runs").fetchall())
            _READ_ONLY.add(uri)
            return uri, ids
        finally:
            admin.execute("SELECT pg_advisory_unlock(7341)")


def _pg_cursor(uri: str, driver: str):
    """A connection and its cursor, and the bind placeholder the reader uses with it."""
    if driver == "adbc":
        import adbc_driver_postgresql.dbapi as adbc

        conn = adbc.connect(uri)
        return conn, conn.cursor(), "$"
    import psycopg

    conn = psycopg.connect(uri, autocommit=True)
    return conn, conn.cursor(), "%s"


@pytest.mark.parametrize("driver", ["adbc", "psycopg"])
def test_series_are_put_in_postgresqls_own_order_of_run_ids_and_metric_names(postgres, driver):
    """The order ``ORDER BY run_uuid, key`` gives the points, here from a GROUP BY over a
    table of MLflow's column types holding these series."""
    import psycopg

    runs = ["9f" + "0" * 30, "0a" + "f" * 30, "a0" + "1" * 30]
    series = [(r, k, 10 * i + j) for i, r in enumerate(runs) for j, k in enumerate(_PG_KEYS) if (i + j) % 4]
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("CREATE TEMP TABLE points (run_uuid VARCHAR(32) NOT NULL, key VARCHAR(250) NOT NULL)")
        with db.cursor() as cur:
            cur.executemany("INSERT INTO points VALUES (%s, %s)", [s[:2] for s in series])
        order = db.execute("SELECT run_uuid, key FROM points GROUP BY run_uuid, key ORDER BY run_uuid, key").fetchall()
        icu = db.execute("SELECT datlocprovider FROM pg_database WHERE datname = current_database()").fetchone()[0]
    conn, cur, ph = _pg_cursor(postgres, driver)
    try:
        got = sql._in_db_order(cur, ph, series[::-1])
        assert sql._in_db_order(cur, ph, []) == []
    finally:
        cur.close()
        conn.close()
    assert [s[:2] for s in got] == [tuple(row) for row in order]
    assert sorted(got) == sorted(series)  # each with its own count
    if icu == "i":  # by hand: ICU sorts letters before case, bytes put every capital first
        keys = [k for r, k, _ in got if r == runs[2]]
        assert keys.index("a") < keys.index("B")


def test_pg_settings_tell_the_collation_of_mlflows_columns_and_how_literals_read(postgres):
    """On a ``metrics`` table of MLflow's column types (the catalog query reads only its columns' collation)."""
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS metrics")
        db.execute("CREATE TABLE metrics (key VARCHAR(250) NOT NULL, run_uuid VARCHAR(32) NOT NULL, step BIGINT)")
        try:
            with db.cursor() as cur:
                assert sql._pg_settings(cur) == (True, True)
                cur.execute("SET standard_conforming_strings = off")
                assert sql._pg_settings(cur) == (True, False)
                cur.execute("SET standard_conforming_strings = on")
                db.execute('ALTER TABLE metrics ALTER COLUMN key TYPE VARCHAR(250) COLLATE "C"')
                assert sql._pg_settings(cur) == (False, True)
                db.execute('ALTER TABLE metrics ALTER COLUMN key TYPE VARCHAR(250) COLLATE "default", '
                           'ALTER COLUMN run_uuid TYPE VARCHAR(32) COLLATE "C"')
                assert sql._pg_settings(cur) == (False, True)
        finally:
            db.execute("DROP TABLE metrics")


def test_each_driver_is_asked_with_its_own_bind_placeholder(written, postgres):
    """sqlite3 binds ``?``, psycopg ``%s``, ADBC's PostgreSQL driver ``$1``: each read with them."""
    import sqlalchemy

    path, _ = written
    pg = sqlalchemy.create_engine(postgres.replace("postgresql://", "postgresql+psycopg://"))
    for engine, want in ((_engine(f"sqlite:///{path}"), "?"), (pg, "%s")):
        conn, placeholder = sql._connect(engine)
        try:
            assert placeholder == want
            cur = conn.cursor()
            cur.execute(f"SELECT {placeholder}", ["one"])
            assert cur.fetchall()[0][0] == "one"
        finally:
            conn.close()
    conn, placeholder = sql._adbc_connect(pg)
    try:
        assert placeholder == "$" and conn.adbc_get_info()["vendor_name"] == "PostgreSQL"
        cur = conn.cursor()
        cur.execute("SELECT $1 || $2", ["o", "ne"])
        assert cur.fetchall()[0][0] == "one"
        cur.close()
    finally:
        conn.close()


def test_the_adbc_postgresql_session_runs_without_jit_or_sorts_and_keeps_the_urls_own_options(postgres):
    """JIT compiles each points query for half a second and speeds none of them up, and a
    sort only ever stands in for the walk of MLflow's index; a URL's own ``options`` (a
    space inside, percent-encoded, in either of libpq's spellings) still reach the server,
    and a setting it names is left as it says."""
    import sqlalchemy

    settings = ("jit", "enable_sort", "enable_incremental_sort", "work_mem", "statement_timeout", "jit_above_cost")
    default = ("off", "off", "off", "4MB", "0", "100000")
    urls = {
        postgres: default,
        f"{postgres}?options=-c%20work_mem%3D123MB": ("off", "off", "off", "123MB", "0", "100000"),
        f"{postgres}?options=-c%20jit%3Don": ("on", "off", "off", "4MB", "0", "100000"),
        # a setting whose name holds another's does not stand for it
        f"{postgres}?options=-cjit_above_cost%3D5%20--enable-sort%3Don": ("off", "on", "off", "4MB", "0", "5"),
        f"{postgres}?options=-c%20enable_incremental_sort%3Don": ("off", "off", "on", "4MB", "0", "100000"),
        # other parameters before it; options given twice (SQLAlchemy reads a tuple)
        f"{postgres}?application_name=tb&options=-c%20work_mem%3D99MB": ("off", "off", "off", "99MB", "0", "100000"),
        f"{postgres}?options=-c%20work_mem%3D77MB&options=-c%20statement_timeout%3D5s":
            ("off", "off", "off", "77MB", "5s", "100000"),
    }
    query = "SELECT " + ", ".join(f"current_setting('{name}')" for name in settings)
    for url, want in urls.items():
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        conn, _ = sql._adbc_connect(engine)
        try:
            cur = conn.cursor()
            cur.execute(query)
            assert cur.fetchall()[0] == want, url
            cur.close()
        finally:
            conn.close()


def test_the_adbc_postgresql_uri_keeps_the_password():
    """A server that asks for a password gets the URL's own (percent-encoded as given):
    hidden as SQLAlchemy prints it, the ADBC connection would be refused and every read
    would go through the slower DBAPI driver."""
    from sqlalchemy.engine import make_url

    uri = sql._libpq_uri(make_url("postgresql+psycopg://reader:p%40ss@127.0.0.1:5432/mlflow"))
    assert uri.startswith("postgresql://reader:p%40ss@127.0.0.1:5432/mlflow?options="), uri


def test_postgresql_points_queries_walk_mlflows_index_without_sorting(pg_written, monkeypatch):
    """Every query the reader sends for the points of every run is planned, in its own
    session, as a walk of the ``(run_uuid, key, step)`` index with no sort; in a session
    with PostgreSQL's defaults the same queries over this small table sort (as over
    20,000,000 points, where the sort costs 1.6x the read)."""
    import psycopg

    uri, ids = pg_written
    engine = _engine(uri)
    sent: list[str] = []
    connect = sql._adbc_connect

    class Recorded:
        def __init__(self, cur):
            self._cur = cur

        def execute(self, query, *args, **kwargs):
            sent.append(query)
            return self._cur.execute(query, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._cur, name)

    def recording(engine):
        conn, ph = connect(engine)
        cursor = conn.cursor
        monkeypatch.setattr(conn, "cursor", lambda: Recorded(cursor()), raising=False)
        return conn, ph

    monkeypatch.setattr(sql, "_adbc_connect", recording)
    counts = {r.run_id: {k: s[0] for k, s in r.metric_signatures.items()}
              for r in sql.history_index(engine, sorted(ids.values()))}
    keys = sorted({k for n in counts.values() for k in n})
    got = sql.read_points(engine, list(counts), keys, counts)
    assert len(got) == sum(sum(n.values()) for n in counts.values())
    points = [q for q in sent if q.startswith("SELECT step")]
    assert points and all("$" not in q for q in points)  # the values in the text, so EXPLAIN can plan it alone

    def plans(dsn: str) -> list[str]:
        with psycopg.connect(dsn) as db:
            return ["\n".join(row[0] for row in db.execute(f"EXPLAIN {q}")) for q in points]

    for plan in plans(sql._libpq_uri(engine.url)):
        assert "Sort" not in plan and "Index Scan using index_metrics_run_uuid_key_step" in plan, plan
    assert all("Sort" in plan for plan in plans(engine.url.set(drivername="postgresql").render_as_string(False)))


# ------------------------------------------------------------------------ PostgreSQL end to end


@pytest.mark.parametrize(("runs_per_query", "fetch_rows", "metrics", "counted"), [
    (500, None, ALL + ["never-logged"], False),  # counted by the database, in its own order
    (2, 7, ALL, True),  # the index's counts, every metric (no key filter), two runs a query, 7 rows a fetch
    (1, None, ["loss", "a"], True),  # the index's counts, some metrics, a query a run
], ids=["counted-by-the-database", "index-counts-every-metric", "index-counts-some-a-query-a-run"])
@pytest.mark.parametrize("strings", ["standard", "escaped"])
def test_postgresql_reads_equal_mlflows_own_history(pg_written, reader, monkeypatch, runs_per_query, fetch_rows,
                                                    metrics, counted, strings):
    """The whole read on an MLflow store on PostgreSQL, both drivers: the points, in the order
    asked (run as given, metric name by code point, step) though the database sorts "a" before
    "B". Points at one step come in any order (PostgreSQL's index holds no timestamp);
    history() puts them in time order, as MLflow's client returns them. A session where
    backslashes escape in literals (``standard_conforming_strings=off``) is sent its run ids
    and names as numbered bind parameters ($1, $2, ...), never written into the query."""
    uri, ids = pg_written
    if strings == "escaped":
        uri += "?options=-c%20standard_conforming_strings%3Doff"
    monkeypatch.setattr(sql, "_RUNS_PER_QUERY", runs_per_query)
    if fetch_rows:
        monkeypatch.setattr(sql, "_FETCH_ROWS", fetch_rows)
    engine = _engine(uri)
    asked = [ids["r1"], ids["r4"], ids["r0"], ids["r2"]]
    counts = ({r.run_id: {k: s[0] for k, s in r.metric_signatures.items()} for r in sql.history_index(engine, asked)}
              if counted else None)
    # told the counts, the reader counts nothing; told neither counts nor ends, it counts
    # first and places the points as they come (no copies held to find where series end)
    with monkeypatch.context() as told:
        told.setattr(sql, "_segments", lambda *a: pytest.fail("steps searched for series ends never told"))
        if counted:
            told.setattr(sql, "_series_counts", lambda *a: pytest.fail("series counted though told"))
        got = sql.read_points(engine, asked, metrics, counts)
    want = _expected(uri, asked, metrics)
    assert len(want) == sum(len(_points(n).get(k, [])) for n in ("r0", "r1", "r2") for k in metrics)
    pdt.assert_frame_equal(_unordered(got), _unordered(want))
    keys = list(zip(got[C.RUN_ID].map(asked.index), got[C.METRIC].astype(str).str.encode("utf-8"), got[C.STEP]))
    assert keys == sorted(keys)
    if runs_per_query == 500:
        assert list(got[C.METRIC].cat.categories) == sorted(set(want[C.METRIC]))
    history = tb.connect(uri).history(asked, None if counted and metrics == ALL else metrics, cache=False)
    pdt.assert_frame_equal(_plain(history.assign(**{C.TIMESTAMP: history[C.TIMESTAMP].astype("int64") // 1_000_000})),
                           want)


def test_postgresql_history_index_signatures_are_count_and_largest_step(pg_written):
    uri, ids = pg_written
    client = MlflowClient(uri)
    asked = [ids[n] for n in ("r4", "deleted", "r2", "r0", "r1", "wide")]
    records = {r.run_id: r for r in sql.history_index(_engine(uri), asked)}
    assert sorted(records) == sorted(ids[n] for n in ("r4", "r2", "r0", "r1", "wide"))
    for name in ("r4", "r2", "r0", "r1", "wide"):
        history = {k: client.get_metric_history(ids[name], k) for k in _points(name)}
        assert records[ids[name]].status == _STATUS[name]
        assert records[ids[name]].metric_signatures == {
            k: [len(ms), max(m.step for m in ms)] for k, ms in history.items()}
    assert records[ids["r1"]].metric_signatures["loss"] == [62, BIG_STEP]


def test_postgresql_store_version_moves_with_every_commit_and_only_then(postgres):
    """A commit moves the version, also that of a transaction begun (its id taken) before
    the version was read; a checkpoint, a vacuum, a read and the write-ahead log's idle
    bookkeeping, which all move the log's position, do not."""
    import psycopg
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres.replace("postgresql://", "postgresql+psycopg://"))
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS version_probe (x int)")
    first = sql.store_version(engine)
    assert first is not None and first == sql.store_version(engine)  # nothing written between
    with psycopg.connect(postgres, autocommit=True) as db:
        lsn = db.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        db.execute("CHECKPOINT")
        db.execute("VACUUM version_probe")
        db.execute("SELECT count(*) FROM version_probe")
        assert db.execute("SELECT pg_current_wal_insert_lsn()").fetchone() != lsn
    assert sql.store_version(engine) == first
    with psycopg.connect(postgres) as writer:
        writer.execute("INSERT INTO version_probe VALUES (1)")  # its transaction takes an id
        during = sql.store_version(engine)  # its row unseen yet, by the version as by any read
        writer.commit()
    after = sql.store_version(engine)
    assert after not in (None, during)
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("INSERT INTO version_probe VALUES (2)")
    assert sql.store_version(engine) not in (None, first, during, after)


def test_postgresql_store_version_is_none_where_the_snapshot_is_refused(postgres):
    """A server that refuses the snapshot function (one before PostgreSQL 13; here a role
    denied it in this database) has no store version: None, and the connection is left
    fit for the next query."""
    import psycopg
    import sqlalchemy

    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'no_snapshot') THEN "
                   "CREATE ROLE no_snapshot LOGIN; END IF; END $$")
        db.execute("REVOKE EXECUTE ON FUNCTION pg_current_snapshot() FROM PUBLIC")
    try:
        url = sqlalchemy.engine.make_url(postgres.replace("postgresql://", "postgresql+psycopg://")).set(
            username="no_snapshot")
        engine = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0)
        assert sql.store_version(engine) is None
        with engine.connect() as conn:  # the pool's one connection, rolled back: usable
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        engine.dispose()
    finally:
        with psycopg.connect(postgres, autocommit=True) as db:
            db.execute("GRANT EXECUTE ON FUNCTION pg_current_snapshot() TO PUBLIC")


def test_postgresql_history_index_lists_unread_runs_by_mlflows_latest_metrics(pg_written):
    """Runs left ``unread`` are not scanned: each metric MLflow lists for them carries
    [UNREAD, its largest step]; the others' signatures are counted as before."""
    uri, ids = pg_written
    client = MlflowClient(uri)
    asked = [ids[n] for n in ("r4", "r2", "r0", "r1")]
    records = {r.run_id: r for r in sql.history_index(_engine(uri), asked, unread={ids["r0"], ids["r1"], ids["r4"]})}
    for name in ("r0", "r1"):
        history = {k: client.get_metric_history(ids[name], k) for k in _points(name)}
        assert records[ids[name]].metric_signatures == {
            k: [sql.UNREAD, max(m.step for m in ms)] for k, ms in history.items()}
        assert records[ids[name]].status == _STATUS[name]
    assert records[ids["r4"]].metric_signatures == {}
    assert records[ids["r2"]].metric_signatures == {"acc": [20, 19]}


@pytest.mark.parametrize("segments", ["told", "untold"])
def test_postgresql_cold_history_counts_nothing_and_caches_what_it_read(pg_written, reader, monkeypatch, tmp_path,
                                                                        segments):
    """A cold history() on PostgreSQL scans for no signature and counts no series where
    the steps tell where each one ends (else it counts them after the read); it equals
    MLflow's points, the cache keeps each series' [count, largest step] as the index
    reports it, and a new store object then reads the finished runs from the cache."""
    from trackbook.store.mlflow import MLflowStore

    uri, ids = pg_written
    engine = _engine(uri)
    asked = [ids[n] for n in ("r1", "r4", "r0", "r2", "wide")]
    counted = []
    if segments == "told":
        monkeypatch.setattr(sql, "_series_counts", lambda *a: pytest.fail("a series count on a cold read"))
    else:
        monkeypatch.setattr(sql, "_segments", lambda steps, ends: None)
        real = sql._series_counts
        monkeypatch.setattr(sql, "_series_counts", lambda *a: counted.append(1) or real(*a))
    scans = []
    real_index = sql.history_index
    monkeypatch.setattr(sql, "history_index",
                        lambda engine, run_ids, known=None, unread=frozenset(): scans.append(
                            [r for r in run_ids if r not in (known or {}) and r not in unread])
                        or real_index(engine, run_ids, known, unread))
    store = MLflowStore(uri, cache_dir=tmp_path)
    got = store.history(asked)
    assert scans == [[]] and (counted == [] if segments == "told" else len(counted) == 1)
    names = sorted({k for n in ("r1", "r0", "r2", "wide") for k in _points(n)})
    want = _expected(uri, asked, names)
    pdt.assert_frame_equal(_plain(got.assign(**{C.TIMESTAMP: got[C.TIMESTAMP].astype("int64") // 1_000_000})), want)
    manifest = json.loads((store.cache.folder / "manifest.json").read_text())["runs"]
    index = {r.run_id: r.metric_signatures for r in real_index(engine, asked)}
    finished = [ids[n] for n in ("r4", "r0", "r2", "wide")]
    assert sorted(manifest) == sorted(finished)  # r1 is RUNNING
    for run_id in finished:
        assert {k: sig for k, (_, sig) in manifest[run_id]["metrics"].items()} == index[run_id]
    monkeypatch.setattr(sql, "read_points", lambda *a, **k: pytest.fail("a cached run read again"))
    again = MLflowStore(uri, cache_dir=tmp_path).history(finished)
    pdt.assert_frame_equal(again, got[got[C.RUN_ID] != ids["r1"]].reset_index(drop=True).pipe(
        lambda f: f.assign(**{C.RUN_ID: pd.Categorical(f[C.RUN_ID].astype(str), categories=finished)})),
        check_categorical=False)


def test_postgresql_follow_reads_return_the_points_after_each_cursor(pg_written, reader):
    uri, ids = pg_written
    at_7 = [m.timestamp for m in MlflowClient(uri).get_metric_history(ids["r1"], "loss") if m.step == 7]
    series = [(ids["r0"], "B", None, None), (ids["r0"], "a", None, None), (ids["r1"], "loss", 7, at_7[1]),
              (ids["r1"], "acc", 2, None), (ids["r0"], "a", 3, T0)]
    got = sql.read_points_from(_engine(uri), series)
    want = pd.concat([_after(uri, *s) for s in series])
    assert len(want) == 10 + 10 + (1 + 3 * 12 + 1) + 3 + 7
    pdt.assert_frame_equal(_unordered(got), _unordered(want))


def test_postgresql_driver_errors_are_read_again_through_psycopg_and_other_errors_go_up(pg_written, monkeypatch,
                                                                                      caplog):
    """An error of ADBC's driver (here a query it alone is sent: the one with its values
    written in) is logged and read again by psycopg; any other error is a real one."""
    uri, ids = pg_written
    engine = _engine(uri)
    monkeypatch.setattr(sql, "_where_literal", lambda run_ids, keys: "no_such_column = 1")
    with caplog.at_level("DEBUG", logger=sql.__name__):
        got = sql.read_points(engine, [ids["r0"]], ["loss", "a"])
    pdt.assert_frame_equal(_unordered(got), _unordered(_expected(uri, [ids["r0"]], ["loss", "a"])))
    said = [r.getMessage() for r in caplog.records if r.msg == _FALLBACK]
    assert len(said) == 1 and "no_such_column" in said[0], caplog.text

    def null_steps(cur):
        raise ValueError("NULL step in MLflow's metrics table")
        yield

    monkeypatch.undo()
    monkeypatch.setattr(sql, "_arrow_batches", null_steps)
    with pytest.raises(ValueError, match="NULL step"):
        sql.read_points(engine, [ids["r0"]], ["loss"])
