"""LiveCurves and its pure parts: x axes, smoothing that carries on across polls,
grouping by study and chain, traces extended in place; checked against pandas' own
smoothing and against the points a real sqlite MLflow store holds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

import trackbook as tb
from trackbook import columns as C
from trackbook import layout as L
from trackbook.plots.live import (NO_PARENT, RAW, SMOOTHED, LiveCurves, Smoother, live_curves, run_groups,
                                  smoothing_spec, state_text, x_values)
from trackbook.plots._base import ema

T0 = pd.Timestamp("2026-03-01 12:00:00", tz="UTC")


def _points(rid: str, metric: str, steps, values=None) -> pd.DataFrame:
    steps = list(steps)
    values = np.sqrt(np.array(steps, dtype=float)) if values is None else np.asarray(values, dtype=float)
    return pd.DataFrame({C.RUN_ID: rid, C.METRIC: metric, C.STEP: np.array(steps, dtype=np.int64), C.VALUE: values,
                         C.TIMESTAMP: [T0 + pd.Timedelta(seconds=2 * s) for s in steps]})


def _runs(**columns) -> pd.DataFrame:
    ids = columns.pop("ids")
    base = {C.RUN_ID: ids, C.NAME: [f"run-{i}" for i in ids], C.STATUS: [C.RUNNING] * len(ids),
            C.STALE: [False] * len(ids), C.START_TIME: [T0] * len(ids), C.PARENT_RUN_ID: [None] * len(ids),
            C.BASE_RUN_ID: [None] * len(ids)}
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize("given, spec", [(None, None), (0, None), (0.6, ("ema", 0.6)), (("ema", 0.9), ("ema", 0.9)),
                                         (("rolling", 5), ("rolling", 5)), (("ema", 0), None)])
def test_smoothing_spec(given, spec):
    assert smoothing_spec(given) == spec


@pytest.mark.parametrize("bad", [1.0, -0.1, ("rolling", 0), ("rolling", 2.5), ("median", 3), "ema", True])
def test_bad_smoothing_says_what_is_accepted(bad):
    with pytest.raises(ValueError, match=r"\('rolling', 20\)"):
        smoothing_spec(bad)


@pytest.mark.parametrize("cuts", [[], [1], [3, 4, 10], list(range(1, 40))])
def test_smoothing_in_pieces_equals_smoothing_the_whole_series(cuts):
    values = np.random.default_rng(7).normal(size=40).cumsum()
    pieces = np.split(values, cuts)
    for spec, whole in ((("ema", 0.6), ema(values, 0.6)),
                        (("rolling", 5), pd.Series(values).rolling(5, min_periods=1).mean().to_numpy()),
                        (("rolling", 1), values)):
        smoother = Smoother(spec)
        np.testing.assert_allclose(np.concatenate([smoother.extend(p) for p in pieces]), whole, rtol=1e-12)
    # TensorBoard's EMA is pandas' debiased (adjust=True) exponential mean with alpha = 1 - weight
    np.testing.assert_allclose(ema(values, 0.6), pd.Series(values).ewm(alpha=0.4, adjust=True).mean(), rtol=1e-12)


def test_x_axes():
    pts = _points("a", "m", [0, 5, 10])
    assert x_values(pts, "step").tolist() == [0, 5, 10]
    assert x_values(pts, "step", offset=100).tolist() == [100, 105, 110]  # restarted at 0: shifted
    logged_offset = _points("a", "m", [100, 105])
    assert x_values(logged_offset, "step", offset=100).tolist() == [100, 105]  # logged offset already: kept
    assert x_values(_points("a", "m", [150]), "step", offset=100, first_step=100).tolist() == [150]  # a later poll
    assert x_values(pts, "relative_time", T0 - pd.Timedelta(seconds=3)).tolist() == [3.0, 13.0, 23.0]
    assert x_values(pts, "relative_time").tolist() == [0.0, 10.0, 20.0]  # no start known: the first point
    wall = x_values(pts, "wall_time")
    assert pd.to_datetime(wall).tolist() == [pd.Timestamp("2026-03-01 12:00:00") + pd.Timedelta(seconds=s)
                                             for s in (0, 10, 20)]
    with pytest.raises(ValueError, match="step, wall_time, relative_time"):
        x_values(pts, "epoch")


def test_groups_by_parent_and_by_chain():
    runs = _runs(ids=["p", "t1", "t2", "solo", "a", "b", "c", "x"],
                 parent_run_id=[None, "p", "p", None, None, None, None, None],
                 base_run_id=[None, None, None, None, None, "a", "b", "gone"])
    assert run_groups(runs, "parent") == {"p": "p", "t1": "p", "t2": "p", "solo": NO_PARENT, "a": NO_PARENT,
                                          "b": NO_PARENT, "c": NO_PARENT, "x": NO_PARENT}
    chains = run_groups(runs, "chain")
    assert chains["a"] == chains["b"] == chains["c"] == "a"  # c continues b continues a
    assert chains["x"] == "gone"  # a base outside the followed runs keys its continuations
    assert chains["t1"] == "t1" and run_groups(runs, None)["t1"] == "t1"
    cyclic = _runs(ids=["u", "v"], base_run_id=["v", "u"])
    assert set(run_groups(cyclic, "chain")) == {"u", "v"}  # a cycle ends, it does not loop
    with pytest.raises(ValueError, match="'parent'"):
        run_groups(runs, "seed")


def test_state_text():
    assert state_text(C.RUNNING, True) == "RUNNING (stale)"
    assert state_text(C.FINISHED, True) == "FINISHED" and state_text(C.RUNNING, False) == "RUNNING"


def _drawn(fig, role=RAW) -> dict[tuple[str, str], tuple[list, list]]:
    return {(t.meta["run_id"], t.meta["metric"]): (list(t.x), list(t.y)) for t in fig.data if t.meta["role"] == role}


def test_updates_extend_the_traces_in_place_and_rename_legends_on_state_changes():
    fig = go.FigureWidget()
    curves = LiveCurves(fig, None, smoothing=("rolling", 3), group_by="chain")
    runs = _runs(ids=["a", "b"], base_run_id=[None, "a"])
    assert curves.update(_points("a", "loss", [1, 2, 3]), runs) == 3
    raw_trace = fig.data[0]
    curves.update(pd.concat([_points("a", "loss", [4, 5]), _points("b", "loss", [6]), _points("b", "reward", [6, 7])]),
                  runs.assign(status=[C.FINISHED, C.RUNNING]))
    assert fig.data[0] is raw_trace  # the same trace object, extended: nothing was rebuilt
    raw = _drawn(fig)
    assert raw[("a", "loss")] == ([1, 2, 3, 4, 5], list(np.sqrt([1, 2, 3, 4, 5])))
    assert raw[("b", "reward")][0] == [6, 7]
    smoothed = _drawn(fig, SMOOTHED)
    np.testing.assert_allclose(smoothed[("a", "loss")][1],
                               pd.Series(np.sqrt([1, 2, 3, 4, 5])).rolling(3, min_periods=1).mean())
    assert len(fig.data) == 6  # (raw, smoothed) x (a/loss, b/loss, b/reward)
    assert [m.text for m in fig.layout.annotations] == ["loss", "reward"]  # a row per metric as they appear
    assert {t.yaxis for t in fig.data if t.meta["metric"] == "reward"} == {"y2"}
    assert curves.states == {"a": ["RUNNING", "FINISHED"], "b": ["RUNNING"]}
    assert {t.name for t in fig.data if t.meta["run_id"] == "a"} == {"run-a · FINISHED"}
    assert len({t.line.color for t in fig.data}) == 1  # one chain, one colour
    assert {t.legendgrouptitle.text for t in fig.data} == {"chain: run-a"}
    assert len(curves.history) == 8
    curves.update(_points("a", "loss", [1, 2, 3, 4, 5, 6]), reread=[("a", "loss")])  # a follower re-read it whole
    assert _drawn(fig)[("a", "loss")][0] == [1, 2, 3, 4, 5, 6]
    assert len(curves.history) == 9


def test_fixed_metrics_keep_their_rows_and_drop_the_others_and_nan():
    fig = go.Figure()
    curves = LiveCurves(fig, ["reward", "loss"])
    curves.update(pd.concat([_points("a", "loss", [1, 2], [np.nan, 1.0]), _points("a", "other", [1])]))
    assert [m.text for m in fig.layout.annotations] == ["reward", "loss"]
    assert _drawn(fig) == {("a", "loss"): ([2], [1.0])}
    assert fig.data[0].yaxis == "y2"


def test_redraw_with_other_options_keeps_the_points():
    fig = go.FigureWidget()
    curves = LiveCurves(fig, ["m"], smoothing=0.6)
    curves.update(_points("a", "m", [1, 2, 3]), _runs(ids=["a"]))
    curves.redraw(x="relative_time", smoothing=None)
    assert _drawn(fig) == {("a", "m"): ([2.0, 4.0, 6.0], list(np.sqrt([1, 2, 3])))}
    assert len(fig.data) == 1 and fig.layout.xaxis.title.text == "seconds since the run started"
    curves.update(_points("a", "m", [4]))
    assert _drawn(fig)[("a", "m")][0] == [2.0, 4.0, 6.0, 8.0]


def test_live_curves_draws_what_a_real_store_holds(tmp_path):
    uri = f"sqlite:///{tmp_path / 'live.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("live")
    parent = client.create_run(exp, run_name="study").info.run_id
    ids = [client.create_run(exp, run_name=f"trial-{i}", tags={L.TAG_MLFLOW_PARENT: parent}).info.run_id
           for i in range(2)]
    now = int(T0.timestamp() * 1000)
    for i, rid in enumerate(ids):
        client.log_batch(rid, metrics=[Metric("reward", float(s * (i + 1)), now + s, s) for s in range(50)])
    store = tb.connect(uri)
    runs = store.runs("live")
    fig = live_curves(store.history(runs), runs=runs, smoothing=("ema", 0.5), group_by="parent")
    for rid in ids:
        stored = client.get_metric_history(rid, "reward")
        raw = _drawn(fig)[(rid, "reward")]
        assert raw == ([m.step for m in stored], [m.value for m in stored])
        np.testing.assert_allclose(_drawn(fig, SMOOTHED)[(rid, "reward")][1], ema(np.array(raw[1]), 0.5))
    assert {t.legendgrouptitle.text for t in fig.data} == {"study: study"}
    with pytest.warns(UserWarning, match="no metric history"):
        live_curves(store.history(runs).iloc[:0], title="none")


def test_a_long_first_batch_is_down_sampled_for_drawing_and_kept_whole():
    fig = go.Figure()
    values = np.random.default_rng(3).normal(size=10_000)
    values[4321] = 50.0  # a spike survives
    curves = LiveCurves(fig, ["m"], smoothing=("rolling", 10), max_points=400)
    curves.update(_points("a", "m", range(10_000), values))
    raw, smoothed = _drawn(fig)[("a", "m")], _drawn(fig, SMOOTHED)[("a", "m")]
    assert len(raw[0]) <= 400 and raw[0][0] == 0 and raw[0][-1] == 9999 and 4321 in raw[0]
    assert len(curves.history) == 10_000
    whole = pd.Series(values).rolling(10, min_periods=1).mean().to_numpy()  # smoothed on every point
    np.testing.assert_allclose(smoothed[1], whole[raw[0]])
    curves.update(_points("a", "m", [10_000, 10_001]))  # new points: appended as they come
    assert _drawn(fig)[("a", "m")][0][-2:] == [10_000, 10_001]
