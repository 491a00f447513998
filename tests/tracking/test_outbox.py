"""The write queue on its own: order, batches, retries and spilling, delivered to a list."""

from __future__ import annotations

import json
import logging
import warnings

import pytest

from trackbook.tracking._outbox import METRICS, Op, Outbox


class Store:
    """Takes operations, failing the first ``fail`` deliveries."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.got = fail, []

    def __call__(self, op: Op) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("store down\nsecond line")
        self.got.append((op.kind, op.payload))


def pts(key, steps):
    return [[key, float(s), 1000 + s, s] for s in steps]


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
    assert box.close(timeout=30)
    assert store.got == [("params", {"lr": 0.1}), (METRICS, pts("a", [0, 1])), (METRICS, pts("a", [2, 3])),
                         ("tags", {"t": "x"}), (METRICS, pts("b", [0]))]
    assert box.delivered_points == 5 and box.pending == 0 and not box.failing


def test_small_point_writes_coalesce_up_to_the_batch_size():
    store = Store()
    box = Outbox(store, batch_size=4, flush_interval=60)
    for s in range(6):
        box.put_points(pts("a", [s]))
    assert box.close(timeout=30)
    assert [len(p) for _, p in store.got] == [4, 2]
    assert [p[3] for _, batch in store.got for p in batch] == list(range(6))
    big = Store()
    box = Outbox(big, batch_size=2, flush_interval=60)
    box.put_points(pts("a", range(5)))  # one write larger than a batch is sent in pieces
    assert box.close(timeout=30)
    assert [len(p) for _, p in big.got] == [2, 2, 1]


def test_a_failing_store_warns_once_keeps_everything_and_delivers_it_later():
    store = Store(fail=2)
    box = Outbox(store, batch_size=10, flush_interval=60)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        box.put("params", {"lr": 1})
        box.put_points(pts("a", [0, 1]))
        assert box.flush(timeout=30)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "cannot write to the tracking store (ConnectionError: store down)" in messages[0]
    assert box.last_error == "ConnectionError: store down"
    assert store.got == [("params", {"lr": 1}), (METRICS, pts("a", [0, 1]))]
    assert not box.failing and box.delivered_points == 2
    box.close(timeout=5)


def test_past_the_memory_bound_the_oldest_writes_spill_to_disk_and_come_back_first(tmp_path):
    store = Store(fail=10**9)
    box = Outbox(store, batch_size=100, flush_interval=60, max_points_in_memory=4, spill_dir=tmp_path / "spill")
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
    assert box.close(timeout=60)
    assert [p[3] for _, batch in store.got for p in batch] == list(range(7))  # nothing lost, nothing reordered
    assert not list((tmp_path / "spill").glob("segment-*.jsonl"))


def test_op_size_counts_points_for_metrics_and_one_for_the_rest():
    assert Op(METRICS, pts("a", [0, 1, 2])).size == 3 and Op("params", {"a": 1, "b": 2}).size == 1


@pytest.mark.parametrize("n", [1, 3])
def test_flush_returns_false_while_the_store_is_down(n):
    store = Store(fail=10**9)
    box = Outbox(store, flush_interval=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box.put_points(pts("a", range(n)))
        assert not box.flush(timeout=0.5)
        assert box.failing and box.pending == 1
    store.fail = 0
    assert box.close(timeout=30) and len(store.got) == 1


def test_a_spill_moves_the_oldest_half_of_the_bound_as_kind_payload_seq_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="trackbook.tracking")
    spill = tmp_path / "not-yet" / "spill"  # made, parents too, at the first spill
    store = Store(fail=10**9)
    box = Outbox(store, batch_size=100, flush_interval=60, max_points_in_memory=4, spill_dir=spill)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box.put("params", {"lr": 1})  # wakes the thread: it takes this one in flight and fails on it
        assert not box.flush(timeout=0.5)
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
    assert box.close(timeout=60)
    # each segment comes back as it went (one batch each), before the queue, in order
    assert store.got == [("params", {"lr": 1}), (METRICS, pts("a", [0, 1])), (METRICS, pts("a", [2, 3])),
                         (METRICS, pts("a", [4])), ("tags", {"t": "x"}), (METRICS, pts("b", [0, 1, 2]))]
    assert box.delivered_points == 8 and box.pending == 0 and not list(spill.iterdir())


def test_without_a_spill_dir_segments_go_to_a_new_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store = Store(fail=10**9)
    box = Outbox(store, name="mlflow", batch_size=100, flush_interval=60, max_points_in_memory=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(3):
            box.put_points(pts("a", [s]))
    [folder] = tmp_path.glob("trackbook-spill-mlflow-*")
    [segment] = folder.glob("segment-*.jsonl")
    assert [json.loads(line)[1] for line in segment.read_text().splitlines()] == [pts("a", [0])]
    store.fail = 0
    assert box.close(timeout=60)
    assert [p[3] for _, batch in store.got for p in batch] == [0, 1, 2]


def test_with_a_journal_spills_go_inside_it_and_carry_the_journal_seq(tmp_path):
    from trackbook.tracking._journal import Journal, read

    journal = Journal("sqlite:///x.db", {}, root=tmp_path / "journals")
    store = Store(fail=10**9)
    box = Outbox(store, batch_size=100, flush_interval=60, max_points_in_memory=2, journal=journal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box.put("create", {"experiment": "e"})
        assert not box.flush(timeout=0.5)
        for s in range(3):
            box.put_points(pts("a", [s]))
    [segment] = (journal.folder / "spill").glob("segment-*.jsonl")
    assert [json.loads(line) for line in segment.read_text().splitlines()] == [[METRICS, pts("a", [0]), 2]]
    assert box.pending == 4 and journal.acked == 0
    store.fail = 0
    assert box.close(timeout=60)
    assert journal.acked == 4 and box.pending == 0
    assert [e.seq for e in read(journal.folder).entries] == [1, 2, 3, 4]
    journal.close(complete=True)
