"""``store.follow()``: polls return exactly the points logged since the previous poll.

Real stores only: sqlite and PostgreSQL written by MLflow's own client, ``mlflow server
--app-name trackbook`` (trackbook's points-from endpoint), a stock ``mlflow server``
(MLflow's bulk-interval endpoint), trackbook's auth app, and Aim written by aim's SDK.
After every step of a training-like script the concatenated polls must equal
``store.history(cache=False)`` and MLflow's own ``get_metric_history``.
"""

from __future__ import annotations

import glob
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

import trackbook as tb
from tests.requirements import require
from trackbook import columns as C
from trackbook.servers import MlflowAuth, MlflowServer, mlflow_server, postgres_server
from trackbook.store import _mlflow_sql
from trackbook.store._mlflow_app import FROM_ROUTE

T0 = 1_700_000_000_000


def _points(frame: pd.DataFrame) -> pd.DataFrame:
    """Points as plain sorted rows, for comparing polls with history()."""
    out = frame.astype({C.RUN_ID: str, C.METRIC: str}).sort_values(
        [C.RUN_ID, C.METRIC, C.STEP, C.TIMESTAMP, C.VALUE], ignore_index=True)
    return out[C.HISTORY_COLUMNS]


class _Seen:
    """Every update.points so far, with ``reread`` series replaced, as a panel holds them."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, update) -> None:
        assert list(update.points.columns) == C.HISTORY_COLUMNS
        for run_id, metric in update.reread:
            self.parts = [p[~((p[C.RUN_ID].astype(str) == run_id) & (p[C.METRIC].astype(str) == metric))]
                          for p in self.parts]
        self.parts.append(update.points)

    def frame(self) -> pd.DataFrame:
        return _points(pd.concat([_points(p) for p in self.parts], ignore_index=True))


def _check(store, seen: _Seen, follower, client=None) -> None:
    got = seen.frame()
    assert not got.duplicated().any()
    want = _points(store.history(follower.run_ids, cache=False))
    pd.testing.assert_frame_equal(got, want)
    if client is not None:  # MLflow's own answer for one series of each run
        for run_id in follower.run_ids:
            mine = got[(got[C.RUN_ID] == run_id) & (got[C.METRIC] == "loss")]
            theirs = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, "loss"))
            stamps = (mine[C.TIMESTAMP].astype("int64") // 1_000_000).tolist()
            assert sorted(zip(mine[C.STEP], stamps, mine[C.VALUE], strict=True)) == theirs


def _dtypes_match_history(update, store, follower) -> None:
    hist = store.history(follower.run_ids, cache=False)
    assert update.points[[C.STEP, C.VALUE, C.TIMESTAMP]].dtypes.equals(hist[[C.STEP, C.VALUE, C.TIMESTAMP]].dtypes)
    for col in (C.RUN_ID, C.METRIC):
        assert isinstance(update.points[col].dtype, pd.CategoricalDtype)
    assert list(update.points[C.RUN_ID].cat.categories) == follower.run_ids
    # sorted as history() sorts: by run (in the order followed), metric, step, timestamp
    order = update.points.sort_values([C.RUN_ID, C.METRIC, C.STEP, C.TIMESTAMP], kind="stable")
    assert order.index.tolist() == list(range(len(update.points)))


def _log(client, run_id: str, key: str, steps, *, t: int, value=None) -> None:
    from mlflow.entities import Metric

    client.log_batch(run_id, metrics=[Metric(key, float(s) * 0.5 if value is None else value, t + i, s)
                                      for i, s in enumerate(steps)])


def _mlflow_scenario(write_uri: str, read_uri: str, experiment: str) -> None:
    """A training's life in steps, polled after each; the writer is MLflow's own client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=write_uri)
    exp = client.create_experiment(experiment)
    a = client.create_run(exp, run_name="a").info.run_id
    _log(client, a, "loss", range(5), t=T0)
    store = tb.connect(read_uri)
    follower = store.follow(experiment)
    seen = _Seen()

    first = follower.poll()
    seen.add(first)
    assert (first.new_runs, first.changed, len(first.points)) == ([a], [], 5)
    assert first.runs[C.STATUS].tolist() == [C.RUNNING]
    _check(store, seen, follower, client)

    # more points, three at one step with different timestamps, a new metric, a new run
    _log(client, a, "loss", range(5, 10), t=T0 + 100)
    _log(client, a, "loss", [9, 9], t=T0 + 200, value=7.0)
    _log(client, a, "acc", range(3), t=T0 + 300)
    _log(client, a, "lr", [0, 0, 0], t=T0 + 300)  # log_metric without a step: always step 0
    b = client.create_run(exp, run_name="b").info.run_id
    _log(client, b, "loss", range(4), t=T0 + 400)
    update = follower.poll()
    seen.add(update)
    assert (update.new_runs, update.changed) == ([b], [])
    assert len(update.points) == 5 + 2 + 3 + 3 + 4
    assert follower.run_ids == [a, b]
    _check(store, seen, follower, client)

    nothing = follower.poll()
    assert (len(nothing.points), nothing.new_runs, nothing.changed) == (0, [], [])
    assert list(nothing.points.columns) == C.HISTORY_COLUMNS

    # a burst bigger than one page of every server endpoint, then a run ends
    _log(client, b, "loss", range(4, 6_004), t=T0 + 1_000)
    _log(client, b, "loss", [6_003], t=T0 + 9_000, value=-1.0)  # same step, later timestamp
    _log(client, a, "loss", [10], t=T0 + 9_000)
    _log(client, a, "lr", [0, 0], t=T0 + 9_000)
    client.set_terminated(a)
    update = follower.poll()
    seen.add(update)
    assert update.new_runs == [] and update.changed == [a]
    assert len(update.points) == 6_000 + 1 + 1 + 2
    assert dict(zip(update.runs[C.RUN_ID], update.runs[C.STATUS], strict=True)) == {a: C.FINISHED, b: C.RUNNING}
    _check(store, seen, follower, client)
    _dtypes_match_history(update, store, follower)

    # a follower of a fixed set and one metric sees only those
    only = store.follow(runs=[b], metrics="loss").poll()
    assert only.new_runs == [b] and set(only.points[C.METRIC]) == {"loss"} and len(only.points) == 6_005


