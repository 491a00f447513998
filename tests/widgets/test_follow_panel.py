"""FollowPanel and the follow switches, in the kernel, on a real sqlite MLflow store that
MLflow's own client writes to between polls; what is drawn is checked against
MLflow's get_metric_history."""

from __future__ import annotations

import gc
import time
import weakref

import numpy as np
import pytest
from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient

import trackbook as tb
from trackbook import columns as C
from trackbook import layout as L
from trackbook.plots.live import RAW, SMOOTHED
from trackbook.plots._base import ema
from trackbook.widgets import ChainExplorer, FollowPanel, RunBrowser
from trackbook.widgets._base import Panel
from trackbook.widgets.follow import Following


@pytest.fixture(autouse=True)
def no_debounce(monkeypatch):
    monkeypatch.setattr(Panel, "debounce", 0)


@pytest.fixture(scope="module")
def live_db(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('follow') / 'live.db'}"
    MlflowClient(uri).search_experiments()  # creates the tables once: seconds
    return uri


@pytest.fixture()
def live(live_db, request):
    """The store, MLflow's client on it, a fresh experiment (named after the test), a logger
    of ``n`` more points of a run."""
    client = MlflowClient(live_db)
    exp = client.create_experiment(request.node.name)
    logged: dict[str, int] = {}

    def log(rid: str, n: int, metrics=("reward", "loss")) -> None:
        start = logged.get(rid, 0)
        now = int(time.time() * 1000)
        client.log_batch(rid, metrics=[Metric(m, float(np.sin(s) + k), now, s) for s in range(start, start + n)
                                       for k, m in enumerate(metrics)])
        logged[rid] = start + n

    return tb.connect(live_db), client, exp, log


def _drawn(figure, role=RAW):
    return {(t.meta["run_id"], t.meta["metric"]): (list(t.x), list(t.y)) for t in figure.data
            if t.meta["role"] == role}


def _stored(client, rid, metric):
    points = client.get_metric_history(rid, metric)
    return [p.step for p in points], [p.value for p in points]


def test_a_panel_follows_new_points_new_runs_and_states(live):
    store, client, exp, log = live
    first = client.create_run(exp, run_name="first").info.run_id
    log(first, 5)
    panel = FollowPanel(store, client.get_experiment(exp).name, metrics=["reward"], interval=0, smoothing=("ema", 0.6))
    assert _drawn(panel.figure) == {(first, "reward"): _stored(client, first, "reward")}
    trace = panel.figure.data[0]
    log(first, 7)
    second = client.create_run(exp, run_name="second", tags={L.TAG_BASE_RUN: first}).info.run_id
    log(second, 3)
    update = panel.poll()
    assert update.new_runs == [second]
    assert panel.figure.data[0] is trace  # extended, not rebuilt
    drawn = _drawn(panel.figure)
    for rid in (first, second):
        assert drawn[(rid, "reward")] == _stored(client, rid, "reward")
        np.testing.assert_allclose(_drawn(panel.figure, SMOOTHED)[(rid, "reward")][1],
                                   ema(np.array(drawn[(rid, "reward")][1]), 0.6))
    assert "loss" not in {t.meta["metric"] for t in panel.figure.data}
    client.set_terminated(first, RunStatus.to_string(RunStatus.FINISHED))
    panel.poll()
    assert panel.states == {first: [C.RUNNING, C.FINISHED], second: [C.RUNNING]}
    table = panel.table.set_index(C.RUN_ID)
    assert table.loc[first, C.STATUS] == "RUNNING → FINISHED" and table.loc[first, "points"] == 12
    assert table.loc[second, "last step"] == 2
    assert "RUNNING → FINISHED" in panel.view.value and "first · FINISHED" in {t.name for t in panel.figure.data}
    assert "2 runs (1 running" in panel.view.value
    # JupyterLab's controls draw what was followed anew: seconds since each run's start, raw, by chain
    panel.x_axis.value = "relative_time"
    panel.smoothing.value = None
    panel.group_by.value = "chain"
    starts = panel.follower.poll().runs.set_index(C.RUN_ID)[C.START_TIME]
    for (rid, metric), (xs, ys) in _drawn(panel.figure).items():
        steps, values = _stored(client, rid, metric)
        assert ys == values
        stamps = [p.timestamp / 1000 for p in client.get_metric_history(rid, metric)]
        np.testing.assert_allclose(xs, [t - starts[rid].timestamp() for t in stamps], atol=1e-3)
    assert not _drawn(panel.figure, SMOOTHED)
    assert set(panel.table["group"]) == {"chain: first"}  # second continues first
    assert {t.legendgrouptitle.text for t in panel.figure.data} == {"chain: first"}


