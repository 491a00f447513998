"""The bulk history paths (SQL, REST, Aim), the cache of finished runs, down-sampling."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import trackbook as tb
from trackbook import columns as C
from trackbook.store import _mlflow_rest
from trackbook.store.frames import downsample, finish_history
from trackbook.store.mlflow import MLflowStore


@pytest.fixture()
def scratch_copy(fixture_dir: Path, tmp_path: Path) -> tuple[str, Path]:
    """A private copy of the MLflow fixture store, free to be written to."""
    shutil.copyfile(fixture_dir / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path


def test_sql_bulk_path_matches_mlflows_own_per_metric_reads(mlflow_store):
    runs = mlflow_store.runs()
    ids = list(runs[C.RUN_ID])
    metrics = sorted({c[len(C.METRICS_PREFIX):] for c in runs.columns if c.startswith(C.METRICS_PREFIX)})
    bulk = finish_history(mlflow_store._read_history(ids, metrics), ids)
    naive = finish_history(mlflow_store._naive_history(ids, metrics), ids)
    assert len(bulk) > 16_000
    pdt.assert_frame_equal(bulk, naive)
    values = bulk[C.VALUE]
    assert values.isna().sum() > 0 and np.isposinf(values).sum() == 1 and np.isneginf(values).sum() == 1


def test_rest_path_pages_instead_of_truncating(stock_http_store, mlflow_store, monkeypatch):
    """Ask a stock server for small pages: responses are cut and must be completed."""
    http_store = stock_http_store
    monkeypatch.setattr(_mlflow_rest, "BULK_MAX_POINTS", 1500)  # < one plain run's 2,000 points
    monkeypatch.setattr(_mlflow_rest, "PAGE_SIZE", 700)
    runs = mlflow_store.runs("ppo-cartpole")
    metrics = ["rollout/ep_rew_mean", "eval/mean_reward", "train/loss"]
    got = http_store.history(runs, metrics, cache=False)
    pdt.assert_frame_equal(got, mlflow_store.history(runs, metrics, cache=False))
    assert got.groupby([C.RUN_ID, C.METRIC], observed=True).size().max() == 2000


def test_trackbook_server_sends_arrow_and_a_stock_server_is_read_through_json(
    http_store, stock_http_store, mlflow_store, monkeypatch
):
    """Which path each server takes: the Arrow endpoint is asked first, a 404 is remembered."""
    runs = mlflow_store.runs("ppo-cartpole")
    ids, metrics = list(runs[C.RUN_ID]), ["train/loss", "eval/mean_reward"]
    expected = finish_history(mlflow_store._read_history(ids, metrics), ids)
    monkeypatch.setattr(_mlflow_rest, "ARROW_RUNS", 2)  # several requests, joined
    json_reads = []
    real_json = _mlflow_rest._read_json
    monkeypatch.setattr(_mlflow_rest, "_read_json", lambda *a: json_reads.append(a) or real_json(*a))

    arrow = _mlflow_rest.read_points(http_store._host_creds, ids, metrics)
    assert json_reads == [] and http_store._host_creds.host not in _mlflow_rest._no_arrow
    assert isinstance(arrow[C.RUN_ID].dtype, pd.CategoricalDtype)
    pdt.assert_frame_equal(finish_history(arrow, ids), expected)
    # a metric only some runs have: some requests come back empty
    sparse = _mlflow_rest.read_points(http_store._host_creds, ids, ["train/loss"])
    pdt.assert_frame_equal(finish_history(sparse, ids), finish_history(mlflow_store._read_history(ids, ["train/loss"]), ids))

    stock = _mlflow_rest.read_points(stock_http_store._host_creds, ids, metrics)
    assert len(json_reads) == 1 and stock_http_store._host_creds.host in _mlflow_rest._no_arrow
    pdt.assert_frame_equal(finish_history(stock, ids), expected)


def test_arrow_endpoint_refuses_bad_requests_clearly(http_store):
    from mlflow.utils.rest_utils import http_request

    from trackbook.store._mlflow_app import ROUTE

    response = http_request(http_store._host_creds, ROUTE, "GET", params={"metric_key": ["x"]})
    assert response.status_code == 400 and "run_id" in response.json()["message"]


def test_concurrent_writer_never_yields_a_torn_read(scratch_copy):
    """A RUNNING run grows while it is read: every read is a complete prefix of it."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri, _ = scratch_copy
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ppo-cartpole").experiment_id
    run_id = client.create_run(exp, run_name="growing").info.run_id
    stop = threading.Event()

    def write() -> None:
        step = 0
        while not stop.is_set() and step < 20_000:
            client.log_batch(run_id, metrics=[Metric("live", float(s), 0, s) for s in range(step, step + 200)])
            step += 200

    writer = threading.Thread(target=write)
    writer.start()
    store = tb.connect(uri)
    try:
        for _ in range(15):
            steps = store.history(run_id, "live", cache=False)[C.STEP].to_numpy()
            assert np.array_equal(steps, np.arange(len(steps)))
    finally:
        stop.set()
        writer.join()


