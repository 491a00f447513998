"""Delivering journals left behind: ``trackbook sync``, ``tb.sync()``.

A run's journal (:mod:`trackbook.tracking._journal`) outlives its process whenever
the store did not acknowledge everything: the server was down when the script ended,
the process was killed, or the run was offline. :func:`sync` delivers each such
journal to the store it names, exactly once and in order, resuming after the last
acknowledged write, and gives the run its real status and end time; a run whose
process died without ending it is marked KILLED at the time of its last write.

Exactly once: a journal is delivered under its file lock (a live writer holds it, so
a journal being written is left alone, and of two syncs at once only one delivers);
every delivered batch is acknowledged in the journal before the next is sent; a
batch sent again after a crash is deduplicated by the store (MLflow keeps one copy of
a point with the same key, step, timestamp and value), and a run created just before
a crash is found again by its ``trackbook.local_id`` tag instead of created twice.

Offline runs are known by their local id (``local-...``) until synced; :func:`sync`
says which store id each got, and children that named an offline parent get the
parent's store id.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trackbook import columns as C
from trackbook import layout as L
from trackbook._uri import redact_uri
from trackbook.errors import RunDeleted
from trackbook.layout import OpKind
from trackbook.tracking import _journal
from trackbook.tracking._journal import Entry, Pending, is_local_id, journal_folders, try_lock, unlock
from trackbook.tracking._outbox import Op

_log = logging.getLogger("trackbook.tracking")

BATCH_POINTS = 1000

DELIVERED, SKIPPED, FAILED, DELETED = "delivered", "skipped", "failed", "deleted"


@dataclass
class SyncResult:
    """What :func:`sync` did with one journal.

    Attributes:
        local_id: the run's id in the journal; run_id: its id in the store (None if never created).
        uri: the store (credentials redacted); experiment: the run's experiment.
        outcome: ``delivered``, ``skipped`` (being written or delivered elsewhere),
            ``failed`` (the store could not be reached; the journal is kept) or
            ``deleted`` (the run was deleted from the store; nothing was written).
        operations, points: what was delivered now; status: the status the run ended with.
        message: a sentence for the user.
        waits_for_parent: skipped because its parent run is not in the store yet.
    """

    local_id: str
    run_id: str | None
    uri: str
    experiment: str | None
    outcome: str
    operations: int = 0
    points: int = 0
    status: str | None = None
    seconds: float = 0.0
    message: str = ""
    waits_for_parent: bool = False


def sync(store: Any = None, *, local_id: str | None = None, verbose: bool = False) -> list[SyncResult]:
    """Deliver every pending journal (of ``store`` only, if given) exactly once, in order.

    Example:
        >>> import trackbook as tb
        >>> for r in tb.sync():                      # doctest: +SKIP
        ...     print(r.local_id, "->", r.run_id, r.outcome, r.points)

    Args:
        store: a Store or URI: deliver only the journals written for it (None: all).
        local_id: deliver only this run's journal.
        verbose: print one line per journal.

    Returns:
        One :class:`SyncResult` per journal found, oldest first.
    """
    uri = _uri_of(store)
    results: dict[str, SyncResult] = {}
    todo = [f for f in journal_folders() if local_id is None or f.name == local_id]
    while todo:
        waiting = []
        for folder in todo:
            result = _sync_one(folder, uri)
            if result is None:
                continue
            results[folder.name] = result
            if result.outcome == SKIPPED and result.waits_for_parent:
                waiting.append(folder)  # its parent may be later in this pass (created in the same ms)
            elif verbose:
                print(result.message, flush=True)
        if len(waiting) == len(todo):
            break  # no parent came in: they wait for a later sync
        todo = waiting
    if verbose:
        for result in results.values():
            if result.outcome == SKIPPED and result.waits_for_parent:
                print(result.message, flush=True)
    return list(results.values())


def pending(store: Any = None) -> list[dict[str, Any]]:
    """What is waiting in journals: one dict per run (``trackbook sync --status``).

    Keys: ``local_id``, ``run_id``, ``experiment``, ``name``, ``uri``, ``writes``
    (operations not acknowledged), ``points``, ``state`` (``writing``: its process is
    alive; ``ended``: ended, not delivered; ``died``: its process died before ending
    it, sync marks it KILLED), ``journal``, ``problems``.
    """
    uri = _uri_of(store)
    rows = []
    for folder in journal_folders():
        try:
            found = _journal.read(folder)
        except (OSError, ValueError):
            continue
        if uri is not None and found.uri != uri:
            continue
        fd = try_lock(folder)
        live = fd is None
        unlock(fd)
        todo = found.unacked()
        rows.append({
            "local_id": found.local_id, "run_id": found.run_id, "experiment": found.meta.get("experiment"),
            "name": found.meta.get("name"), "uri": redact_uri(found.uri), "writes": len(todo),
            "points": sum(len(e.payload) for e in todo if e.kind == OpKind.METRICS),
            "state": "writing" if live else "ended" if found.ended else "died",
            "journal": str(folder), "problems": found.problems,
        })
    return rows


def discard(local_id: str) -> Path:
    """Delete the journal of ``local_id`` without delivering it (``trackbook sync --discard``).

    Raises:
        LookupError: no such journal, or its process is still writing it.
    """
    folder = _journal.journals_dir() / local_id
    if not (folder / "meta.json").is_file():
        raise LookupError(f"No journal {local_id!r} under {folder.parent}; `trackbook sync --status` lists them.")
    fd = try_lock(folder)
    if fd is None:
        raise LookupError(f"The journal {local_id} is being written or delivered by a live process; try again "
                          f"when it has ended.")
    try:
        shutil.rmtree(folder)
    finally:
        unlock(fd)
    return folder


_background: dict[str, threading.Thread] = {}
_background_lock = threading.Lock()


def deliver_in_background(uri: str) -> threading.Thread | None:
    """Deliver, once per process and store, the journals earlier processes left for ``uri``."""
    with _background_lock:
        if uri in _background:
            return None
        if not any(_meta_uri(folder) == uri for folder in journal_folders()):
            _background[uri] = threading.Thread()  # nothing to do, and no need to look again
            return None
        thread = threading.Thread(target=_background_sync, args=(uri,), name="trackbook-sync", daemon=True)
        _background[uri] = thread
    thread.start()
    return thread


def _background_sync(uri: str) -> None:
    try:
        for result in sync(uri):
            if result.outcome != SKIPPED:
                _log.warning("trackbook (delivering journals of earlier processes): %s", result.message)
    except Exception as exc:  # noqa: BLE001 - never disturb the training that started it
        _log.warning("trackbook: delivering old journals failed: %s", exc)


# ----------------------------------------------------------------- one journal


def _sync_one(folder: Path, uri: str | None) -> SyncResult | None:
    meta_uri = _meta_uri(folder)
    if meta_uri is None or (uri is not None and meta_uri != uri):
        return None
    fd = try_lock(folder)
    if fd is None:
        meta = _read_meta(folder)
        return SyncResult(
            folder.name, None, redact_uri(meta_uri), meta.get("experiment"), SKIPPED,
            message=f"skipped {folder.name}: its journal is being written or delivered by another live process "
                    f"(pid {meta.get('pid')} wrote it)",
        )
    try:
        if not (folder / "meta.json").is_file():
            return None  # delivered by another sync meanwhile
        return _deliver(_journal.read(folder))
    finally:
        unlock(fd)


def _deliver(found: Pending) -> SyncResult:
    started = time.perf_counter()
    result = SyncResult(found.local_id, found.run_id, redact_uri(found.uri), found.meta.get("experiment"), FAILED)
    for problem in found.problems:
        warnings.warn(f"trackbook sync: journal {found.local_id}: {problem}.", RuntimeWarning, stacklevel=3)
    tracker = _Retrying(_tracker_for(found.uri))
    todo = found.unacked()
    acked, ids = found.acked, _journal.store_ids()
    try:
        if found.run_id:
            tracker._resume(found.run_id)
        elif not todo or todo[0].kind != OpKind.CREATE:
            result.message = (f"journal {found.local_id} has no run creation to deliver (its first line was lost?); "
                              f"kept at {found.folder}")
            return result
        batch: list[Entry] = []

        def flush_batch() -> None:
            nonlocal acked
            points = [p for e in batch for p in e.payload]
            for i in range(0, len(points), BATCH_POINTS):
                tracker._send(Op(OpKind.METRICS, points[i : i + BATCH_POINTS]))
            result.points += len(points)
            result.operations += len(batch)
            acked = batch[-1].seq
            _write_state(found.folder, acked, tracker.run_id)
            batch.clear()

        for entry in todo:
            if entry.kind == OpKind.METRICS:
                batch.append(entry)
                if sum(len(e.payload) for e in batch) >= BATCH_POINTS:
                    flush_batch()
                continue
            if batch:
                flush_batch()
            if not _send_entry(tracker, entry, ids, found):
                result.message = (f"journal {found.local_id} waits for its parent run "
                                  f"{entry.payload.get('parent_run_id')} to be synced first; kept")
                result.outcome = SKIPPED
                result.waits_for_parent = True
                return result
            if entry.kind == OpKind.CREATE:
                _journal.record_store_id(found.local_id, tracker.run_id, found.uri)
            if entry.kind == OpKind.TERMINATE:
                result.status = entry.payload["status"]
            result.operations += 1
            acked = entry.seq
            _write_state(found.folder, acked, tracker.run_id)
        if batch:
            flush_batch()
        if not found.ended:
            # Its process died without ending it: KILLED, at the time it was last heard of.
            end_ms = found.last_t_ms or _journal.now_ms()
            tracker._send(Op(OpKind.TERMINATE, {"status": C.KILLED, "end_ms": end_ms}))
            result.status = C.KILLED
    except _deleted_error() as exc:
        error = RunDeleted(found.local_id, exc.run_id, redact_uri(found.uri), str(found.folder), len(todo))
        result.outcome, result.run_id, result.message = DELETED, exc.run_id, str(error)
        return result
    except Exception as exc:  # noqa: BLE001 - one journal's store being down must not stop the others
        left = sum(1 for e in todo if e.seq > acked)
        result.run_id = tracker.run_id or found.run_id
        result.message = (f"could not deliver journal {found.local_id} (run {result.run_id}) to "
                          f"{redact_uri(found.uri)}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}."
                          f" {left} writes are still pending in {found.folder}; run `trackbook sync` again when the "
                          f"store is reachable.")
        return result
    finally:
        result.seconds = time.perf_counter() - started
    shutil.rmtree(found.folder, ignore_errors=True)
    result.outcome, result.run_id = DELIVERED, tracker.run_id
    lost = f"; {len(found.problems)} unreadable line(s) lost" if found.problems else ""
    result.message = (f"run {found.local_id} -> {tracker.run_id} (experiment {result.experiment!r}, "
                      f"{result.uri}): {result.operations} writes, {result.points} points delivered, "
                      f"{result.status}{lost}")
    return result


class _Retrying:
    """A tracker whose sends are retried a few times: one slow answer must not end a sync."""

    def __init__(self, tracker: Any, attempts: int = 4) -> None:
        self.tracker, self.attempts = tracker, attempts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tracker, name)

    def _send(self, op: Op) -> None:
        for attempt in range(self.attempts):
            try:
                return self.tracker._send(op)
            except _deleted_error():
                raise
            except Exception:  # noqa: BLE001 - retried, then raised to the caller
                if attempt == self.attempts - 1:
                    raise
                time.sleep(2.0**attempt)


def _send_entry(tracker: Any, entry: Entry, ids: dict[str, str], found: Pending) -> bool:
    """Deliver one non-metric entry, with local ids of other runs turned into store ids."""
    payload = entry.payload
    if entry.kind == OpKind.CREATE:
        parent = payload.get("parent_run_id")
        if is_local_id(parent):
            if parent not in ids:
                return False
            payload = {**payload, "parent_run_id": ids[parent]}
        payload = {**payload, "tags": _map_ids(payload.get("tags") or {}, ids), "local_id": found.local_id}
    elif entry.kind == OpKind.TAGS:
        payload = _map_ids(payload, ids)
    elif entry.kind == OpKind.ARTIFACT and not Path(payload["path"]).exists():
        warnings.warn(f"trackbook sync: journal {found.local_id}: the copy of artifact {payload['path']} is gone; "
                      f"that artifact is skipped.", RuntimeWarning, stacklevel=4)
        return True
    tracker._send(Op(entry.kind, payload, entry.seq))
    return True


def _map_ids(tags: dict[str, str], ids: dict[str, str]) -> dict[str, str]:
    value = tags.get(L.TAG_BASE_RUN)
    if is_local_id(value) and value in ids:
        return {**tags, L.TAG_BASE_RUN: ids[value]}
    return tags


def _deleted_error() -> type[Exception]:
    from trackbook.tracking.base import _Deleted

    return _Deleted


def _tracker_for(uri: str) -> Any:
    """A tracker for exactly the URI the journal names (no environment variable overrides it)."""
    if uri.startswith("aim://"):
        from trackbook.tracking.aim import AimTracker

        return AimTracker(uri, journal=False, offline=False)
    from trackbook.tracking.mlflow import MLflowTracker

    return MLflowTracker(uri, journal=False, offline=False)


def _write_state(folder: Path, acked: int, run_id: str | None) -> None:
    _journal._write_json_atomic(folder / "state.json", {"acked": acked, "run_id": run_id})


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return {}


def _meta_uri(folder: Path) -> str | None:
    uri = _read_meta(folder).get("uri")
    return str(uri) if uri else None


def _uri_of(store: Any) -> str | None:
    if store is None:
        return None
    if hasattr(store, "uri"):
        return str(store.uri)
    from trackbook._uri import resolve_uri

    return resolve_uri(store)


__all__ = ["SyncResult", "discard", "pending", "sync"]
