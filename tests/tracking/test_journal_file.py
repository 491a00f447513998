"""The journal on disk, fast: what a tracker appends, what a reader (``trackbook sync``) gets back.

No trainings, no servers: a journal written through :class:`Journal` (or an offline
tracker) in a tmp data folder, read back with :func:`_journal.read`, checked against the
lines' own JSON on disk and, for the sync tests, against MLflow's own client on a
sqlite store. ``tests/tracking/test_journal.py`` has the slow end-to-end scenarios
(killed servers, SIGKILLed trainings).
"""

from __future__ import annotations

import json
import os
import stat
import time
import warnings
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import trackbook as tb
from tests._mlflow_template import empty_mlflow_db
from trackbook import columns as C
from trackbook.layout import OpKind
from trackbook.tracking import _journal, make_tracker
from trackbook.tracking import sync as tbsync
from trackbook.tracking._journal import Journal


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("TRACKBOOK_DATA_DIR", str(folder))
    monkeypatch.delenv("TRACKBOOK_JOURNAL_MAX_MB", raising=False)
    monkeypatch.delenv("TRACKBOOK_OFFLINE", raising=False)
    return folder


def _lines(folder: Path) -> list[list]:
    """Every line of every segment, parsed by json itself, in segment order."""
    return [json.loads(line) for seg in sorted(folder.glob("journal-*.jsonl")) for line in seg.read_text().splitlines()]


def _points(steps, key="x"):
    return [[key, float(s), 1_000 + s, s] for s in steps]


# ------------------------------------------------------------------ where it lives