class _Spy:
    def __init__(self, store) -> None:
        self.read: list[list[str]] = []
        self._inner = store._read_history

    def __call__(self, run_ids, metrics):
        self.read.append(list(run_ids))
        return self._inner(run_ids, metrics)


def test_finished_runs_are_served_from_the_cache(scratch_copy, tmp_path, fixture_ids):
    uri, _ = scratch_copy
    store = MLflowStore(uri, cache_dir=tmp_path / "cache")
    trials = store.runs("hpo-cartpole")
    running = trials.loc[trials[C.STATUS] == C.RUNNING, C.RUN_ID].tolist()
    first = store.history(trials)
    manifest = json.loads((store.cache.folder / "manifest.json").read_text())["runs"]
    assert set(manifest) == set(trials[C.RUN_ID]) - set(running)
    assert len(list(store.cache.folder.glob("*.parquet"))) == 1  # one batch file for the call, not one per run

    spy = _Spy(store)
    store._read_history = spy
    second = store.history(trials)
    pdt.assert_frame_equal(first, second)
    assert spy.read == [running]  # RUNNING runs are always read again, finished ones never

    # a subset of metrics is served from the same entries
    spy.read.clear()
    pdt.assert_frame_equal(
        store.history(trials, "objective"), first[first[C.METRIC] == "objective"].reset_index(drop=True),
        check_categorical=False,
    )
    assert spy.read == [running]


def test_a_point_logged_to_a_finished_run_invalidates_its_entry(scratch_copy, tmp_path, fixture_ids):
    from mlflow.tracking import MlflowClient

    uri, _ = scratch_copy
    store = MLflowStore(uri, cache_dir=tmp_path / "cache")
    run_id = fixture_ids["mlflow"]["chain-0"]
    before = store.history(run_id, "eval/mean_reward")
    MlflowClient(uri).log_metric(run_id, "eval/mean_reward", 999.0, step=10_001)
    after = store.history(run_id, "eval/mean_reward")
    assert len(after) == len(before) + 1 and after[C.VALUE].iloc[-1] == 999.0


def test_cache_clear(mlflow_store, tmp_path):
    store = MLflowStore(mlflow_store.uri, cache_dir=tmp_path / "cache")
    store.history(store.runs("ppo-cartpole"), "eval/mean_reward")
    assert any(store.cache.folder.glob("*.parquet"))
    store.cache.clear()
    assert not store.cache.folder.exists()


_CONCURRENT_READER = """
import json, sys
from trackbook.store.mlflow import MLflowStore
store = MLflowStore(sys.argv[1], cache_dir=sys.argv[2])
out = []
for i in range(6):
    if i == 3 and sys.argv[3] == "clear":
        store.cache.clear()
    h = store.history(store.runs(), cache=True)
    out.append([len(h), float(h["value"].fillna(0).replace([float("inf"), float("-inf")], 0).sum())])
print(json.dumps(out))
"""


