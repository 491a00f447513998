"""Trackers without SB3: backend choice, health checks, batching, exactly-once delivery."""

from __future__ import annotations

from pathlib import Path

import pytest

import trackbook as tb
from trackbook.servers import free_port
from trackbook import columns as C
from trackbook.tracking import health_check, make_tracker


def test_health_checks(tmp_path: Path):
    ok = health_check(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert ok.ok and ok.problems == []
    down = health_check(f"http://127.0.0.1:{free_port()}")
    assert not down.ok and "not reachable" in down.problems[0]
    aim = health_check(f"aim://{tmp_path / 'aim'}")
    assert aim.ok
    (tmp_path / "a-file").write_text("not a folder")
    blocked = health_check(f"aim://{tmp_path / 'a-file' / 'aim'}")
    assert not blocked.ok and "not a folder" in blocked.problems[0]


@pytest.mark.parametrize("backend", ["mlflow", "aim"])
def test_tracker_round_trip(tmp_path: Path, backend: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if backend == "mlflow" else f"aim://{tmp_path / 'aim'}"
    with make_tracker(uri) as tracker:
        parent = tracker.start_run("study", name="parent", params={"n_trials": 2})
    child = make_tracker(uri)
    run_id = child.start_run("study", name="child", params={"lr": 0.01, "layers": [64, 64]},
                             tags={"note": "<b>x</b>"}, parent_run_id=parent)
    for step in range(2500):  # several batches
        child.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 2500}, step)
    child.log_text("a: 1\n", "config.yaml")
    assert child.end_run(C.FAILED, final_metrics={"objective": float("nan")}, step=2500)

    store = tb.connect(uri)
    run = store.run(run_id)
    assert run[C.STATUS] == C.FAILED and run[C.PARENT_RUN_ID] == parent and run[C.NAME] == "child"
    assert run["params.lr"] == 0.01 and run["params.layers"] == "[64, 64]" and run["tags.note"] == "<b>x</b>"
    hist = store.history(run_id, ["loss", "acc", "objective"])
    assert hist.groupby("metric", observed=True).size().to_dict() == {"acc": 2500, "loss": 2500, "objective": 1}
    assert hist[hist[C.METRIC] == "objective"][C.VALUE].isna().all()
    assert list(store.artifacts(run_id)[C.PATH]) == ["config.yaml"]
    assert store.run(parent)[C.STATUS] == C.FINISHED


def test_replayed_batches_are_not_duplicated(tmp_path: Path):
    """A batch the store took but whose answer was lost is sent again: still one copy."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = make_tracker(uri)
    run_id = tracker.start_run("dups")
    from trackbook.layout import OpKind
    from trackbook.tracking._outbox import Op

    batch = Op(OpKind.METRICS, [["loss", 0.5, 1000, s] for s in range(10)])
    tracker._send(batch)
    tracker._send(batch)  # the replay
    tracker.end_run()
    assert len(tb.connect(uri).history(run_id, "loss")) == 10


def test_start_run_while_the_store_is_down_does_not_raise(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    tracker = make_tracker(f"http://127.0.0.1:{free_port()}", flush_interval=0.1)
    with pytest.warns(RuntimeWarning, match="cannot write to the tracking store"):
        assert tracker.start_run("nowhere", wait=2) is None
        tracker.log_metrics({"loss": 1.0}, 0)
    assert tracker.delivering
    assert tracker.end_run(timeout=1) is False  # never raises; says it is not delivered


def test_a_spill_while_a_batch_is_in_flight_loses_and_repeats_nothing(tmp_path: Path):
    """The CI failure of stop 10: a spill moved the batch being delivered to disk, so its
    success popped newer points from memory (lost) and the spilled copy went out again."""
    import threading

    from trackbook.tracking._outbox import Outbox

    delivered: list[int] = []
    in_flight, release = threading.Event(), threading.Event()

    def send(op):
        if not delivered and not release.is_set():
            in_flight.set()
            release.wait(10)  # the first batch is on the wire while the producer spills
        delivered.extend(p[3] for p in op.payload)

    box = Outbox(send, batch_size=10, flush_interval=60, max_points_in_memory=20, spill_dir=tmp_path / "spill")
    for step in range(10):
        box.put_points([["x", 0.0, 0, step]])
    box.flush(0)
    assert in_flight.wait(10)
    for step in range(10, 100):  # several spills happen while batch 0..9 is in flight
        box.put_points([["x", 0.0, 0, step]])
    assert any((tmp_path / "spill").iterdir())
    release.set()
    assert box.close(timeout=20)
    assert delivered == list(range(100))  # every point once, in order


def test_writes_the_store_refuses_for_good_are_left_out_not_retried_for_ever(tmp_path: Path):
    import warnings

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # caught from the start: the delivery thread may warn of a refusal before end_run is called
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = make_tracker(uri)
        run_id = tracker.start_run("refused", params={"lr (x)": 1, "gamma": 0.9})  # MLflow refuses the name
        tracker.log_metrics({"ok": 1.0, "bad (x)": 2.0}, step=1)
        tracker.log_params({"gamma": 0.5})  # MLflow refuses changing a param
        tracker.log_metrics({"ok": 2.0}, step=2)
        assert tracker.end_run(C.FINISHED, timeout=60)  # nothing held behind the refused writes
    refused = sorted(str(w.message).split("'")[1] for w in caught if "refused" in str(w.message))
    assert refused == ["bad (x)", "gamma", "lr (x)"]
    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == C.FINISHED and run.data.params == {"gamma": "0.9"}
    assert [m.value for m in MlflowClient(uri).get_metric_history(run_id, "ok")] == [1.0, 2.0]
