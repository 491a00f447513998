"""Frame builders: how params read as numbers or text, whichever backend answered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trackbook.store.frames import RunRecord, runs_frame


def _params_frame(values: list[object]) -> pd.Series:
    records = [RunRecord(run_id=f"{i:032x}", name=f"r{i}", experiment_id="1", experiment="e", status="FINISHED",
                         start_time=1000.0 * i, end_time=None, params={"x": v}) for i, v in enumerate(values)]
    return runs_frame(records).sort_values("name")["params.x"].reset_index(drop=True)


def test_none_texts_are_missing_in_a_numeric_column():
    # MLflow logs Python's None as the text "None"; one such run must not make a filter on the column fail.
    column = _params_frame(["0.01", "None", "0.5"])
    assert column.dtype == "float64"
    assert np.isnan(column[1]) and column[0] == 0.01 and column[2] == 0.5


def test_zero_padded_codes_stay_text():
    assert _params_frame(["007", "8"]).tolist() == ["007", "8"]


def test_words_stay_text_and_numbers_become_numbers():
    assert _params_frame(["adam", "sgd"]).tolist() == ["adam", "sgd"]
    assert _params_frame(["1", "2"]).dtype == "int64"
    assert _params_frame(["1e-4", "0"]).tolist() == [0.0001, 0.0]


# ---------------------------------------------------------------- values a user reads off the frames
# Small hand-made inputs whose right answers are worked out by hand; fast enough for
# the mutation run (scripts/mutation).

import time

import pytest

from trackbook import columns as C
from trackbook.store.frames import check_statuses, concat_points, downsample, empty_history, finish_history, to_utc


def _record(i: int, **kw) -> RunRecord:
    base = dict(run_id=f"{i:032x}", name=f"r{i}", experiment_id="1", experiment="e", status="FINISHED",
                start_time=1_000_000.0 * i, end_time=1_000_000.0 * i + 2500.0)
    base.update(kw)
    return RunRecord(**base)


def test_runs_frame_columns_times_order_and_prefixes():
    records = [
        _record(1, params={"lr": "0.1"}, tags={"team": "a", "mlflow.user": "x", "trackbook.kind": "y",
                                               "base_model_run_id": "f" * 32},
                metrics={"reward": 3}, parent_run_id="p" * 32),
        _record(2, name="b", params={"lr": "0.2"}, metrics={"reward": 5.5}),
        _record(3, name="a", start_time=2_000_000.0, params={"lr": "0.3"}),  # same start as r2: by name
    ]
    frame = runs_frame(records)
    assert list(frame[C.NAME]) == ["a", "b", "r1"]  # newest first, ties by name
    assert list(frame.columns[: len(C.RUN_COLUMNS)]) == C.RUN_COLUMNS
    assert list(frame.columns[len(C.RUN_COLUMNS):]) == ["params.lr", "tags.base_model_run_id", "tags.team",
                                                          "metrics.reward"]
    row = frame.set_index(C.NAME).loc["r1"]
    assert row[C.START_TIME] == pd.Timestamp(1_000_000, unit="ms", tz="UTC")
    assert row[C.END_TIME] == pd.Timestamp(1_002_500, unit="ms", tz="UTC")
    assert row[C.DURATION] == 2.5
    assert row[C.PARENT_RUN_ID] == "p" * 32 and row[C.BASE_RUN_ID] == "f" * 32
    assert row["metrics.reward"] == 3.0 and frame["metrics.reward"].dtype == "float64"
    assert frame["params.lr"].tolist() == [0.3, 0.2, 0.1]
    by_name = frame.set_index(C.NAME)
    assert by_name.loc["b", C.PARENT_RUN_ID] is None and by_name.loc["b", C.BASE_RUN_ID] is None
    assert np.isnan(by_name.loc["a", "metrics.reward"])
    assert not frame[C.STALE].any() and frame[C.STALE].dtype == bool


def test_runs_frame_of_no_records_has_the_fixed_columns():
    frame = runs_frame([])
    assert list(frame.columns) == C.RUN_COLUMNS and frame.empty


def test_a_running_run_is_stale_only_after_stale_after_seconds_of_silence():
    now = time.time() * 1000.0
    records = [
        _record(1, name="quiet", status="RUNNING", start_time=now - 3_600_000, end_time=None),
        _record(2, name="alive", status="RUNNING", start_time=now - 3_600_000, end_time=None, last_activity=now - 1000),
        _record(3, name="young", status="RUNNING", start_time=now - 10_000, end_time=None),
        _record(4, name="done", status="FINISHED", start_time=now - 3_600_000, end_time=now - 3_000_000),
        _record(5, name="unknown", status="RUNNING", start_time=None, end_time=None),
    ]
    stale = runs_frame(records, stale_after=60).set_index(C.NAME)[C.STALE].to_dict()
    assert stale == {"quiet": True, "alive": False, "young": False, "done": False, "unknown": False}
    assert runs_frame(records[:1], stale_after=7200)[C.STALE].tolist() == [False]


def test_signatures_default_to_the_last_values_unless_the_backend_gives_them():
    assert _record(1, metrics={"a": 1, "b": 0.5}).signatures() == {"a": "1.0", "b": "0.5"}
    assert _record(1, metrics={"a": 1}, metric_signatures={"a": [3, 4]}).signatures() == {"a": [3, 4]}


def _points(rows):
    return pd.DataFrame(rows, columns=C.HISTORY_COLUMNS)


def test_finish_history_types_and_sorts_by_run_order_metric_step_time():
    raw = _points([
        ("r2", "b", 1, 1.0, 5), ("r1", "b", 2, 2.0, 4), ("r1", "a", 2, 3.0, 3),
        ("r1", "a", 1, 4.0, 9), ("r1", "a", 1, 5.0, 2), ("r2", "a", 0, 6.0, 1),
    ])
    out = finish_history(raw, ["r2", "r1"])
    assert list(out.columns) == C.HISTORY_COLUMNS
    assert list(out[C.RUN_ID].cat.categories) == ["r2", "r1"] and list(out[C.METRIC].cat.categories) == ["a", "b"]
    assert out[C.VALUE].tolist() == [6.0, 1.0, 5.0, 4.0, 3.0, 2.0]
    assert out[C.STEP].dtype == "int64" and out[C.VALUE].dtype == "float64"
    assert out[C.TIMESTAMP].iloc[0] == pd.Timestamp(1, unit="ms", tz="UTC")
    already = finish_history(out.assign(**{C.TIMESTAMP: out[C.TIMESTAMP].astype("int64") // 1_000_000}), ["r2", "r1"])
    assert already[C.VALUE].tolist() == out[C.VALUE].tolist()


def test_finish_history_keeps_unknown_runs_out_and_one_point_as_is():
    one = finish_history(_points([("r9", "m", 3, 1.5, 7)]), ["r9"])
    assert one[C.RUN_ID].tolist() == ["r9"] and one[C.STEP].tolist() == [3] and one[C.VALUE].tolist() == [1.5]
    missing = finish_history(_points([("zz", "m", 1, 1.0, 1), ("r1", "m", 0, 2.0, 1)]), ["r1"])
    assert missing[C.RUN_ID].isna().tolist() == [True, False] and missing[C.VALUE].tolist() == [1.0, 2.0]
    empty = empty_history()
    assert list(empty.columns) == C.HISTORY_COLUMNS and empty.empty
    assert str(empty[C.TIMESTAMP].dtype) == "datetime64[ns, UTC]"


def test_finish_history_past_127_runs_keeps_every_run():
    ids = [f"run{i:03d}" for i in range(300)]
    raw = _points([(rid, "m", 0, float(i), 0) for i, rid in enumerate(reversed(ids))])
    out = finish_history(raw, ids)
    assert out[C.RUN_ID].tolist() == ids and out[C.VALUE].tolist() == [float(299 - i) for i in range(300)]


def test_concat_points_keeps_labels_categorical_and_in_order():
    a = _points([("r1", "m", 0, 1.0, 0), ("r1", "m", 1, 2.0, 0)])
    b = _points([("r2", "n", 0, 3.0, 0), ("r1", "n", 5, 4.0, 0)])
    both = concat_points([a, b])
    assert concat_points([a]) is a
    assert both[C.RUN_ID].tolist() == ["r1", "r1", "r2", "r1"] and both[C.METRIC].tolist() == ["m", "m", "n", "n"]
    assert both[C.VALUE].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert isinstance(both[C.RUN_ID].dtype, pd.CategoricalDtype)


def test_to_utc_reads_milliseconds_from_ints_floats_and_missing():
    ints = to_utc(pd.Series([0, 1500], dtype="int64"))
    assert ints.tolist() == [pd.Timestamp(0, tz="UTC"), pd.Timestamp(1_500_000_000, tz="UTC")]
    floats = to_utc(pd.Series([1500.4, None]))
    assert floats.iloc[0] == pd.Timestamp(1_500_000_000, tz="UTC") and pd.isna(floats.iloc[1])
    assert str(floats.dtype) == "datetime64[ns, UTC]"


def test_check_statuses_upper_cases_and_rejects_unknown():
    assert check_statuses("finished") == ["FINISHED"]
    assert check_statuses(["running", "KILLED"]) == ["RUNNING", "KILLED"]
    with pytest.raises(ValueError, match="status='done' is not a run status; use one of RUNNING"):
        check_statuses("done")


def _series_history(n: int, runs=("r1",), values=None) -> pd.DataFrame:
    rows = []
    for rid in runs:
        for i in range(n):
            rows.append((rid, "m", i, float(values[i] if values is not None else i), i))
    return finish_history(_points(rows), list(runs))


def test_downsample_keeps_short_series_whole_and_cuts_long_ones_to_buckets():
    short = _series_history(8)
    assert downsample(short, 8) is short
    assert downsample(empty_history(), 4).empty
    values = [0.0] * 40
    values[13] = 100.0  # a spike inside a bucket
    values[27] = -50.0
    long = _series_history(40, values=values)
    small = downsample(long, 8)  # 2 buckets of 20 points: first, last, min, max of each
    assert small[C.STEP].tolist() == [0, 13, 19, 20, 27, 39]
    assert small[C.VALUE].max() == 100.0 and small[C.VALUE].min() == -50.0


def test_downsample_cuts_each_series_and_leaves_short_ones():
    long = _series_history(40, runs=("a", "b"))
    short = _series_history(3, runs=("c",))
    both = finish_history(pd.concat([long.astype({C.RUN_ID: str, C.METRIC: str}),
                                     short.astype({C.RUN_ID: str, C.METRIC: str})]).assign(
        **{C.TIMESTAMP: lambda f: f[C.STEP]}), ["a", "b", "c"])
    out = downsample(both, 4)  # one bucket per long series: first and last (rising: also min and max)
    assert out.groupby(C.RUN_ID, observed=True)[C.STEP].apply(list).to_dict() == {
        "a": [0, 39], "b": [0, 39], "c": [0, 1, 2]}


def test_downsample_with_nan_values_keeps_the_finite_extremes():
    values = [np.nan] * 10 + [5.0] + [1.0] * 29
    out = downsample(_series_history(40, values=values), 4)
    assert out[C.STEP].tolist() == [0, 10, 11, 39]
    all_nan = downsample(_series_history(40, values=[np.nan] * 40), 4)
    assert all_nan[C.STEP].tolist() == [0, 39]


def test_finish_history_sorts_steps_within_one_series_and_types_float_steps():
    two = finish_history(_points([("r1", "a", 2, 2.0, 1), ("r1", "a", 1, 1.0, 1)]), ["r1"])
    assert two[C.STEP].tolist() == [1, 2]
    three = finish_history(_points([("r1", "a", 1, 1.0, 1), ("r1", "a", 3, 3.0, 1), ("r1", "a", 2, 2.0, 1)]), ["r1"])
    assert three[C.STEP].tolist() == [1, 2, 3]
    floats = _points([("r1", "a", 1.0, 1, 1), ("r1", "a", 2.0, 2, 1)]).astype({C.STEP: "float64", C.VALUE: "int64"})
    out = finish_history(floats, ["r1"])
    assert out[C.STEP].dtype == "int64" and out[C.VALUE].dtype == "float64"


def test_missing_params_stay_none_in_a_text_column_and_tag_values_are_kept():
    records = [_record(1, params={"algo": "ppo"}, tags={"team": "a"}), _record(2, params={}, tags={})]
    frame = runs_frame(records).set_index(C.NAME)
    assert frame.loc["r2", "params.algo"] is None and frame.loc["r1", "params.algo"] == "ppo"
    assert frame.loc["r1", "tags.team"] == "a"
    assert runs_frame(records).index.tolist() == [0, 1]


def test_to_utc_keeps_the_index_and_status_errors_list_every_status():
    assert to_utc(pd.Series([0, 1500], index=[5, 7])).index.tolist() == [5, 7]
    assert to_utc(pd.Series([0.0, 1500.0], index=[5, 7])).index.tolist() == [5, 7]
    with pytest.raises(ValueError, match=r"use one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED\.$"):
        check_statuses(["FINISHED", "done"])


def test_downsample_buckets_round_down_and_a_series_of_exactly_max_points_stays_whole():
    values = [0.0] * 40
    values[13], values[27] = 100.0, -50.0
    small = downsample(_series_history(40, values=values), 10)  # 10 // 4 = 2 buckets, not 2.5
    assert small[C.STEP].tolist() == [0, 13, 19, 20, 27, 39]
    assert list(small.columns) == C.HISTORY_COLUMNS and small.index.tolist() == list(range(6))
    long = _series_history(40, runs=("a",))
    exact = _series_history(4, runs=("c",))
    both = finish_history(pd.concat([long.astype({C.RUN_ID: str, C.METRIC: str}),
                                     exact.astype({C.RUN_ID: str, C.METRIC: str})]).assign(
        **{C.TIMESTAMP: lambda f: f[C.STEP]}), ["a", "c"])
    out = downsample(both, 4)
    assert out.groupby(C.RUN_ID, observed=True)[C.STEP].apply(list).to_dict() == {"a": [0, 39], "c": [0, 1, 2, 3]}


# ---------------------------------------------------------------- the helpers' own answers (small blocks)
# Expected values are worked out by hand from the codes and keys written below.

from trackbook.store.frames import _all_used, _is_sorted, _utc_array, is_stale


def test_all_used_sees_codes_in_every_block_and_ignores_missing():
    assert _all_used(np.array([0, 1, 2, 0, 1, 2, 3]), 4, block=2) is True  # 3 only in the last block
    assert _all_used(np.array([3, 0, 1, 2, 2, 2, 2]), 4, block=2) is True  # 3 only at the first code
    assert _all_used(np.array([0, 2, 0, 2]), 4, block=2) is False  # 1 and 3 unused
    assert _all_used(np.array([-1, 0, -1]), 1, block=2) is True  # -1: a missing label, no category
    assert _all_used(np.array([], dtype=np.int8), 0) is True
    assert _all_used(np.array([], dtype=np.int8), 2) is False


def test_is_sorted_compares_keys_primary_last_across_blocks():
    assert _is_sorted((np.array([2, 1]), np.array([0, 1]))) is True  # decided by the primary key
    assert _is_sorted((np.array([1, 2, 3, 4]), np.array([7, 7, 7, 7])), block=2) is True  # ties: next key
    assert _is_sorted((np.array([1, 2, 3, 2]), np.array([7, 7, 7, 7])), block=2) is False
    # pair 1 decided by the primary key, pair 2 tied on both later keys, then decided by the first
    assert _is_sorted((np.array([5, 0, 0]), np.array([0, 0, 0]), np.array([0, 1, 1]))) is True
    assert _is_sorted((np.array([0, 1, 0]), np.array([0, 0, 0]), np.array([0, 1, 1]))) is False


def test_utc_array_falls_back_to_the_public_constructor(monkeypatch):
    # a pandas release whose private constructor refuses our call: the public path (which itself
    # goes through the constructor, so only the first call fails) must give the same array
    original, calls = pd.arrays.DatetimeArray._simple_new, []

    def refuses_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("_simple_new")
        return original(*args, **kwargs)

    monkeypatch.setattr(pd.arrays.DatetimeArray, "_simple_new", refuses_once)
    out = _utc_array(np.array([0, 1_500_000_000], dtype="int64"))
    assert str(out.dtype) == "datetime64[ns, UTC]"
    assert list(out) == [pd.Timestamp(0, tz="UTC"), pd.Timestamp("1970-01-01 00:00:01.5", tz="UTC")]


def test_is_stale_is_strictly_past_stale_after_seconds():
    run = _record(1, status="RUNNING", start_time=1_000_000.0, end_time=None)
    assert is_stale(run, 1_000_000.0 + 900_000, 900) is False  # exactly 900 s: not yet
    assert is_stale(run, 1_000_000.0 + 900_001, 900) is True


def test_finish_history_drops_unused_metrics_sorts_them_and_keeps_missing_runs_missing():
    raw = _points([("r1", "loss", 1, 1.0, 1), ("r1", "acc", 1, 2.0, 1), (None, "loss", 0, 3.0, 1)])
    raw[C.METRIC] = pd.Categorical(["loss", "acc", "loss"], categories=["loss", "zeta", "acc"])
    out = finish_history(raw, ["r0", "r1"])
    assert list(out[C.METRIC].cat.categories) == ["acc", "loss"]  # "zeta" has no point
    assert out[C.METRIC].cat.categories.dtype == "str" and out[C.RUN_ID].cat.categories.dtype == "str"
    # a point of no run sorts first (code -1) and stays without a run
    assert out[C.RUN_ID].tolist()[1:] == ["r1", "r1"] and pd.isna(out[C.RUN_ID].iloc[0])
    assert out[C.METRIC].tolist() == ["loss", "acc", "loss"] and out[C.VALUE].tolist() == [3.0, 2.0, 1.0]
    nobody = finish_history(_points([(None, "m", 0, 1.0, 1), (None, "m", 1, 2.0, 1)]), ["r1"])
    assert nobody[C.RUN_ID].isna().all() and nobody[C.VALUE].tolist() == [1.0, 2.0]


def test_finish_history_keeps_labels_already_right_and_retypes_object_ones():
    ids = ["r2", "r1"]
    raw = _points([("r2", "m", 0, 1.0, 1), ("r1", "m", 0, 2.0, 1)])
    raw[C.RUN_ID] = pd.Categorical(["r2", "r1"], categories=pd.Index(ids, dtype="str"))
    out = finish_history(raw, ids)
    assert np.shares_memory(out[C.RUN_ID].array.codes, raw[C.RUN_ID].array.codes)  # kept, not copied
    raw[C.RUN_ID] = pd.Categorical(["r2", "r1"], categories=pd.Index(ids, dtype=object))
    out = finish_history(raw, ids)
    assert out[C.RUN_ID].cat.categories.dtype == "str" and out[C.RUN_ID].tolist() == ids
    assert empty_history()[C.RUN_ID].cat.categories.dtype == "str"
    plain = finish_history(_points([("r1", "m", 0, 1.0, 1)]).astype({C.METRIC: object}), ["r1"])
    assert plain[C.METRIC].cat.categories.dtype == "str"  # object labels come back as str categories