def test_concurrent_processes_share_one_cache_safely(mlflow_store, tmp_path):
    expected = mlflow_store.history(mlflow_store.runs(), cache=False)
    finite = expected[C.VALUE].fillna(0).replace([np.inf, -np.inf], 0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT_READER, mlflow_store.uri, str(tmp_path / "shared"),
             "clear" if i % 2 else "keep"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        for n, total in json.loads(out.strip().splitlines()[-1]):
            assert n == len(expected)
            assert total == pytest.approx(float(finite.sum()))


def test_downsample_keeps_ends_and_extremes(store_and_ids):
    store, ids = store_and_ids
    full = store.history([ids["plain-0"], ids["plain-1"], ids["chain-0"]], ["rollout/ep_rew_mean", "train/loss"])
    small = store.history(
        [ids["plain-0"], ids["plain-1"], ids["chain-0"]], ["rollout/ep_rew_mean", "train/loss"], max_points=100
    )
    sizes = small.groupby([C.RUN_ID, C.METRIC], observed=True).size()
    assert sizes.max() <= 100
    for (run, metric), series in full.groupby([C.RUN_ID, C.METRIC], observed=True):
        kept = small[(small[C.RUN_ID] == run) & (small[C.METRIC] == metric)]
        if len(series) <= 100:
            pdt.assert_frame_equal(kept.reset_index(drop=True), series.reset_index(drop=True))
            continue
        assert kept[C.STEP].iloc[0] == series[C.STEP].iloc[0]
        assert kept[C.STEP].iloc[-1] == series[C.STEP].iloc[-1]
        assert kept[C.VALUE].max() == series[C.VALUE].max()
        assert kept[C.VALUE].min() == series[C.VALUE].min()
        assert kept[C.STEP].is_monotonic_increasing
    with pytest.raises(ValueError, match="max_points"):
        store.history(ids["plain-0"], max_points=2)
    assert downsample(full.iloc[:0], 10).empty


def test_history_labels_are_categorical_in_the_order_asked(store_and_ids):
    store, ids = store_and_ids
    order = [ids["trial-3"], ids["trial-0"], ids["trial-1"]]
    hist = store.history(order, "eval/mean_reward")
    assert isinstance(hist[C.RUN_ID].dtype, pd.CategoricalDtype)
    assert list(hist[C.RUN_ID].cat.categories) == order
    assert list(dict.fromkeys(hist[C.RUN_ID])) == order
    assert list(hist.groupby(C.RUN_ID, observed=True).size()) == [10, 10, 10]


def test_aim_raw_reader_matches_aims_own(aim_store, fixture_ids):
    from trackbook.store.aim import _raw_series_arrays

    repo = aim_store._fresh_repo()
    checked = 0
    for run_id in fixture_ids["aim"].values():
        run = repo.get_run(run_id)
        for name, context, _ in run.iter_metrics_info():
            metric = run.get_metric(name, context)
            steps, values, times = _raw_series_arrays(metric)
            ref_steps, (ref_values, ref_times) = metric.data.view(["val", "time"]).numpy()
            assert np.array_equal(steps, ref_steps)
            assert np.array_equal(values, np.asarray(ref_values, dtype="float64"), equal_nan=True)
            assert np.array_equal(times, ref_times)
            checked += 1
    assert checked > 40


# ----------------------------------------------------------- PostgreSQL and the fallback

#: Metric names whose order differs between bytes and a linguistic collation.
_PG_METRICS = ["train/loss", "train_loss", "Train", "a", "B", "x y:z"]


@pytest.fixture(scope="module")
def postgres_store(tmp_path_factory):
    """An MLflow store on PostgreSQL whose database sorts text by ICU's en-US rules, written
    through MlflowClient: a RUNNING run, NaN/±inf, repeated steps, metrics some runs lack."""
    import glob

    import psycopg
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from tests.requirements import require
    from trackbook.servers import postgres_server

    require(bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres)", "apt-get install postgresql")
    with postgres_server(tmp_path_factory.mktemp("pg"), databases=()) as pg:
        with psycopg.connect(pg.uri("postgres"), autocommit=True) as admin:
            try:
                admin.execute("CREATE DATABASE icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                              "LOCALE 'C.UTF-8'")
            except psycopg.Error:  # a server built without ICU: its default collation then
                admin.execute("CREATE DATABASE icu")
        uri = pg.uri("icu")
        client = MlflowClient(uri)
        exp = client.create_experiment("pg")
        rng = np.random.default_rng(3)
        run_ids = []
        for r in range(4):
            run_id = client.create_run(exp, run_name=f"run-{r}").info.run_id
            names = _PG_METRICS if r != 1 else _PG_METRICS[:3]
            points = []
            for i, name in enumerate(names):
                values = rng.normal(size=50 + 10 * i)
                values[[3, 7]] = [np.nan, np.inf if i % 2 else -np.inf]
                points += [Metric(name, float(v), 1_000 + s, s // 2) for s, v in enumerate(values)]
            for i in range(0, len(points), 500):
                client.log_batch(run_id, metrics=points[i : i + 500])
            if r != 2:
                client.set_terminated(run_id, "FINISHED")
            run_ids.append(run_id)
        yield MLflowStore(uri, cache_dir=tmp_path_factory.mktemp("pg-cache")), run_ids


@pytest.fixture(params=["adbc", "dbapi"])
def reader(request, monkeypatch):
    """The ADBC reader, or the DBAPI fallback a store without the ``fast`` extra uses."""
    from trackbook.store import _mlflow_sql

    if request.param == "dbapi":
        monkeypatch.setattr(_mlflow_sql, "_adbc_connect", lambda engine: None)
    return request.param


# a name MLflow would refuse, that must reach the database as a value, never as SQL
@pytest.mark.parametrize("subset", [None, ["x y:z", "B", "it's \\' OR 1=1 --", "train_loss"]])
def test_postgres_history_matches_mlflows_own_reads(postgres_store, reader, subset):
    store, run_ids = postgres_store
    asked = [run_ids[2], run_ids[0], run_ids[3], run_ids[1]]
    got = store.history(asked, subset, cache=False)
    metrics = subset or _PG_METRICS
    assert set(got[C.METRIC].unique()) == set(metrics) - {"it's \\' OR 1=1 --"}
    naive = finish_history(store._naive_history(asked, metrics), asked)
    pdt.assert_frame_equal(got, naive)
    assert list(got[C.RUN_ID].unique()) == asked
    series = len(got.groupby([C.RUN_ID, C.METRIC], observed=True))
    assert got[C.VALUE].isna().sum() == series and np.isinf(got[C.VALUE]).sum() == series
    store.cache.clear()
    cold, warm = store.history(asked, subset), store.history(asked, subset)
    pdt.assert_frame_equal(cold, naive)
    pdt.assert_frame_equal(warm, naive)


def test_sqlite_fallback_reader_matches_mlflows_own_reads(mlflow_store, reader):
    runs = mlflow_store.runs()
    ids = list(runs[C.RUN_ID])[::-1]
    metrics = sorted({c[len(C.METRICS_PREFIX):] for c in runs.columns if c.startswith(C.METRICS_PREFIX)})
    got = mlflow_store.history(ids, cache=False)
    pdt.assert_frame_equal(got, finish_history(mlflow_store._naive_history(ids, metrics), ids))
