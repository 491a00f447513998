"""The write queue on its own: order, batches, retries and spilling, delivered to a list.

Every wait here is for something that takes milliseconds; it is bounded by ``PATIENCE``
(generous on a loaded machine) and ends at once when the delivery thread has died or
failed on anything but the test store's own error, so a broken outbox fails in
milliseconds too, instead of waiting out a timeout.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings

import pytest

from trackbook.tracking._outbox import METRICS, Op, Outbox

PATIENCE = 10.0
#: Retries milliseconds apart, so a failing store costs no seconds of backoff.
FAST = {"retry_backoff": (0.002, 0.02)}


class StoreDown(ConnectionError):
    """What the test store raises; any other error in ``last_error`` is the outbox's own."""


class Store:
    """Takes operations, failing the first ``fail`` deliveries.

    ``up_after``: seconds after which it takes everything whatever ``fail`` says, so that a
    broken wait (one that should time out while the store is down) ends instead of hanging.
    ``burn``: CPU seconds each delivery spends (summed in ``cpu``, by this thread's clock).
    """

    def __init__(self, fail: int = 0, *, message: str = "store down\nsecond line", up_after: float | None = None,
                 burn: float = 0.0) -> None:
        self.fail, self.message, self.burn = fail, message, burn
        self.up_at = None if up_after is None else time.monotonic() + up_after
        self.got, self.calls, self.cpu = [], [], 0.0

    def __call__(self, op: Op) -> None:
        self.calls.append(time.monotonic())
        started = time.thread_time()
        while time.thread_time() - started < self.burn:
            pass
        self.cpu += time.thread_time() - started
        if self.fail and (self.up_at is None or time.monotonic() < self.up_at):
            self.fail -= 1
            raise StoreDown(self.message)
        self.got.append((op.kind, op.payload))


def pts(key, steps):
    return [[key, float(s), 1000 + s, s] for s in steps]


def broken(box: Outbox) -> bool:
    """The delivery thread died, or a delivery failed on something the test store did not raise."""
    foreign = box.last_error is not None and not box.last_error.startswith(f"{StoreDown.__name__}: ")
    return foreign or not box._thread.is_alive()


def settled(box: Outbox) -> bool:
    """Wait until everything queued is delivered (``flush`` in short steps); False if it breaks."""
    deadline = time.monotonic() + PATIENCE
    while not box.flush(0.005):
        if broken(box) or time.monotonic() > deadline:
            return False
    return True


def closed(box: Outbox) -> bool:
    """``settled``, then ``close``: True, and the thread gone."""
    return settled(box) and box.close(timeout=PATIENCE) and not box._thread.is_alive()


