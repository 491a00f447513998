"""The history cache stays true to the store when points arrive after a run finished.

Points are logged with MLflow's own client; a second process reads through the cache
the first one filled, and its answer is checked against MLflow's own
``get_metric_history``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from trackbook.servers import mlflow_server

METRIC = "eval/mean_reward"

# Reads history in a fresh process through the given cache, and says which runs it
# had to read from the store (the rest came from the cache).
_READER = """
import json, math, sys
from trackbook.store.mlflow import MLflowStore
uri, cache_dir, run_id, metrics = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
store = MLflowStore(uri, cache_dir=cache_dir)
read = []
inner = store._read_history
store._read_history = lambda ids, names: read.append(list(ids)) or inner(ids, names)
hist = store.history(run_id, metrics)
series = {}
for metric, step, value, ts in zip(hist["metric"], hist["step"], hist["value"], hist["timestamp"]):
    series.setdefault(str(metric), []).append([int(step), None if math.isnan(value) else float(value), ts.value // 1_000_000])
print(json.dumps({"series": series, "read": read}))
"""


def _read_in_new_process(uri: str, cache: Path, run_id: str, metrics: list[str] | None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _READER, uri, str(cache), run_id, json.dumps(metrics)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mlflows_own(client: MlflowClient, run_id: str, metric: str) -> list[list]:
    points = sorted(client.get_metric_history(run_id, metric), key=lambda m: (m.step, m.timestamp))
    return [[m.step, m.value, m.timestamp] for m in points]


@pytest.fixture()
def scratch(fixture_dir: Path, tmp_path: Path) -> tuple[str, Path]:
    shutil.copyfile(fixture_dir / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path


def _late_point(client: MlflowClient, run_id: str, where: str) -> Metric:
    """A point at an earlier, the same or a later step than the metric's last one."""
    last = max(client.get_metric_history(run_id, METRIC), key=lambda m: (m.step, m.timestamp))
    first = min(m.step for m in client.get_metric_history(run_id, METRIC))
    step = {"earlier": first + 1, "equal": last.step, "later": last.step + 7}[where]
    # An evaluation of an old checkpoint, stamped with an earlier time than the last
    # point (MLflow's latest_metrics keeps the point with the greatest (step, time, value)).
    timestamp = last.timestamp - 1000 if where != "later" else last.timestamp + 1000
    return Metric(METRIC, -12345.5, timestamp, step)


@pytest.mark.parametrize("where", ["earlier", "equal", "later"])
def test_a_late_point_reaches_every_later_process(scratch, fixture_ids, where):
    uri, tmp = scratch
    cache = tmp / "cache"
    client = MlflowClient(uri)
    run_id = fixture_ids["mlflow"]["chain-0"]
    assert client.get_run(run_id).info.status == "FINISHED"

    first = _read_in_new_process(uri, cache, run_id, [METRIC])
    assert first["read"] == [[run_id]] and first["series"][METRIC] == _mlflows_own(client, run_id, METRIC)
    again = _read_in_new_process(uri, cache, run_id, [METRIC])
    assert again["read"] == [] and again["series"] == first["series"]  # served from the cache

    client.log_batch(run_id, metrics=[_late_point(client, run_id, where)])
    after = _read_in_new_process(uri, cache, run_id, [METRIC])
    expected = _mlflows_own(client, run_id, METRIC)
    assert len(expected) == len(first["series"][METRIC]) + 1
    assert after["series"][METRIC] == expected


def test_a_new_metric_on_a_fully_cached_finished_run_is_read(scratch, fixture_ids):
    uri, tmp = scratch
    cache = tmp / "cache"
    client = MlflowClient(uri)
    run_id = fixture_ids["mlflow"]["chain-0"]
    before = _read_in_new_process(uri, cache, run_id, None)  # every metric: a complete entry
    assert _read_in_new_process(uri, cache, run_id, None)["read"] == []

    client.log_batch(run_id, metrics=[Metric("eval/late_metric", v, 1_700_000_000_000 + s, s) for s, v in
                                      enumerate([0.5, 0.25, 0.125])])
    after = _read_in_new_process(uri, cache, run_id, None)
    assert set(after["series"]) == set(before["series"]) | {"eval/late_metric"}
    assert after["series"]["eval/late_metric"] == _mlflows_own(client, run_id, "eval/late_metric")
    named = _read_in_new_process(uri, cache, run_id, ["eval/late_metric", METRIC])
    assert named["series"]["eval/late_metric"] == _mlflows_own(client, run_id, "eval/late_metric")
    assert named["series"][METRIC] == before["series"][METRIC]


@pytest.mark.parametrize("app", ["trackbook", None], ids=["trackbook-server", "stock-server"])
def test_a_late_earlier_step_point_is_seen_over_rest(scratch, fixture_ids, app):
    """trackbook's server tells the point counts; a stock server cannot, so its runs are not cached."""
    uri, tmp = scratch
    run_id = fixture_ids["mlflow"]["chain-0"]
    with mlflow_server(uri, tmp / "server", app=app) as url:
        client = MlflowClient(url)
        first = _read_in_new_process(url, tmp / "cache", run_id, [METRIC])
        again = _read_in_new_process(url, tmp / "cache", run_id, [METRIC])
        assert again["read"] == ([] if app else [[run_id]])
        client.log_batch(run_id, metrics=[_late_point(client, run_id, "earlier")])
        after = _read_in_new_process(url, tmp / "cache", run_id, [METRIC])
        expected = _mlflows_own(client, run_id, METRIC)
    assert len(expected) == len(first["series"][METRIC]) + 1
    assert after["series"][METRIC] == expected
