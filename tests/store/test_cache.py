"""The history cache on its own: what it answers, for which signatures, and what it keeps."""

from __future__ import annotations

import logging

import pandas as pd

from trackbook import columns as C
from trackbook.store._cache import HistoryCache, default_root


def _points(rows):
    return pd.DataFrame(rows, columns=[C.METRIC, C.STEP, C.VALUE, C.TIMESTAMP])


A = _points([("a", 1, 1.5, 10), ("a", 2, 2.5, 20)])
B = _points([("b", 1, -1.0, 11)])


def put(cache, run_id, points, signatures, *, complete):
    cache.put_many(points.assign(**{C.RUN_ID: run_id}), {run_id: signatures}, complete=complete)


def _get(cache, wanted):
    found, missed = cache.get_many(wanted)
    rows = [] if found is None else [tuple(r) for r in found[[C.RUN_ID, C.METRIC, C.STEP, C.VALUE, C.TIMESTAMP]]
                                     .astype({C.RUN_ID: str, C.METRIC: str}).itertuples(index=False)]
    return rows, missed


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKBOOK_CACHE_DIR", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
    monkeypatch.delenv("TRACKBOOK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "trackbook"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "trackbook"
    assert HistoryCache("sqlite:///x.db").folder.parent == tmp_path / "home" / ".cache" / "trackbook" / "history"
    assert HistoryCache("sqlite:///x.db", tmp_path).folder.parent == tmp_path / "history"
    HistoryCache("never written", tmp_path).clear()  # nothing to clear is no error
    assert HistoryCache("sqlite:///x.db", tmp_path).folder != HistoryCache("sqlite:///y.db", tmp_path).folder


def test_a_hit_returns_the_points_only_while_signatures_match(tmp_path):
    cache = HistoryCache("store", tmp_path)
    assert cache.get_many({"r1": {"a": 1}}) == (None, ["r1"])
    put(cache, "r1", pd.concat([A, B], ignore_index=True), {"a": [2, 20, 2.5], "b": [1, 11, -1.0]}, complete=True)
    rows, missed = _get(cache, {"r1": {"a": [2, 20, 2.5], "b": [1, 11, -1.0]}})
    assert list(cache.get_many({"r1": {"b": [1, 11, -1.0]}})[0].columns) == [C.RUN_ID, C.METRIC, C.STEP, C.VALUE,
                                                                             C.TIMESTAMP]
    assert missed == [] and rows == [("r1", "a", 1, 1.5, 10), ("r1", "a", 2, 2.5, 20), ("r1", "b", 1, -1.0, 11)]
    assert _get(cache, {"r1": {"b": [1, 11, -1.0]}}) == ([("r1", "b", 1, -1.0, 11)], [])
    assert _get(cache, {"r1": {"a": [3, 30, 1.0]}}) == ([], ["r1"])  # a new point: stale
    assert _get(cache, {"r1": {"c": [1, 1, 1]}}) == ([], ["r1"])  # a metric logged after the fact
    assert _get(cache, {"r1": {"c": None}}) == ([], [])  # a complete entry knows the run lacks c
    assert _get(cache, {"r2": {"a": 1}, "r1": {"b": [1, 11, -1.0]}}) == ([("r1", "b", 1, -1.0, 11)], ["r2"])


def test_an_incomplete_entry_misses_on_unknown_metrics_and_put_merges(tmp_path):
    cache = HistoryCache("store", tmp_path)
    put(cache, "r1", A, {"a": 1}, complete=False)
    assert _get(cache, {"r1": {"b": None}}) == ([], ["r1"])
    put(cache, "r1", B.assign(**{C.METRIC: pd.Categorical(B[C.METRIC])}), {"b": 7}, complete=False)
    rows, missed = _get(cache, {"r1": {"a": 1, "b": 7}})
    assert missed == [] and sorted(rows) == [("r1", "a", 1, 1.5, 10), ("r1", "a", 2, 2.5, 20), ("r1", "b", 1, -1.0, 11)]
    put(cache, "r1", _points([("a", 5, 9.0, 50)]), {"a": 2}, complete=True)  # a replaces a, b kept
    rows, _ = _get(cache, {"r1": {"a": 2, "b": 7}})
    assert sorted(rows) == [("r1", "a", 5, 9.0, 50), ("r1", "b", 1, -1.0, 11)]
    assert _get(cache, {"r1": {"z": None}}) == ([], [])  # complete now
    put(cache, "r1", B, {"b": 8}, complete=False)  # once complete, stays complete
    assert _get(cache, {"r1": {"z": None}}) == ([], [])


def test_unreadable_entries_are_misses_and_clear_removes_everything(tmp_path):
    cache = HistoryCache("store", tmp_path)
    put(cache, "r1", A, {"a": 1}, complete=True)
    put(cache, "r2", A, {"a": 1}, complete=True)
    for batch in cache.folder.glob("*.parquet"):
        batch.write_bytes(b"not parquet")
    assert _get(cache, {"r1": {"a": 1}, "r2": {"a": 1}})[1] == ["r1", "r2"]
    put(cache, "r3", A, {"a": 1}, complete=True)
    cache.clear()
    assert not cache.folder.exists() and _get(cache, {"r3": {"a": 1}}) == ([], ["r3"])


def test_a_cache_that_cannot_be_written_warns_and_loses_nothing_asked(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = HistoryCache("store", blocker)  # its folder would be under a file
    with caplog.at_level(logging.WARNING, logger="trackbook.store._cache"):
        put(cache, "r1", A, {"a": 1}, complete=True)
    assert [r.getMessage() for r in caplog.records] == [
        f"trackbook: could not cache the history of 1 runs under {cache.folder}"]
    assert cache.get_many({"r1": {"a": 1}}) == (None, ["r1"])


def test_tuple_and_float_signatures_hit_after_their_json_round_trip(tmp_path):
    cache = HistoryCache("store", tmp_path)
    put(cache, "r1", A, {"a": (2, 20)}, complete=False)  # a backend may report a tuple; JSON keeps a list
    put(cache, "r2", A, {"a": (2, 20, 2.5)}, complete=False)
    put(cache, "r3", A, {"a": {"n": 2, "last": 2.5}}, complete=False)
    assert cache.cached_runs() == {"r1", "r2", "r3"}
    assert _get(cache, {"r1": {"a": (2, 20)}})[1] == []
    assert _get(cache, {"r2": {"a": (2, 20, 2.5)}})[1] == []
    assert _get(cache, {"r3": {"a": {"n": 2, "last": 2.5}}})[1] == []
    assert _get(cache, {"r1": {"a": (2, 21)}, "r2": {"a": (2, 20, 2.6)}, "r3": {"a": {"n": 3, "last": 2.5}}})[1] == [
        "r1", "r2", "r3"]


def test_batches_no_entry_uses_are_deleted_once_older_than_the_grace_period(tmp_path):
    import os
    import time

    cache = HistoryCache("store", tmp_path)
    put(cache, "r1", A, {"a": 1}, complete=True)
    [old] = cache.folder.glob("*.parquet")
    put(cache, "r1", A, {"a": 2}, complete=True)  # r1's only metric now lives in a new batch
    [new] = set(cache.folder.glob("*.parquet")) - {old}
    assert old.exists()  # unused, but young: it may be a concurrent writer's, not yet in the manifest
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(new, (hour_ago, hour_ago))
    put(cache, "r2", B, {"b": 1}, complete=True)
    assert not old.exists() and new.exists()  # old and unused: gone; old and used: kept
    assert len(list(cache.folder.glob("*.parquet"))) == 2
    assert sorted(_get(cache, {"r1": {"a": 2}, "r2": {"b": 1}})[0]) == [
        ("r1", "a", 1, 1.5, 10), ("r1", "a", 2, 2.5, 20), ("r2", "b", 1, -1.0, 11)]


def test_select_keeps_the_wanted_rows_of_every_chunk(tmp_path):
    import pyarrow as pa

    from trackbook.store._cache import _select, _to_table

    one = _to_table(A.assign(**{C.RUN_ID: "r1"}), ["r1"])
    two = _to_table(pd.concat([A, B], ignore_index=True).assign(**{C.RUN_ID: "r2"}), ["r2"])
    table = pa.concat_tables([one, two])  # two chunks, as a file of several row groups reads
    assert table.column(C.RUN_ID).num_chunks == 2
    rows = lambda t: [tuple(r.values()) for r in t.select([C.RUN_ID, C.METRIC, C.STEP]).to_pylist()]  # noqa: E731
    assert rows(_select(table, [("r2", "b")])) == [("r2", "b", 1)]
    assert rows(_select(table, [("r1", "a"), ("r2", "b")])) == [("r1", "a", 1), ("r1", "a", 2), ("r2", "b", 1)]
    assert rows(_select(table, [("r1", "a"), ("r2", "a")])) == [("r1", "a", 1), ("r1", "a", 2), ("r2", "a", 1),
                                                                ("r2", "a", 2)]
    # rows dropped from the first chunk only: the last chunk, kept whole, must not undo that
    assert rows(_select(table, [("r2", "a"), ("r2", "b")])) == [("r2", "a", 1), ("r2", "a", 2), ("r2", "b", 1)]
    assert _select(table, []) is None


def test_an_atomic_write_that_fails_leaves_no_temporary_file(tmp_path):
    import pytest

    from trackbook.store._cache import _atomic_write

    def fail(tmp):
        with open(tmp, "w") as out:
            out.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _atomic_write(tmp_path, "target.json", fail)
    assert list(tmp_path.iterdir()) == []
    _atomic_write(tmp_path, "target.json", lambda tmp: open(tmp, "w").write("whole"))
    assert [p.name for p in tmp_path.iterdir()] == ["target.json"] and (tmp_path / "target.json").read_text() == "whole"


def test_a_cleared_cache_reads_what_another_process_wrote_after(tmp_path):
    mine, theirs = HistoryCache("store", tmp_path), HistoryCache("store", tmp_path)
    put(mine, "r1", A, {"a": 1}, complete=True)
    assert _get(mine, {"r1": {"a": 1}})[1] == []
    put(theirs, "r3", B, {"b": 1}, complete=True)  # the manifest changed on disk since mine read it
    assert _get(mine, {"r3": {"b": 1}}) == ([("r3", "b", 1, -1.0, 11)], [])
    mine.clear()
    put(theirs, "r2", B, {"b": 1}, complete=True)
    assert _get(mine, {"r1": {"a": 1}, "r2": {"b": 1}}) == ([("r2", "b", 1, -1.0, 11)], ["r1"])
    assert mine.cached_runs() == {"r2"}


def test_only_the_runs_named_in_the_signatures_are_cached(tmp_path):
    cache = HistoryCache("store", tmp_path)
    both = pd.concat([A.assign(**{C.RUN_ID: "r1"}), B.assign(**{C.RUN_ID: "r2"})], ignore_index=True)
    cache.put_many(both, {"r2": {"b": 1}}, complete=True)
    assert cache.cached_runs() == {"r2"}
    assert _get(cache, {"r2": {"b": 1}}) == ([("r2", "b", 1, -1.0, 11)], [])


def test_a_batch_file_holds_only_the_rows_of_the_runs_cached(tmp_path):
    # the docstring's promise: rows of other runs are left out (they would only take disk space)
    import pyarrow.parquet as pq

    cache = HistoryCache("store", tmp_path)
    both = pd.concat([A.assign(**{C.RUN_ID: "r1"}), B.assign(**{C.RUN_ID: "r2"})], ignore_index=True)
    cache.put_many(both, {"r2": {"b": 1}}, complete=True)
    (batch,) = cache.folder.glob("*.parquet")
    table = pq.read_table(batch)
    assert table.column(C.RUN_ID).to_pylist() == ["r2"] and table.column(C.VALUE).to_pylist() == [-1.0]