def wait_for(condition, box: Outbox) -> bool:
    """Wait, without waking the thread, until ``condition()``; False if the box breaks first."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if broken(box) or time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_points_are_batched_in_order_and_other_writes_keep_their_place():
    store = Store()
    box = Outbox(store, batch_size=3, flush_interval=60)
    box.put("params", {"lr": 0.1})
    box.put_points(pts("a", [0, 1]))
    box.put_points(pts("a", [2, 3]))
    box.put_points([])
    box.put("tags", {"t": "x"})
    box.put_points(pts("b", [0]))
    assert box.pending == 5
    assert closed(box)
    assert store.got == [("params", {"lr": 0.1}), (METRICS, pts("a", [0, 1])), (METRICS, pts("a", [2, 3])),
                         ("tags", {"t": "x"}), (METRICS, pts("b", [0]))]
    assert box.delivered_points == 5 and box.pending == 0 and not box.failing


def test_small_point_writes_coalesce_up_to_the_batch_size():
    store = Store()
    box = Outbox(store, batch_size=4, flush_interval=60)
    for s in range(6):
        box.put_points(pts("a", [s]))
    assert closed(box)
    assert [len(p) for _, p in store.got] == [4, 2]
    assert [p[3] for _, batch in store.got for p in batch] == list(range(6))
    big = Store()
    box = Outbox(big, batch_size=2, flush_interval=60)
    box.put_points(pts("a", range(5)))  # one write larger than a batch is sent in pieces
    assert closed(box)
    assert [len(p) for _, p in big.got] == [2, 2, 1]


def test_by_default_batches_are_as_large_as_mlflow_takes():
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH  # seconds to import: only here

    store = Store()
    box = Outbox(store)
    box.put_points(pts("a", range(2 * MAX_METRICS_PER_BATCH + 1)))
    assert closed(box)
    assert [len(p) for _, p in store.got] == [MAX_METRICS_PER_BATCH, MAX_METRICS_PER_BATCH, 1]


def test_writes_go_out_unasked_after_the_flush_interval_and_a_full_batch_at_once():
    store = Store()
    box = Outbox(store, batch_size=3, flush_interval=0.02)
    box.put_points(pts("a", [0]))  # under a batch: it waits for the interval, not for a flush
    assert wait_for(lambda: store.got == [(METRICS, pts("a", [0]))], box)
    assert closed(box)
    full = Store()
    box = Outbox(full, batch_size=3, flush_interval=60)
    box.put_points(pts("a", [0, 1]))
    box.put_points(pts("a", [2]))  # three queued points are a batch: sent now, not in a minute
    assert wait_for(lambda: full.got == [(METRICS, pts("a", [0, 1, 2]))], box)
    assert closed(box)


def test_writes_after_a_delivery_are_delivered_too():
    store = Store()
    box = Outbox(store, flush_interval=60)
    for step in range(3):
        box.put("tags", {"step": step})
        assert settled(box)
        assert store.got[-1] == ("tags", {"step": step})
    assert closed(box) and len(store.got) == 3


def test_a_failing_store_warns_once_keeps_everything_and_delivers_it_later(caplog):
    caplog.set_level(logging.WARNING, logger="trackbook.tracking")
    store = Store(fail=2)
    box = Outbox(store, batch_size=10, flush_interval=60, **FAST)
    assert box.last_error is None and not box.failing
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        box.put("params", {"lr": 1})
        box.put_points(pts("a", [0, 1]))
        assert settled(box)
    took = time.monotonic() - started
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "cannot write to the tracking store (StoreDown: store down)" in messages[0]
    assert box.last_error == "StoreDown: store down"
    assert store.got == [("params", {"lr": 1}), (METRICS, pts("a", [0, 1]))]
    assert not box.failing and box.delivered_points == 2
    [back] = [r.getMessage() for r in caplog.records if "reachable" in r.getMessage()]
    seconds = re.fullmatch(r"trackbook: tracking store reachable again after (\d+)s; delayed writes delivered\.",
                           back)
    assert seconds and int(seconds[1]) <= math.ceil(took)
    assert closed(box)


def test_last_error_is_the_exception_and_its_first_line_cut_at_300_characters():
    long = "x" * 400
    for message, expected in [("", "StoreDown: "), ("down\nmore", "StoreDown: down"),
                              (long, ("StoreDown: " + long)[:300])]:
        store = Store(fail=1, message=message)
        box = Outbox(store, flush_interval=60, **FAST)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            box.put("params", {"a": 1})
            assert settled(box)
        assert box.last_error == expected and len(expected) <= 300
        assert store.got == [("params", {"a": 1})]
        assert closed(box)


def test_retries_wait_the_backoff_doubling_to_its_longest_and_starting_over_after_a_success():
    store = Store(fail=4)
    box = Outbox(store, flush_interval=60, retry_backoff=(0.01, 0.04))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box.put("params", {"a": 1})  # retried after each backoff, asked by nobody (no flush)
        assert wait_for(lambda: len(store.got) == 1, box)
        store.fail = 2
        box.put("tags", {"t": "x"})
        assert wait_for(lambda: len(store.got) == 2, box)
    assert store.got == [("params", {"a": 1}), ("tags", {"t": "x"})]
    gaps = [b - a for a, b in zip(store.calls, store.calls[1:])]
    assert len(gaps) == 7
    at_least = [0.01, 0.02, 0.04, 0.04, None, 0.01, 0.02]  # a sleep never ends early
    assert all(want is None or gap >= want * 0.99 for gap, want in zip(gaps, at_least)), gaps
    assert closed(box)


def test_delivery_cpu_counts_the_cpu_seconds_of_every_try():
    store = Store(fail=3, burn=0.03)
    box = Outbox(store, flush_interval=60, **FAST)
    assert box.delivery_cpu == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box.put("params", {"a": 1})
        box.put("tags", {"t": "x"})
        assert settled(box)
    assert len(store.calls) == 5  # three failed tries, then both writes
    # the store's own clock inside each send, plus the queue's bookkeeping around it
    assert store.cpu <= box.delivery_cpu < store.cpu + 0.1, (store.cpu, box.delivery_cpu)
    assert closed(box)


def test_the_delivery_thread_is_named_a_daemon_and_gone_after_close():
    boxes = {"trackbook-outbox-mlflow": Outbox(Store(), name="mlflow", flush_interval=60),
             "trackbook-outbox-": Outbox(Store(), flush_interval=60)}
    for name, box in boxes.items():
        assert box._thread.name == name
        assert box._thread.daemon  # a process whose store is down can still exit
        box.put("params", {"a": 1})
        assert closed(box)
        assert not box._thread.is_alive()


def test_a_close_that_runs_out_of_time_stops_the_thread_unless_told_what_to_do_once_drained(caplog):
    caplog.set_level(logging.WARNING, logger="trackbook.tracking")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # no on_drained: close gives up on what is queued and stops the thread
        store = Store(fail=10**9, up_after=PATIENCE / 2)
        box = Outbox(store, flush_interval=60, **FAST)
        box.put("params", {"a": 1})
        assert box.close(timeout=0.01) is False
        assert not box._thread.is_alive() and store.got == []

        # with on_drained: the thread goes on retrying, delivers, calls it once and stops
        drained = []
        store = Store(fail=10**9, up_after=PATIENCE / 2)
        box = Outbox(store, flush_interval=60, **FAST)
        box.put("params", {"a": 1})
        assert box.close(timeout=0.01, on_drained=lambda: drained.append(list(store.got))) is False
        assert box._thread.is_alive() and drained == []
        store.fail = 0
        box._thread.join(PATIENCE)
        assert drained == [[("params", {"a": 1})]] and not box._thread.is_alive()

        # an on_drained that raises is logged, and the thread stops all the same
        def fail():
            raise OSError("disk gone")

        store = Store(fail=10**9)
        box = Outbox(store, flush_interval=60, **FAST)
        box.put("params", {"a": 1})
        assert box.close(timeout=0, on_drained=fail) is False
        store.fail = 0
        box._thread.join(PATIENCE)
        assert not box._thread.is_alive() and store.got == [("params", {"a": 1})]
    assert [r.getMessage() for r in caplog.records if "journal" in r.getMessage()] == [
        "trackbook: finishing a delivered journal failed: disk gone"]

    # everything delivered in time: on_drained is not needed, close says so and stops the thread
    called = []
    box = Outbox(Store(), flush_interval=60)
    box.put("params", {"a": 1})
    assert settled(box)
    assert box.close(timeout=PATIENCE, on_drained=lambda: called.append(1)) is True
    assert not box._thread.is_alive() and called == []


def test_past_the_memory_bound_the_oldest_writes_spill_to_disk_and_come_back_first(tmp_path):
    store = Store(fail=10**9)
    box = Outbox(store, batch_size=100, flush_interval=60, max_points_in_memory=4, spill_dir=tmp_path / "spill",
                 **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(7):
            box.put_points(pts("a", [s]))
    segments = sorted((tmp_path / "spill").glob("segment-*.jsonl"))
    assert segments
    spilled = [json.loads(line) for seg in segments for line in seg.read_text().splitlines()]
    assert all(line[0] == METRICS for line in spilled)
    assert box._points_in_memory <= 4
    store.fail = 0
    assert closed(box)
    assert [p[3] for _, batch in store.got for p in batch] == list(range(7))  # nothing lost, nothing reordered
    assert not list((tmp_path / "spill").glob("segment-*.jsonl"))


def test_op_size_counts_points_for_metrics_and_one_for_the_rest():
    assert Op(METRICS, pts("a", [0, 1, 2])).size == 3 and Op("params", {"a": 1, "b": 2}).size == 1


@pytest.mark.parametrize("n", [1, 3])
def test_flush_returns_false_while_the_store_is_down(n):
    store = Store(fail=10**9, up_after=PATIENCE / 2)
    box = Outbox(store, flush_interval=60, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box.put_points(pts("a", range(n)))
        assert not box.flush(timeout=0.01)
        assert wait_for(lambda: box.failing, box)
        assert box.pending == 1
    store.fail = 0
    assert closed(box) and len(store.got) == 1


def test_a_spill_moves_the_oldest_half_of_the_bound_as_kind_payload_seq_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="trackbook.tracking")
    spill = tmp_path / "not-yet" / "spill"  # made, parents too, at the first spill
    store = Store(fail=10**9)
    box = Outbox(store, batch_size=100, flush_interval=60, max_points_in_memory=4, spill_dir=spill, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box.put("params", {"lr": 1})  # wakes the thread: it takes this one in flight and fails on it
        assert wait_for(lambda: box.failing, box)
        for s in range(5):
            box.put_points(pts("a", [s]))  # the 5th passes the bound of 4: points 0 and 1 go to disk
        assert box._points_in_memory == 3
        [first] = sorted(spill.glob("segment-*.jsonl"))
        assert [json.loads(line) for line in first.read_text().splitlines()] == [
            [METRICS, pts("a", [0]), 0], [METRICS, pts("a", [1]), 0]]
        assert [r.getMessage() for r in caplog.records if "spilled" in r.getMessage()] == [
            f"trackbook: store unreachable, 2 queued points spilled to {first}"]
        box.put("tags", {"t": "x"})
        box.put_points(pts("b", [0, 1, 2]))  # 7 in memory: the oldest 2 points (2 and 3) leave
    segments = sorted(spill.glob("segment-*.jsonl"))
    assert len(segments) == 2 and segments[0] == first
    assert [json.loads(line) for line in segments[1].read_text().splitlines()] == [
        [METRICS, pts("a", [2]), 0], [METRICS, pts("a", [3]), 0]]
    assert box._points_in_memory == 5 and box.pending == 1 + 3 + 2  # in flight, three queued, two segments
    store.fail = 0
    assert closed(box)
    # each segment comes back as it went (one batch each), before the queue, in order
    assert store.got == [("params", {"lr": 1}), (METRICS, pts("a", [0, 1])), (METRICS, pts("a", [2, 3])),
                         (METRICS, pts("a", [4])), ("tags", {"t": "x"}), (METRICS, pts("b", [0, 1, 2]))]
    assert box.delivered_points == 8 and box.pending == 0 and not list(spill.iterdir())


def test_an_odd_bound_spills_its_smaller_half(tmp_path):
    spill = tmp_path / "spill"
    store = Store()
    box = Outbox(store, batch_size=100, flush_interval=60, max_points_in_memory=5, spill_dir=spill)
    for s in range(6):
        box.put_points(pts("a", [s]))  # the 6th passes the bound of 5: 5 // 2 = 2 points go to disk
    [segment] = spill.glob("segment-*.jsonl")
    assert [json.loads(line)[1] for line in segment.read_text().splitlines()] == [pts("a", [0]), pts("a", [1])]
    assert closed(box)
    assert [p[3] for _, batch in store.got for p in batch] == list(range(6))


def test_delivered_points_leave_the_memory_count_so_a_store_that_is_up_never_spills(tmp_path):
    spill = tmp_path / "spill"
    store = Store()
    box = Outbox(store, batch_size=100, flush_interval=60, max_points_in_memory=10, spill_dir=spill)
    for step in range(4):
        for key in "abc":  # three writes of two points: one batch of 6, well under the bound of 10
            box.put_points(pts(key, [2 * step, 2 * step + 1]))
        assert settled(box)
    assert not spill.exists()
    assert [len(batch) for _, batch in store.got] == [6, 6, 6, 6]
    assert closed(box)


def test_without_a_spill_dir_segments_go_to_a_new_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store = Store(fail=10**9)
    box = Outbox(store, name="mlflow", batch_size=100, flush_interval=60, max_points_in_memory=2, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(3):
            box.put_points(pts("a", [s]))
    [folder] = tmp_path.glob("trackbook-spill-mlflow-*")
    [segment] = folder.glob("segment-*.jsonl")
    assert [json.loads(line)[1] for line in segment.read_text().splitlines()] == [pts("a", [0])]
    store.fail = 0
    assert closed(box)
    assert [p[3] for _, batch in store.got for p in batch] == [0, 1, 2]


def test_with_a_journal_spills_go_inside_it_and_carry_the_journal_seq(tmp_path):
    from trackbook.tracking._journal import Journal, read

    journal = Journal("sqlite:///x.db", {}, root=tmp_path / "journals")
    store = Store(fail=10**9)
    box = Outbox(store, batch_size=100, flush_interval=60, max_points_in_memory=2, journal=journal, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box.put("create", {"experiment": "e"})
        assert wait_for(lambda: box.failing, box)
        for s in range(3):
            box.put_points(pts("a", [s]))
    [segment] = (journal.folder / "spill").glob("segment-*.jsonl")
    assert [json.loads(line) for line in segment.read_text().splitlines()] == [[METRICS, pts("a", [0]), 2]]
    assert box.pending == 4 and journal.acked == 0
    store.fail = 0
    assert closed(box)
    assert journal.acked == 4 and box.pending == 0
    assert [e.seq for e in read(journal.folder).entries] == [1, 2, 3, 4]
    journal.close(complete=True)


def test_offline_writes_go_only_to_the_journal_and_nothing_waits_for_a_delivery(tmp_path):
    from trackbook.tracking._journal import Journal, read

    journal = Journal("sqlite:///x.db", {}, root=tmp_path / "journals")
    box = Outbox(None, journal=journal)
    box.put("create", {"experiment": "e"})
    box.put_points(pts("a", [0, 1]))
    assert box.flush(timeout=0)  # nothing is for this process to deliver
    assert box.pending == 2 and [e.seq for e in read(journal.folder).entries] == [1, 2]
    assert box.close() is False  # nothing was delivered
    journal.close(complete=False)
    assert Outbox(None).close() is False  # without a journal too