def test_data_dir_follows_trackbook_data_dir_then_xdg_then_home(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRACKBOOK_DATA_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _journal.data_dir() == tmp_path / "explicit"
    assert _journal.journals_dir() == tmp_path / "explicit" / "journals"
    monkeypatch.setenv("TRACKBOOK_DATA_DIR", "~/mine")
    assert _journal.data_dir() == tmp_path / "home" / "mine"
    monkeypatch.delenv("TRACKBOOK_DATA_DIR")
    assert _journal.data_dir() == tmp_path / "xdg" / "trackbook"
    monkeypatch.setenv("XDG_DATA_HOME", "~/x")
    assert _journal.data_dir() == tmp_path / "home" / "x" / "trackbook"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert _journal.data_dir() == tmp_path / "home" / ".local" / "share" / "trackbook"


def test_the_size_bound_comes_from_the_environment_in_mib(monkeypatch):
    monkeypatch.delenv("TRACKBOOK_JOURNAL_MAX_MB", raising=False)
    assert _journal.max_bytes_default() == 512 * 2**20
    monkeypatch.setenv("TRACKBOOK_JOURNAL_MAX_MB", "")
    assert _journal.max_bytes_default() == 512 * 2**20
    monkeypatch.setenv("TRACKBOOK_JOURNAL_MAX_MB", "0.5")
    assert _journal.max_bytes_default() == 2**19
    monkeypatch.setenv("TRACKBOOK_JOURNAL_MAX_MB", "3")
    assert _journal.max_bytes_default() == 3 * 2**20
    monkeypatch.setenv("TRACKBOOK_JOURNAL_MAX_MB", "lots")
    with pytest.warns(RuntimeWarning, match=r"TRACKBOOK_JOURNAL_MAX_MB='lots' is not a number; using 512\."):
        assert _journal.max_bytes_default() == 512 * 2**20


def test_local_ids_are_prefixed_unique_and_recognised():
    ids = {_journal.new_local_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("local-") and len(i) == 26 and int(i[6:], 16) >= 0 for i in ids)
    assert _journal.is_local_id(next(iter(ids)))
    assert not _journal.is_local_id("0123abcd") and not _journal.is_local_id(None)
    assert not _journal.is_local_id(12) and not _journal.is_local_id("xlocal-1")


def test_now_ms_is_the_wall_clock_in_milliseconds():
    before = time.time() * 1000
    got = _journal.now_ms()
    after = time.time() * 1000
    assert isinstance(got, int) and before - 1 <= got <= after


# ------------------------------------------------------------------ writing


def test_appends_are_numbered_lines_of_seq_time_kind_payload(data_dir: Path):
    before = _journal.now_ms()
    journal = Journal("sqlite:///x.db", {"experiment": "e", "name": "n"})
    assert journal.folder == data_dir / "journals" / journal.local_id and _journal.is_local_id(journal.local_id)
    assert repr(journal) == f"Journal({journal.folder})"
    assert stat.S_IMODE(journal.folder.stat().st_mode) == 0o700  # the URI may carry a password
    meta = json.loads((journal.folder / "meta.json").read_text())
    assert {k: meta[k] for k in ("experiment", "name", "local_id", "uri", "pid")} == {
        "experiment": "e", "name": "n", "local_id": journal.local_id, "uri": "sqlite:///x.db", "pid": os.getpid()}
    assert before <= meta["created_ms"] <= _journal.now_ms() and meta["host"] == os.uname().nodename
    assert json.loads((journal.folder / "state.json").read_text()) == {"acked": 0, "run_id": None}

    assert journal.append(OpKind.CREATE, {"experiment": "e"}) == 1
    assert journal.append(OpKind.METRICS, _points([0, 1])) == 2
    assert journal.append(OpKind.PARAMS, {"lr": "0.1"}) == 3
    # one write() each: the lines are in the file before append returns, with no fsync yet
    lines = _lines(journal.folder)
    assert [line[0] for line in lines] == [1, 2, 3]
    assert [line[2] for line in lines] == ["create", "metrics", "params"]
    assert lines[1][3] == _points([0, 1]) and lines[2][3] == {"lr": "0.1"}
    assert all(before <= line[1] <= _journal.now_ms() for line in lines)
    raw = (journal.folder / "journal-000001.jsonl").read_bytes()
    assert raw.endswith(b"\n") and b", " not in raw and b": " not in raw  # compact: the size bound counts bytes
    assert journal.bytes == len(raw) and journal.seq == 3 and journal.pending == 3 and journal.dropped == 0
    journal.close(complete=False)


def test_read_gives_back_every_entry_in_order_with_acks_and_run_id(data_dir: Path):
    journal = Journal("sqlite:///x.db", {"experiment": "e"})
    journal.append(OpKind.CREATE, {"experiment": "e"})
    for step in range(5):
        journal.append(OpKind.METRICS, _points([step]))
    journal.append(OpKind.TERMINATE, {"status": "FINISHED", "end_ms": 42})
    journal.set_run_id("abc123")
    journal.ack(3)
    journal.ack(2)  # an older ack never moves the mark back
    assert journal.acked == 3 and journal.pending == 4
    journal.close(complete=False)

    found = _journal.read(journal.folder)
    on_disk = _lines(journal.folder)
    assert [(e.seq, e.t_ms, e.kind, e.payload) for e in found.entries] == [tuple(line) for line in on_disk]
    assert all(isinstance(e.kind, OpKind) for e in found.entries)
    assert found.acked == 3 and found.run_id == "abc123" and found.problems == []
    assert [e.seq for e in found.unacked()] == [4, 5, 6, 7]
    assert found.local_id == journal.local_id and found.uri == "sqlite:///x.db" and found.ended
    assert found.last_t_ms == on_disk[-1][1]
    assert found.meta["experiment"] == "e"
    assert _journal.store_ids() == {journal.local_id: "abc123"}
    [line] = (data_dir / "journals" / "ids.jsonl").read_text().splitlines()
    assert json.loads(line) == {"local_id": journal.local_id, "run_id": "abc123", "uri": "sqlite:///x.db"}


def test_a_store_id_that_cannot_be_recorded_does_not_stop_the_run(data_dir: Path):
    journal = Journal("sqlite:///x.db", {})
    (data_dir / "journals" / "ids.jsonl").mkdir()  # not writable as a file: os.open fails
    journal.set_run_id("r9")
    journal.ack(0)
    assert journal.run_id == "r9" and journal.acked == 0
    journal.ack(1)
    assert json.loads((journal.folder / "state.json").read_text()) == {"acked": 1, "run_id": "r9"}
    journal.close(complete=False)


def test_a_pending_without_meta_names_falls_back_to_its_folder(tmp_path: Path):
    empty = _journal.Pending(tmp_path / "local-x", {}, 0, None, [], [])
    assert empty.local_id == "local-x" and empty.uri == "" and not empty.ended and empty.last_t_ms is None
    assert empty.unacked() == []


def test_segments_roll_over_and_are_read_back_in_order(data_dir: Path, monkeypatch):
    journal = Journal("sqlite:///x.db", {})
    one = len(json.dumps([1, _journal.now_ms(), "metrics", _points([0])], separators=(",", ":"))) + 1
    monkeypatch.setattr(_journal, "SEGMENT_BYTES", 3 * one)  # three lines a segment
    for step in range(10):
        journal.append(OpKind.METRICS, _points([step]))
    journal.close(complete=False)
    segments = sorted(p.name for p in journal.folder.glob("journal-*.jsonl"))
    assert segments == [f"journal-{i:06d}.jsonl" for i in range(1, 5)]
    assert [len((journal.folder / s).read_text().splitlines()) for s in segments] == [3, 3, 3, 1]
    found = _journal.read(journal.folder)
    assert [e.seq for e in found.entries] == list(range(1, 11))
    assert [e.payload[0][3] for e in found.entries] == list(range(10))


def test_past_the_size_bound_points_are_dropped_once_warned_and_the_run_is_kept(data_dir: Path):
    line = len(json.dumps([1, _journal.now_ms(), "metrics", _points([0])], separators=(",", ":"))) + 1
    journal = Journal("sqlite:///x.db", {}, max_bytes=3 * line)
    journal.append(OpKind.CREATE, {"e": 1})  # kept, but counted
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        seqs = [journal.append(OpKind.METRICS, _points([s])) for s in range(4)]
        journal.append(OpKind.ARTIFACT, {"path": "/tmp/x"})
        journal.append(OpKind.TAGS, {"t": "v"})
        journal.append(OpKind.PARAMS, {"p": "1"})
        journal.append(OpKind.HEARTBEAT, {})
        journal.append(OpKind.TERMINATE, {"status": "FINISHED", "end_ms": 1})
    assert seqs == [2, 3, 4, 5]  # numbered whether journaled or not: acks stay aligned with the queue
    [warning] = [w for w in got if issubclass(w.category, RuntimeWarning)]
    text = str(warning.message)
    assert journal.local_id in text and str(journal.folder) in text
    assert text.startswith(f"trackbook: the journal of run {journal.local_id} at {journal.folder}: ")
    assert "reached its size bound of 0.000" in text and "TRACKBOOK_JOURNAL_MAX_MB" in text
    assert journal.full and journal.dropped == 2 + 2  # two points, the artifact, the heartbeat
    journal.close(complete=False)
    found = _journal.read(journal.folder)
    assert [(e.seq, e.kind) for e in found.entries] == [
        (1, "create"), (2, "metrics"), (3, "metrics"), (7, "tags"), (8, "params"), (10, "terminate")]
    assert found.ended


def test_exactly_at_the_size_bound_a_line_is_still_kept(data_dir: Path):
    line = len(json.dumps([1, _journal.now_ms(), "metrics", _points([0])], separators=(",", ":"))) + 1
    journal = Journal("sqlite:///x.db", {}, max_bytes=2 * line)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing is dropped
        journal.append(OpKind.METRICS, _points([0]))
        journal.append(OpKind.METRICS, _points([1]))
    assert not journal.full and journal.bytes == 2 * line
    journal.close(complete=False)


def test_a_full_disk_drops_points_with_one_warning_and_keeps_the_run(data_dir: Path, monkeypatch):
    journal = Journal("sqlite:///x.db", {})
    journal.append(OpKind.CREATE, {"e": 1})
    journal.set_run_id("store-run-7")  # once the store named the run, the warning names it so
    (journal.folder / "journal-000002.jsonl").symlink_to("/dev/full")  # the next segment: a full disk
    monkeypatch.setattr(_journal, "SEGMENT_BYTES", 1)
    with pytest.warns(RuntimeWarning, match=r"^trackbook: the journal of run store-run-7 at .*: writing failed \(.*No "
                                            r"space left on device.*\)\. Training goes on"):
        assert journal.append(OpKind.METRICS, _points([0])) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        assert journal.append(OpKind.METRICS, _points([1])) == 3
    assert journal.full and journal.dropped == 2 and journal.pending == 3
    journal.close(complete=False)


def test_sync_is_harmless_before_and_after_writes_and_close_keeps_or_deletes(data_dir: Path):
    journal = Journal("sqlite:///x.db", {})
    journal.sync()
    journal.append(OpKind.CREATE, {})
    journal.sync()
    journal.sync()
    assert _journal.try_lock(journal.folder) is None  # the writer holds it for its life
    journal.close(complete=False)
    journal.close(complete=False)  # twice is fine
    journal.sync()
    assert journal.append(OpKind.METRICS, _points([0])) == 2 and journal.dropped == 1  # closed: not journaled
    assert [e.seq for e in _journal.read(journal.folder).entries] == [1]
    fd = _journal.try_lock(journal.folder)
    assert fd is not None  # released at close: a sync may take it
    _journal.unlock(fd)
    _journal.unlock(None)
    done = Journal("sqlite:///x.db", {})
    done.close(complete=True)
    assert not done.folder.exists()
    gone = Journal("sqlite:///x.db", {})
    import shutil

    shutil.rmtree(gone.folder)  # removed under it (`trackbook sync --discard` from another shell)
    gone.close(complete=True)  # nothing to delete: no error
    assert not gone.folder.exists()


def test_a_second_writer_cannot_lock_a_journal_and_a_missing_folder_cannot_be_locked(data_dir: Path):
    journal = Journal("sqlite:///x.db", {})
    assert _journal.try_lock(journal.folder) is None
    assert _journal.try_lock(data_dir / "nowhere") is None
    journal.close(complete=False)
    first = _journal.try_lock(journal.folder)
    assert first is not None and _journal.try_lock(journal.folder) is None
    _journal.unlock(first)


def test_artifact_copies_go_to_a_folder_named_by_the_next_sequence_number(data_dir: Path):
    journal = Journal("sqlite:///x.db", {})
    journal.append(OpKind.CREATE, {})
    folder = journal.artifact_copy()
    assert folder == journal.folder / "artifacts" / "000000002" and folder.is_dir()
    assert journal.artifact_copy() == folder  # the same write asks again
    journal.close(complete=False)


def test_an_explicit_root_and_local_id_are_used(tmp_path: Path, data_dir: Path):
    journal = Journal("sqlite:///x.db", {}, root=tmp_path / "elsewhere", local_id="local-given")
    assert journal.folder == tmp_path / "elsewhere" / "local-given" and journal.local_id == "local-given"
    assert not (data_dir / "journals").exists()
    journal.close(complete=False)


def test_an_ack_that_cannot_be_written_is_logged_and_kept_in_memory(data_dir: Path, caplog):
    import logging

    journal = Journal("sqlite:///x.db", {})
    journal.append(OpKind.CREATE, {})
    (journal.folder / f".state.json.{os.getpid()}.tmp").mkdir()  # the state file's temporary cannot be written
    with caplog.at_level(logging.WARNING, logger="trackbook.tracking"):
        journal.ack(0)  # nothing new: nothing written, nothing logged
        assert caplog.records == []
        journal.ack(1)
    [record] = caplog.records
    assert record.getMessage().startswith(f"trackbook: could not mark delivered writes in {journal.folder}: [Errno 21]")
    assert journal.acked == 1 and journal.pending == 0
    assert json.loads((journal.folder / "state.json").read_text())["acked"] == 0  # a replay the store deduplicates
    journal.close(complete=False)


def test_state_writes_replace_the_file_and_leave_no_temporary(data_dir: Path):
    journal = Journal("sqlite:///x.db", {})
    for seq in range(1, 4):
        journal.append(OpKind.METRICS, _points([seq]))
        journal.ack(seq)
    assert json.loads((journal.folder / "state.json").read_text()) == {"acked": 3, "run_id": None}
    assert sorted(p.name for p in journal.folder.iterdir() if p.name.startswith(".")) == []
    journal.close(complete=False)


# ------------------------------------------------------------------ reading damaged journals


def test_cut_and_unreadable_lines_are_skipped_and_named(data_dir: Path):
    journal = Journal("sqlite:///x.db", {})
    for step in range(4):
        journal.append(OpKind.METRICS, _points([step]))
    journal.close(complete=False)
    segment = journal.folder / "journal-000001.jsonl"
    lines = segment.read_bytes().split(b"\n")
    lines[1] = b'[2,"not a time","metrics",[]]'  # unreadable, but a whole line
    lines.insert(2, b"   ")  # blank lines are not problems
    lines.insert(3, b'[9,1,"no such kind",{}]')
    lines[-1] = b'[5,1,"metr'  # the last write, cut before its newline
    segment.write_bytes(b"\n".join(lines))
    found = _journal.read(journal.folder)
    assert [e.payload[0][3] for e in found.entries] == [0, 2, 3]
    assert found.problems == [
        f"line 2 of journal-000001.jsonl is unreadable ({len(lines[1])} bytes); that one write is lost",
        f"line 4 of journal-000001.jsonl is unreadable ({len(lines[3])} bytes); that one write is lost",
        "line 7 of journal-000001.jsonl was cut mid-write (10 bytes); that one write is lost",
    ]


def test_a_line_of_the_wrong_shape_is_a_problem_not_a_crash(data_dir: Path):
    journal = Journal("sqlite:///x.db", {})
    journal.append(OpKind.CREATE, {})
    journal.close(complete=False)
    segment = journal.folder / "journal-000001.jsonl"
    with segment.open("ab") as out:
        out.write(b'[2,3,"params"]\n{"seq":3}\n[4,null,"params",{}]\n')
    found = _journal.read(journal.folder)
    assert [e.seq for e in found.entries] == [1] and len(found.problems) == 3
    assert all("is unreadable" in p for p in found.problems)


def test_a_missing_or_broken_state_reads_as_nothing_acknowledged(data_dir: Path):
    journal = Journal("sqlite:///x.db", {})
    journal.append(OpKind.CREATE, {})
    journal.set_run_id("r1")
    journal.ack(1)
    journal.close(complete=False)
    (journal.folder / "state.json").write_text("{not json")
    found = _journal.read(journal.folder)
    assert found.acked == 0 and found.run_id is None and [e.seq for e in found.unacked()] == [1]
    (journal.folder / "state.json").unlink()
    assert _journal.read(journal.folder).acked == 0


def test_store_ids_skip_damaged_lines_and_the_last_id_wins(data_dir: Path):
    assert _journal.store_ids() == {}
    _journal.record_store_id("local-a", "run-1", "sqlite:///x.db")
    with (data_dir / "journals" / "ids.jsonl").open("a") as out:
        out.write('{"local_id": "local-b"\n["a list"]\n{"run_id": "no local id"}\n\n')
    _journal.record_store_id("local-b", "run-2", "sqlite:///x.db")
    _journal.record_store_id("local-a", "run-3", "sqlite:///x.db")
    assert _journal.store_ids() == {"local-a": "run-3", "local-b": "run-2"}
    lines = (data_dir / "journals" / "ids.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"local_id": "local-a", "run_id": "run-1", "uri": "sqlite:///x.db"}
    assert stat.S_IMODE((data_dir / "journals" / "ids.jsonl").stat().st_mode) == 0o600


def test_journal_folders_are_oldest_first_and_only_real_journals(data_dir: Path):
    assert list(_journal.journal_folders()) == []
    made = [Journal("sqlite:///x.db", {}, local_id=f"local-{i}") for i in range(3)]
    for j in made:
        j.close(complete=False)
    root = data_dir / "journals"
    # created_ms decides, not the name: local-2 is made the oldest, local-0 the newest
    for name, created in (("local-0", 3_000), ("local-1", 1_501), ("local-2", 1_000)):
        meta = json.loads((root / name / "meta.json").read_text())
        (root / name / "meta.json").write_text(json.dumps({**meta, "created_ms": created}))
    (root / "not-a-journal").mkdir()
    (root / "ids.jsonl").write_text("")
    broken = root / "local-broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{cut")
    os.utime(broken / "meta.json", (1.5, 1.5))
    os.utime(broken, (1.5, 1.5))  # 1,500 ms (its folder's mtime, in ms): between local-2 and local-1
    assert [p.name for p in _journal.journal_folders()] == ["local-2", "local-broken", "local-1", "local-0"]
    assert [p.name for p in _journal.journal_folders(root)] == ["local-2", "local-broken", "local-1", "local-0"]
    assert list(_journal.journal_folders(data_dir / "absent")) == []


def test_a_journal_without_created_ms_sorts_first(data_dir: Path):
    for name in ("local-a", "local-b"):
        Journal("sqlite:///x.db", {}, local_id=name).close(complete=False)
    meta = json.loads((data_dir / "journals" / "local-b" / "meta.json").read_text())
    del meta["created_ms"]
    (data_dir / "journals" / "local-b" / "meta.json").write_text(json.dumps(meta))
    assert [p.name for p in _journal.journal_folders()] == ["local-b", "local-a"]


# ------------------------------------------------------------------ what trackbook sync builds on it


def test_offline_writes_replayed_by_sync_match_mlflow(tmp_path: Path, data_dir: Path):
    uri = empty_mlflow_db(tmp_path / "mlflow.db")
    tracker = make_tracker(uri, offline=True)
    local_id = tracker.start_run("replay", name="r", params={"lr": 0.1}, tags={"team": "a"})
    for step in range(12):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "reward": float(step)}, step, timestamp_ms=5_000 + step)
    tracker.set_tags({"phase": "done"})
    assert tracker.flush(0)  # offline, nothing waits for a delivery
    tracker.end_run(C.FAILED)
    found = _journal.read(data_dir / "journals" / local_id)
    assert found.acked == 0 and found.ended and found.problems == []
    assert [e.kind for e in found.entries][:2] == ["create", "params"] and found.entries[-1].kind == "terminate"

    [result] = tb.sync()
    assert result.outcome == tbsync.DELIVERED and result.points == 24 and result.status == C.FAILED
    client = MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.info.status == C.FAILED and run.info.run_name == "r"
    assert run.data.params == {"lr": "0.1"}
    assert run.data.tags["team"] == "a" and run.data.tags["phase"] == "done"
    assert run.data.tags["trackbook.local_id"] == local_id
    history = client.get_metric_history(result.run_id, "loss")
    assert sorted((m.step, m.value, m.timestamp) for m in history) == [(s, 1.0 / (s + 1), 5_000 + s) for s in range(12)]
    assert _journal.store_ids()[local_id] == result.run_id
    assert not (data_dir / "journals" / local_id).exists()