def test_the_timer_polls_until_stopped_and_a_dropped_panel_stops_by_itself(live):
    store, client, exp, log = live
    rid = client.create_run(exp, run_name="timed").info.run_id
    log(rid, 2)
    panel = FollowPanel(store, runs=[rid], interval=0.05, group_by="parent")
    log(rid, 4)
    deadline = time.monotonic() + 60
    while _drawn(panel.figure).get((rid, "loss"), ([], []))[0] != list(range(6)) or "s apart)" not in panel.view.value:
        assert time.monotonic() < deadline, "the timer never drew the new points"
        time.sleep(0.02)  # a poll interval: the loop ends on the condition above
    assert _drawn(panel.figure)[(rid, "reward")] == _stored(client, rid, "reward")
    panel.stop()
    assert not panel.following.running and "Stopped." in panel.view.value
    polls = len(panel.following.poll_times)
    log(rid, 1)
    panel.following._stop.wait(0.3)
    assert len(panel.following.poll_times) == polls

    other = FollowPanel(store, runs=[rid], interval=0.05)
    thread = other.following._thread
    ref = weakref.ref(other.following)
    del other
    gc.collect()
    thread.join(timeout=30)
    assert ref() is None and not thread.is_alive()


def test_a_store_error_is_a_message_and_polling_goes_on(live):
    store, client, exp, log = live
    rid = client.create_run(exp, run_name="flaky").info.run_id
    log(rid, 1)
    panel = FollowPanel(store, runs=[rid], interval=0)
    real = panel.follower.poll
    failures = iter([RuntimeError("server went away")])

    def flaky():
        for exc in failures:
            raise exc
        return real()

    panel.follower.poll = flaky
    panel.following.interval = 0.02
    panel.start()
    log(rid, 2)
    deadline = time.monotonic() + 60
    while len(_drawn(panel.figure)[(rid, "reward")][0]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)  # a poll interval: the loop ends on the condition above
    panel.stop()
    assert panel.figure.data  # the error left the figure as it was, and the next poll drew on


def _finished_base(client, exp: str, log, timesteps: int) -> str:
    """A FINISHED chain root with ``timesteps`` points and its total_timesteps logged."""
    base = client.create_run(exp, run_name="base").info.run_id
    log(base, timesteps)
    client.log_batch(base, metrics=[Metric(L.METRIC_TOTAL_TIMESTEPS, float(timesteps), 0, timesteps - 1)])
    client.set_terminated(base)
    return base


def test_run_browser_and_chain_explorer_follow_switches(live):
    store, client, exp, log = live
    base = _finished_base(client, exp, log, 4)
    cont = client.create_run(exp, run_name="cont", tags={L.TAG_BASE_RUN: base}).info.run_id
    log(cont, 2)

    browser = RunBrowser(store, client.get_experiment(exp).name, metrics=["reward"])
    browser.follow.interval = 0
    assert browser.follow.following is None
    browser.follow.checkbox.value = True
    assert isinstance(browser.follow.following, Following)
    log(cont, 3)
    browser.follow.following.poll()
    drawn = _drawn(browser.figure)
    assert drawn[(cont, "reward")] == _stored(client, cont, "reward")
    assert drawn[(base, "reward")] == _stored(client, base, "reward")
    browser.follow.checkbox.value = False
    assert browser.follow.following is None
    assert all(t.meta is None for t in browser.figure.data)  # learning_curves again

    explorer = ChainExplorer(store, cont, metrics=["reward"])
    explorer.follow.interval = 0
    explorer.follow.checkbox.value = True
    log(cont, 1)
    explorer.follow.following.poll()
    drawn = _drawn(explorer.figure)
    offset = int(explorer.chain.runs.set_index(C.RUN_ID).loc[cont, C.OFFSET])
    assert offset == 4  # the base logged 4 timesteps
    steps, values = _stored(client, cont, "reward")
    assert drawn[(cont, "reward")] == ([s + offset for s in steps], values)
    explorer.follow.checkbox.value = False
    assert explorer.follow.following is None


def test_chain_explorer_follows_on_the_chains_axis_whichever_way_links_count_steps(live):
    """A link logged offset already (trackbook's callback, SB3 with reset_num_timesteps=False)
    is drawn where it was logged, one that restarts at 0 is shifted: both where
    tb.chain(...).history() puts them."""
    store, client, exp, log = live
    base = _finished_base(client, exp, log, 6)
    offset_logged = client.create_run(exp, run_name="logged-offset", tags={L.TAG_BASE_RUN: base}).info.run_id
    client.log_batch(offset_logged, metrics=[Metric("reward", float(s) / 10, 0, s) for s in range(6, 10)]
                     + [Metric(L.METRIC_TOTAL_TIMESTEPS, 10.0, 0, 9)])
    client.set_terminated(offset_logged)
    restarted = client.create_run(exp, run_name="restarted", tags={L.TAG_BASE_RUN: offset_logged}).info.run_id
    client.log_batch(restarted, metrics=[Metric("reward", float(s), 0, s) for s in range(3)])

    explorer = ChainExplorer(store, restarted, metrics=["reward"])
    explorer.follow.interval = 0
    explorer.follow.checkbox.value = True
    explorer.follow.following.poll()
    drawn = _drawn(explorer.figure)
    truth = tb.chain(store, restarted).history("reward")
    for rid in (base, offset_logged, restarted):
        mine = truth[truth[C.RUN_ID] == rid].sort_values(C.GLOBAL_STEP)
        assert drawn[(rid, "reward")] == (mine[C.GLOBAL_STEP].tolist(), mine[C.VALUE].tolist()), rid
    assert drawn[(offset_logged, "reward")][0] == [6, 7, 8, 9]  # not 12..15
    assert drawn[(restarted, "reward")][0] == [10, 11, 12]
    explorer.follow.checkbox.value = False
