"""compare() on a small MLflow store written with MLflow's client: the numbers a user reads."""

from __future__ import annotations

import numpy as np
import pytest

import trackbook as tb
from tests._mlflow_template import empty_mlflow_db


@pytest.fixture()
def three_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = empty_mlflow_db(tmp_path / "compare.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("cmp")
    ids = {}
    logged = {  # name: (lr, {metric: [(step, value)]})
        "a": ("0.1", {"reward": [(1, 1.0), (2, 5.0), (3, 3.0)], "train/loss": [(1, 0.5), (2, 0.2)]}),
        "b": ("0.01", {"reward": [(2, 4.0), (1, 2.0), (3, float("nan"))], "train/loss": [(1, 0.1), (2, 0.3)]}),
        "c": ("0.1", {"train/loss": [(1, 0.9)]}),
    }
    for name, (lr, metrics) in logged.items():
        run = client.create_run(exp, run_name=name).info.run_id
        client.log_param(run, "lr", lr)
        client.log_param(run, "seed", "1")
        if name == "a":
            client.log_param(run, "note", "only a")
        for metric, points in metrics.items():
            for step, value in points:
                client.log_metric(run, metric, value, step=step)
        client.set_terminated(run, "FINISHED")
        ids[name] = run
    return tb.connect(uri), ids


def test_compare_final_best_and_rank(three_runs):
    store, ids = three_runs
    table = tb.compare(store, [ids["b"], ids["a"], ids["c"]], ["reward", "train/loss"])
    assert list(table["name"]) == ["b", "a", "c"]  # the order given
    # seed is the same everywhere; a param only one run has differs from "not logged"
    assert [c for c in table.columns if c.startswith("params.")] == ["params.lr", "params.note"]
    assert table["params.lr"].tolist() == [0.01, 0.1, 0.1]
    assert table["final.reward"].tolist()[:2] == [4.0, 3.0] and np.isnan(table["final.reward"].iloc[2])
    assert table["best.reward"].tolist()[:2] == [4.0, 5.0]
    assert table["rank.reward"].tolist() == [1, 2, 3]  # higher is better, never-logged ranks last
    assert table["final.train/loss"].tolist() == [0.3, 0.2, 0.9]
    assert table["best.train/loss"].tolist() == [0.1, 0.2, 0.9]  # a loss: its best is its smallest
    assert table["rank.train/loss"].tolist() == [2, 1, 3]
    assert table["status"].tolist() == ["FINISHED"] * 3


def test_compare_goals_turn_a_metric_around(three_runs):
    store, ids = three_runs
    table = tb.compare(store, [ids["a"], ids["b"], ids["c"]], "reward", goals={"reward": "min"})
    assert table["best.reward"].tolist()[:2] == [1.0, 2.0] and np.isnan(table["best.reward"].iloc[2])
    assert table["rank.reward"].tolist() == [1, 2, 3]
    assert table["rank.reward"].dtype == "int64"


def test_runs_tied_on_the_final_value_share_the_best_rank(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = empty_mlflow_db(tmp_path / "ties.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("ties")
    ids = []
    for name, final in (("a", 2.0), ("b", 2.0), ("c", 1.0), ("d", 2.0)):
        run = client.create_run(exp, run_name=name).info.run_id
        client.log_metric(run, "reward", final, step=1)
        ids.append(run)
    table = tb.compare(tb.connect(uri), ids, "reward")
    assert table["rank.reward"].tolist() == [1, 1, 4, 1]  # three share first place; the next is fourth