def test_a_partly_acknowledged_journal_of_a_dead_writer_resumes_and_ends_killed(tmp_path: Path, data_dir: Path):
    """What a process that died mid-run leaves: the store has the acked part, the journal the rest."""
    uri = empty_mlflow_db(tmp_path / "mlflow.db")
    tracker = make_tracker(uri)
    run_id = tracker.start_run("resume", name="r", wait=10)
    assert run_id is not None
    tracker.log_metrics({"x": 0.0}, 0, timestamp_ms=10_000)
    deadline = time.monotonic() + 60
    while not tracker.flush(0.01):  # a delivery that fails or a dead thread is a bug: fail now, not in a minute
        outbox = tracker._outbox
        assert outbox.last_error is None and outbox._thread.is_alive() and time.monotonic() < deadline
    journal = tracker.journal
    for step in range(1, 6):
        journal.append(OpKind.METRICS, _points([step]))  # journaled, never delivered: the process died here
    last_t = _journal.read(journal.folder).entries[-1].t_ms
    acked = journal.acked
    tracker._outbox = None  # the dead process's queue is gone with it
    journal.close(complete=False)  # the OS releases a dead writer's lock
    status = {r["local_id"]: r for r in tbsync.pending()}[journal.local_id]
    assert status["state"] == "died" and status["run_id"] == run_id and status["points"] == 5
    assert status["writes"] == journal.seq - acked

    [result] = tb.sync()
    assert result.outcome == tbsync.DELIVERED and result.run_id == run_id and result.status == C.KILLED
    client = MlflowClient(uri)
    assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, "x")) == [(s, float(s)) for s in range(6)]
    info = client.get_run(run_id).info
    assert info.status == C.KILLED and info.end_time == last_t  # ended when it was last heard of
    assert tb.sync() == []