# ----------------------------------------------------------------------------- sqlite


@pytest.mark.parametrize("by_time", [False, True], ids=["step-index", "primary-key-by-time"])
def test_sqlite_polls_add_up_to_the_history(tmp_path: Path, monkeypatch, by_time: bool):
    from trackbook.store import mlflow as mlflow_backend

    if by_time:  # every cursor's own step read by time, as for a series logged at one step throughout
        monkeypatch.setattr(mlflow_backend, "_AT_STEP", 0)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _mlflow_scenario(uri, uri, "follow-sqlite")


def test_sqlite_poll_reads_a_step_range_of_mlflows_run_key_step_index(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("plan")).info.run_id
    _log(client, run, "loss", range(100), t=T0)
    store = tb.connect(uri)
    conn, ph = _mlflow_sql._connect(store._engine)
    try:
        plan = conn.cursor().execute("EXPLAIN QUERY PLAN " + _mlflow_sql.points_after_sql(ph, 3, sqlite=True, op=">"),
                                     [run, "loss", 50] * 3).fetchall()
        at_step = conn.cursor().execute("EXPLAIN QUERY PLAN " + _mlflow_sql.points_at_step_after_sql(ph, 3),
                                        ["loss", T0 + 50, 50, run] * 3).fetchall()
    finally:
        conn.close()
    details = [row[-1] for row in plan]
    assert any("index_metrics_run_uuid_key_step (run_uuid=? AND key=? AND step>?)" in d for d in details), details
    assert not any(d.startswith("SCAN") for d in details), details
    # the cursor's own step by time, through MLflow's primary key (key, timestamp, ...)
    details = [row[-1] for row in at_step]
    assert any(d.startswith("SEARCH") for d in details), details
    assert all("(key=? AND timestamp>?)" in d for d in details if d.startswith("SEARCH")), details
    assert not any(d.startswith("SCAN") for d in details), details


