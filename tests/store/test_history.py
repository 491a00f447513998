"""history() on each local fixture store."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trackbook import columns as C
from trackbook.errors import RunNotFound


def test_history_of_one_run_and_metric(store_and_ids):
    store, ids = store_and_ids
    hist = store.history(ids["plain-0"], "rollout/ep_rew_mean")
    assert list(hist.columns) == C.HISTORY_COLUMNS
    assert len(hist) == 2000
    assert hist[C.STEP].tolist() == list(range(2000))
    assert hist[C.STEP].dtype == "int64" and hist[C.VALUE].dtype == "float64"
    assert str(hist[C.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert set(hist[C.RUN_ID]) == {ids["plain-0"]}


def test_nan_and_inf_are_kept(store_and_ids):
    store, ids = store_and_ids
    loss = store.history(ids["plain-2"], ["train/loss"]).set_index(C.STEP)[C.VALUE]
    assert loss.isna().sum() == 7  # every 250th step
    assert loss[1010] == math.inf and loss[1011] == -math.inf
    assert np.isfinite(loss[999])


def test_history_of_a_runs_frame_keeps_run_order(store_and_ids):
    store, _ = store_and_ids
    runs = store.runs("hpo-cartpole", filter="name.str.startswith('trial')")
    hist = store.history(runs, metrics="eval/mean_reward")
    assert list(dict.fromkeys(hist[C.RUN_ID])) == list(runs[C.RUN_ID])
    per_run = hist.groupby(C.RUN_ID).size()
    by_name = dict(zip(runs[C.NAME], runs[C.RUN_ID], strict=True))
    assert per_run[by_name["trial-0"]] == 10
    assert per_run[by_name["trial-5"]] == 4  # failed early
    assert per_run[by_name["trial-7"]] == 6  # still running


def test_all_metrics_when_none_named(store_and_ids):
    store, ids = store_and_ids
    hist = store.history([ids["chain-1"]])
    assert set(hist[C.METRIC]) == {"rollout/ep_rew_mean", "eval/mean_reward", "total_timesteps", "previous_timesteps"}
    sizes = hist.groupby(C.METRIC).size()
    assert sizes["rollout/ep_rew_mean"] == 100 and sizes["eval/mean_reward"] == 10


def test_unknown_metric_gives_empty_frame_and_unknown_run_raises(store_and_ids):
    store, ids = store_and_ids
    empty = store.history(ids["plain-0"], "no/such_metric")
    assert empty.empty and list(empty.columns) == C.HISTORY_COLUMNS
    missing = "f" * len(ids["plain-0"])
    with pytest.raises(RunNotFound):
        store.history([ids["plain-0"], missing], "train/loss")
    with pytest.raises(ValueError, match="run_id"):
        store.history(store.experiments())
