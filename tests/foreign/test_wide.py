"""The 2,000-run experiment (built only when these tests run)."""

from __future__ import annotations

import pandas as pd
import pytest

from data_fixtures.foreign import wide
from tests.foreign._truth import frame_points, mlflow_points, mlflow_runs, same_points


@pytest.fixture(scope="module")
def big(foreign):
    return foreign.store("wide"), foreign.client("wide"), foreign.ids("wide")


def test_bulk_written_runs_read_in_mlflow_as_client_written_ones(big):
    """run-0001 (MLflow's SQLAlchemy models) and run-0000 (MlflowClient) look alike to MLflow's client."""
    _, client, ids = big
    first = client.get_run(ids["run-0000"])
    second = client.search_runs([first.info.experiment_id], filter_string="attributes.run_name = 'run-0001'")[0]
    for a, b in ((first.info, second.info),):
        assert {k for k in vars(a)} == {k for k in vars(b)}
        assert (a.status, a.lifecycle_stage, a.user_id) == (b.status, b.lifecycle_stage, b.user_id)
        assert b.artifact_uri.endswith(f"{b.run_id}/artifacts")
    assert set(first.data.tags) == set(second.data.tags) == {"mlflow.runName"}
    assert set(first.data.params) == set(second.data.params)
    assert set(first.data.metrics) == set(second.data.metrics)
    params, metrics = wide.run_contents(1)
    assert second.data.params == params
    assert [m.value for m in client.get_metric_history(second.info.run_id, "loss")] == metrics["loss"]


def test_runs_and_history_of_2000_runs(big):
    store, client, _ = big
    truth = mlflow_runs(client, [wide.EXPERIMENT])
    frame = store.runs(wide.EXPERIMENT)
    assert len(frame) == wide.N_RUNS and set(frame["run_id"]) == set(truth)
    last = frame.set_index("run_id")["metrics.loss"]
    assert all(last[rid] == run.data.metrics["loss"] for rid, run in truth.items())
    cold = store.history(frame)
    warm = store.history(frame)
    assert len(cold) == wide.N_RUNS * 2 * wide.N_POINTS
    pd.testing.assert_frame_equal(cold, warm)
    for rid in sorted(truth)[:: wide.N_RUNS // 10]:
        for metric in ("loss", "reward"):
            assert same_points(frame_points(cold, rid, metric), mlflow_points(client, rid, metric))
    assert store.runs(wide.EXPERIMENT, filter="params.arch == 'cnn'").shape[0] == sum(
        r.data.params["arch"] == "cnn" for r in truth.values())
