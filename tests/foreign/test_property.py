"""Property: whatever a script logs with MLflow's client, ``runs()`` and ``history()`` say
what MLflow's client says. Hypothesis generates the runs: names, params, tags, metric
names, values (NaN, ±inf, huge, tiny) and steps (repeated, negative, unordered)."""

from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trackbook as tb
from tests.foreign._truth import frame_points, mlflow_points, mlflow_value, same_points, same_values



def _mlflow_accepts(name: str) -> bool:
    """MLflow's own rule for metric, param and tag names (characters, and no path tricks)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_metric_name, _validate_param_name, _validate_tag_name

    try:
        _validate_metric_name(name)
        _validate_param_name(name)
        _validate_tag_name(name)
    except MlflowException:
        return False
    return True


NAMES = st.text(st.sampled_from(list("abcxyzAB019_-. :ρ平/")), min_size=1, max_size=12).filter(_mlflow_accepts)
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e300]),
)
STEPS = st.integers(min_value=-1_000_000, max_value=2**40)
SERIES = st.lists(st.tuples(STEPS, VALUES), min_size=1, max_size=25)
RUN = st.fixed_dictionaries({
    "name": TEXT,
    "params": st.dictionaries(NAMES, TEXT, max_size=6),
    "tags": st.dictionaries(NAMES.filter(lambda s: not s.startswith(("mlflow.", "trackbook."))), TEXT, max_size=4),
    "metrics": st.dictionaries(NAMES, SERIES, max_size=4),
    "status": st.sampled_from(["FINISHED", "FAILED", "KILLED", "RUNNING"]),
})

_counter = itertools.count()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """An empty sqlite MLflow store (created by MLflow's client), and trackbook on it."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("hypothesis-store")
    uri = f"sqlite:///{folder / 'generated.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments()  # MLflow creates its tables
    return client, tb.connect(uri), folder


def _write(client, folder, runs: list[dict]) -> tuple[str, list[str]]:
    from mlflow.entities import Metric, Param, RunTag

    n = next(_counter)
    exp = client.create_experiment(f"generated-{n}", artifact_location=(folder / f"a{n}").as_uri())
    ids = []
    for i, spec in enumerate(runs):
        rid = client.create_run(exp, start_time=1_767_225_600_000 + i * 1000, run_name=spec["name"] or None).info.run_id
        ids.append(rid)
        ts = itertools.count(1_767_225_600_000 + i * 1000)
        client.log_batch(
            rid,
            params=[Param(k, v) for k, v in spec["params"].items()],
            tags=[RunTag(k, v) for k, v in spec["tags"].items()],
            metrics=[Metric(m, v, next(ts), s) for m, series in spec["metrics"].items() for s, v in series],
        )
        if spec["status"] != "RUNNING":
            client.set_terminated(rid, spec["status"], end_time=1_767_225_600_000 + i * 1000 + 500)
    return exp, ids


def _cell_matches(cell, logged: str) -> bool:
    if isinstance(cell, str):
        return cell == logged
    return float(cell) == float(logged) or (math.isnan(float(cell)) and math.isnan(float(logged)))


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(runs=st.lists(RUN, min_size=1, max_size=3))
def test_runs_and_history_agree_with_mlflow(generated, runs):
    client, store, folder = generated
    exp, ids = _write(client, folder, runs)
    frame = store.runs(exp).set_index("run_id")
    assert sorted(frame.index) == sorted(ids)
    hist = store.history(ids, cache=False)
    cached = store.history(ids)
    for rid in ids:
        run = client.get_run(rid)
        row = frame.loc[rid]
        assert row["name"] == run.info.run_name
        assert row["status"] == run.info.status
        for key, logged in run.data.params.items():
            cell = row[f"params.{key}"]
            if logged == "None" or (pd.isna(cell) and not isinstance(cell, str)):
                # "None" is read as missing, as is a column's text that parses as NaN
                assert pd.isna(cell) or _cell_matches(cell, logged)
            else:
                assert _cell_matches(cell, logged), (key, cell, logged)
        for key, logged in run.data.tags.items():
            if not key.startswith("mlflow."):
                assert row[f"tags.{key}"] == logged
        for key, logged in run.data.metrics.items():
            assert same_values([row[f"metrics.{key}"]], [mlflow_value(logged)]), key
            expected = mlflow_points(client, rid, key)
            assert same_points(frame_points(hist, rid, key), expected), key
            assert same_points(frame_points(cached, rid, key), expected), key
        present = set(hist.loc[hist["run_id"] == rid, "metric"].astype(str))
        assert present == set(run.data.metrics)