def test_a_point_logged_before_the_cursor_is_missed_by_polls_but_in_history(tmp_path: Path):
    """What the Follower docstring says an MLflow follower misses, and history() has."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("late")).info.run_id
    _log(client, run, "loss", range(10), t=T0)
    follower = tb.connect(uri).follow("late")
    assert len(follower.poll().points) == 10
    _log(client, run, "loss", [3], t=T0 + 50, value=99.0)  # back-filled at an earlier step
    _log(client, run, "loss", [10], t=T0 + 60)
    update = follower.poll()
    assert update.points[C.STEP].tolist() == [10] and update.reread == []
    assert len(tb.connect(uri).history(run, cache=False)) == 12


def test_follow_refuses_both_an_experiment_and_runs_and_unknown_names(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("x")).info.run_id
    store = tb.connect(uri)
    with pytest.raises(ValueError, match="both experiment= and runs="):
        store.follow("x", runs=[run])
    with pytest.raises(tb.errors.ExperimentNotFound):
        store.follow("nope")
    with pytest.raises(tb.errors.RunNotFound):
        store.follow(runs=["0" * 32])


# ------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    require(bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres)", "apt-get install postgresql")
    with postgres_server(tmp_path_factory.mktemp("follow-pg")) as server:
        yield server


def test_postgresql_polls_add_up_to_the_history(postgres):
    uri = postgres.create_database("follow")
    _mlflow_scenario(uri, uri, "follow-postgresql")


def test_postgresql_poll_reads_through_the_run_key_step_index(postgres):
    import psycopg

    uri = postgres.create_database("follow_plan")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("plan")
    runs = [client.create_run(exp).info.run_id for _ in range(4)]
    for run in runs:
        _log(client, run, "loss", range(5_000), t=T0)
    with psycopg.connect(host=postgres.host, port=postgres.port, user=postgres.user, dbname="follow_plan") as conn:
        conn.execute("ANALYZE metrics")
        sql = _mlflow_sql.points_after_sql("%s", 2, sqlite=False)
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, [runs[0], "loss", 4_990, runs[1], "loss", 4_990]))
    assert "index_metrics_run_uuid_key_step" in plan, plan
    assert "Seq Scan" not in plan, plan


# ---------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """``mlflow server --app-name trackbook`` and a stock ``mlflow server``, each on its own sqlite file."""
    work = tmp_path_factory.mktemp("follow-servers")
    with mlflow_server(f"sqlite:///{work / 'trackbook.db'}", work / "t", app="trackbook") as ours, \
            mlflow_server(f"sqlite:///{work / 'stock.db'}", work / "s", app=None) as stock:
        yield {"trackbook": ours, "stock": stock}


def test_trackbook_server_polls_add_up_to_the_history(servers, monkeypatch):
    from trackbook.store import _mlflow_rest

    asked = []
    original = _mlflow_rest._from_request
    monkeypatch.setattr(_mlflow_rest, "_from_request", lambda *a: asked.append(1) or original(*a))
    _mlflow_scenario(servers["trackbook"], servers["trackbook"], "follow-trackbook-server")
    assert asked and servers["trackbook"] not in _mlflow_rest._no_from


def test_stock_server_polls_add_up_to_the_history(servers, monkeypatch):
    from trackbook.store import _mlflow_rest

    intervals = []
    original = _mlflow_rest._interval
    monkeypatch.setattr(_mlflow_rest, "_interval", lambda *a: intervals.append(a[1:]) or original(*a))
    _mlflow_scenario(servers["stock"], servers["stock"], "follow-stock-server")
    assert servers["stock"] in _mlflow_rest._no_from
    assert len(intervals) > 4  # the 6,000-point burst came in several ranges, none sampled


def test_auth_app_gates_the_points_from_route_with_read_permission(tmp_path: Path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from trackbook.store import _mlflow_rest
    from trackbook.tracking.team import grant

    auth = MlflowAuth(tmp_path / "auth")
    admin = ("admin", auth.admin_password)
    server = MlflowServer(f"sqlite:///{tmp_path / 'auth-store.db'}", tmp_path / "w", auth=auth)
    url = server.start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", admin[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin[1])
        client = MlflowClient(tracking_uri=url)
        exp = client.create_experiment("guarded")
        run = client.create_run(exp).info.run_id
        _log(client, run, "loss", range(20), t=T0)
        alice = ("alice", "alice-Secret-4711")
        assert requests.post(url + "/api/2.0/mlflow/users/create", json={"username": alice[0], "password": alice[1]},
                             auth=admin, timeout=30).ok
        body = {"series": [[run, "loss", None]]}
        denied = requests.post(url + FROM_ROUTE, json=body, auth=alice, timeout=30)
        assert denied.status_code == 403 and b"loss" not in denied.content
        assert requests.post(url + FROM_ROUTE, json=body, timeout=30).status_code == 401
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", alice[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", alice[1])
        reader = tb.connect(url)
        assert reader.runs().empty  # MLflow's search leaves out what alice may not read
        with pytest.raises(tb.errors.AccessDenied, match="alice"):  # and so does the points-from route
            _mlflow_rest.read_points_from(reader._host_creds, [(run, "loss", None, None)])
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", admin[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin[1])
        grant(url, alice[0], "guarded", "READ")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", alice[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", alice[1])
        allowed = requests.post(url + FROM_ROUTE, json=body, auth=alice, timeout=30)
        assert allowed.status_code == 200, allowed.text
        update = tb.connect(url).follow(runs=[run]).poll()
        assert update.points[C.STEP].tolist() == list(range(20))
    finally:
        server.stop()


# -------------------------------------------------------------------------------- Aim


def test_aim_polls_add_up_to_the_history(tmp_path: Path):
    import aim

    repo = str(tmp_path / "aim")
    Path(repo).mkdir()
    aim.Repo.from_path(repo, init=True)
    a = aim.Run(repo=repo, experiment="follow-aim", system_tracking_interval=None, log_system_params=False)
    for step in range(5):
        a.track(step * 0.5, name="loss", step=step)
    store = tb.connect(f"aim://{repo}")
    follower = store.follow("follow-aim")
    seen = _Seen()
    first = follower.poll()
    seen.add(first)
    assert first.new_runs == [a.hash] and len(first.points) == 5
    _check(store, seen, follower)

    for step in range(5, 10):
        a.track(step * 0.5, name="loss", step=step)
    for step in range(3):
        a.track(0.1 * step, name="acc", step=step, context={"subset": "val"})
    b = aim.Run(repo=repo, experiment="follow-aim", system_tracking_interval=None, log_system_params=False)
    for step in range(4):
        b.track(1.0, name="loss", step=step)  # the same value each step: still new points
    update = follower.poll()
    seen.add(update)
    assert update.new_runs == [b.hash] and len(update.points) == 5 + 3 + 4
    _check(store, seen, follower)

    assert len(follower.poll().points) == 0
    b.track(1.0, name="loss", step=4)  # the last value again: Aim's summary still moves (last_step)
    update = follower.poll()
    seen.add(update)
    assert update.points[C.STEP].tolist() == [4]
    _check(store, seen, follower)

    a.track(-3.0, name="loss", step=2)  # Aim keeps one point per step: this one replaces step 2's
    a.track(5.0, name="loss", step=10)
    a.close()
    update = follower.poll()
    seen.add(update)
    assert update.changed == [a.hash]
    assert update.reread == [(a.hash, "loss")]  # the replaced point is sent with its whole series
    _check(store, seen, follower)
    b.close()
