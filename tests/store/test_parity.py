"""The same content read through sqlite, an mlflow server over HTTP, and Aim gives equal frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import trackbook as tb

from trackbook import columns as C

_TIME_COLUMNS = [C.EXPERIMENT_ID, C.START_TIME, C.END_TIME, C.DURATION]
_ID_COLUMNS = [C.RUN_ID, C.PARENT_RUN_ID, C.BASE_RUN_ID, "tags.base_model_run_id"]


def _by_key(frame: pd.DataFrame, ids: dict[str, str]) -> pd.DataFrame:
    """Replace run ids by fixture keys and drop what differs by nature (ids, clocks)."""
    key_of = {v: k for k, v in ids.items()}
    out = frame.drop(columns=[c for c in _TIME_COLUMNS if c in frame.columns])
    for col in _ID_COLUMNS:
        if col in out.columns:
            out[col] = out[col].map(lambda v: key_of.get(v, v) if isinstance(v, str) else None).astype(object)
    sort = [C.RUN_ID, C.METRIC, C.STEP] if C.METRIC in out.columns else [C.RUN_ID]
    return out.sort_values(sort, ignore_index=True)


def test_runs_equal_between_mlflow_and_aim(mlflow_store, aim_store, fixture_ids):
    left = _by_key(mlflow_store.runs(), fixture_ids["mlflow"])
    right = _by_key(aim_store.runs(), fixture_ids["aim"])
    pdt.assert_frame_equal(left, right, check_dtype=False)
    # the dtypes that matter for analysis agree
    for col in ["params.learning_rate", "params.n_steps", "metrics.train/loss"]:
        assert left[col].dtype == right[col].dtype


def test_history_equal_between_mlflow_and_aim(mlflow_store, aim_store, fixture_ids):
    left = mlflow_store.history(mlflow_store.runs()).drop(columns=[C.TIMESTAMP])
    right = aim_store.history(aim_store.runs()).drop(columns=[C.TIMESTAMP])
    assert len(left) > 16_000
    pdt.assert_frame_equal(_by_key(left, fixture_ids["mlflow"]), _by_key(right, fixture_ids["aim"]))


@pytest.mark.parametrize("server", ["http_store", "stock_http_store"])
def test_http_server_returns_what_sqlite_returns(mlflow_store, server, request):
    """Through trackbook's Arrow endpoint and through MLflow's own JSON endpoints alike."""
    http_store = request.getfixturevalue(server)
    pdt.assert_frame_equal(http_store.runs(), mlflow_store.runs())
    runs = mlflow_store.runs()
    history = http_store.history(runs, cache=False)
    pdt.assert_frame_equal(history, mlflow_store.history(runs, cache=False))
    values = history[C.VALUE]
    assert len(history) > 16_000 and values.isna().any() and np.isposinf(values).any() and np.isneginf(values).any()
    exps = mlflow_store.experiments()
    pdt.assert_frame_equal(http_store.experiments()[exps.columns], exps)


def test_chain_is_the_same_on_every_backend(mlflow_store, aim_store, http_store, fixture_ids):
    frames = []
    for store, backend in [(mlflow_store, "mlflow"), (aim_store, "aim"), (http_store, "mlflow")]:
        chain = tb.chain(store, fixture_ids[backend]["chain-2"])
        hist = chain.history("eval/mean_reward")
        frames.append(hist[["global_step", "segment", C.VALUE]])
        assert list(chain.runs[C.NAME]) == ["chain-0", "chain-1", "chain-2"]
    pdt.assert_frame_equal(frames[0], frames[1])
    pdt.assert_frame_equal(frames[0], frames[2])
