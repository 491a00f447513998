"""Delivery of a run's writes that survives a store going away for a while.

Every write (metric points, params, tags, artifacts, run creation and termination) is
an operation appended to one ordered queue. A background thread delivers the queue
in order, coalescing metric points into batches. When a delivery fails the operation
stays at the head, a warning is shown once, and delivery is retried with backoff, so
nothing is lost and nothing is reordered; training threads only ever append.

Memory is bounded: past ``max_points_in_memory`` queued points, the oldest operations
are spilled to JSON-lines segments on disk and replayed from there first. A batch that
the store took but whose answer was lost is sent again; MLflow ignores a metric point
it already holds (same key, step, timestamp and value), so the store ends up with
every point exactly once.

With a :class:`~trackbook.tracking._journal.Journal`, every operation is also appended
to it (under the same lock, so the journal's order is the queue's) before ``put``
returns, the journal is fsync'ed each time a batch is taken for delivery, and each
delivered batch is acknowledged in it: a process that dies leaves exactly the
unacknowledged operations for ``trackbook sync``. Without a ``send`` (offline mode)
there is no delivery thread: operations only go to the journal.
"""

from __future__ import annotations

import collections
import json
import logging
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackbook.layout import OpKind

if TYPE_CHECKING:
    from trackbook.tracking._journal import Journal

_log = logging.getLogger("trackbook.tracking")

METRICS = OpKind.METRICS


@dataclass
class Op:
    """One write. ``payload`` is JSON-able: for metrics, a list of [key, value, ts_ms, step].
    ``seq`` is its number in the run's journal (0 without one)."""

    kind: str
    payload: Any
    seq: int = 0

    @property
    def size(self) -> int:
        return len(self.payload) if self.kind == METRICS else 1


class Outbox:
    """An ordered, bounded, disk-spilling queue of writes and the thread that delivers it.

    Args:
        send: delivers one operation or raises; called from the delivery thread only.
        name: names the delivery thread (``trackbook-outbox-{name}``) and spill folders.
        batch_size: most metric points per delivered batch (MLflow takes 1,000).
        flush_interval: seconds between deliveries when nothing asks for one sooner.
        max_points_in_memory: queued points kept in memory before spilling to disk.
        spill_dir: where spilled segments go (a new temporary folder if None).
        journal: where every operation is also written before ``put`` returns.
        retry_backoff: seconds to wait before retrying a failed delivery, first and
            longest: the wait doubles from one to the other and starts again at the
            first after a delivery succeeds (tests set it small).
    """

    def __init__(
        self,
        send: Callable[[Op], None] | None,
        *,
        name: str = "",
        batch_size: int = 1000,
        flush_interval: float = 5.0,
        max_points_in_memory: int = 100_000,
        spill_dir: str | Path | None = None,
        journal: Journal | None = None,
        retry_backoff: tuple[float, float] = (0.5, 5.0),
    ) -> None:
        self._send = send
        self.name = name
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_points_in_memory = max_points_in_memory
        self.retry_backoff = retry_backoff
        if spill_dir is None and journal is not None:
            spill_dir = journal.folder / "spill"
        self._spill_dir = Path(spill_dir) if spill_dir else None
        self._segments: collections.deque[Path] = collections.deque()
        self._replay: collections.deque[Op] = collections.deque()
        self._queue: collections.deque[Op] = collections.deque()
        self._inflight: list[Op] = []  # taken off its queue, being delivered until it succeeds
        self._points_in_memory = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._failing_since: float | None = None
        self._warned = False
        self.delivered_points = 0
        #: CPU seconds the delivery thread spent delivering (what logging costs besides the hooks).
        self.delivery_cpu = 0.0
        self.last_error: str | None = None
        self.journal = journal
        self._on_drained: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        if send is not None:
            self._thread = threading.Thread(target=self._run, name=f"trackbook-outbox-{name}", daemon=True)
            self._thread.start()

    # ----------------------------------------------------------------- producers

    def put(self, kind: str, payload: Any) -> None:
        self._append(Op(kind, payload))
        self._wake.set()

    def put_points(self, points: list[list[Any]]) -> None:
        """Queue metric points ``[key, value, ts_ms, step]``; delivered within ``flush_interval``."""
        if points:
            self._append(Op(METRICS, points))
            if self._points_in_memory >= self.batch_size:
                self._wake.set()

    def _append(self, op: Op) -> None:
        with self._lock:
            if self.journal is not None:
                op.seq = self.journal.append(op.kind, op.payload)
                if self._thread is None:
                    return  # offline: the journal is the only copy
            self._idle.clear()
            self._queue.append(op)
            self._points_in_memory += op.size
            if self._points_in_memory > self.max_points_in_memory:
                self._spill_locked()

    def _spill_locked(self) -> None:
        """Move the older half of the in-memory queue to a segment on disk."""
        if self._spill_dir is None:
            self._spill_dir = Path(tempfile.mkdtemp(prefix=f"trackbook-spill-{self.name}-"))
        self._spill_dir.mkdir(parents=True, exist_ok=True)
        target = self.max_points_in_memory // 2
        moved, count = [], 0
        while self._queue and count < target:
            op = self._queue.popleft()
            moved.append(op)
            count += op.size
        segment = self._spill_dir / f"segment-{time.time_ns()}.jsonl"
        with segment.open("w") as out:
            for op in moved:
                out.write(json.dumps([op.kind, op.payload, op.seq]) + "\n")
        self._segments.append(segment)
        self._points_in_memory -= count
        _log.info("trackbook: store unreachable, %d queued points spilled to %s", count, segment)

    # ------------------------------------------------------------------ delivery

    @property
    def pending(self) -> int:
        """Operations not yet delivered (spilled ones count by segment without a journal)."""
        with self._lock:
            if self.journal is not None:
                return self.journal.pending
            return len(self._inflight) + len(self._queue) + len(self._replay) + len(self._segments)

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is delivered; False if ``timeout`` ran out."""
        self._wake.set()
        return self._idle.wait(timeout)

    def close(self, timeout: float | None = None, *, on_drained: Callable[[], None] | None = None) -> bool:
        """Deliver what is queued (waiting up to ``timeout``), then stop the thread.

        If ``timeout`` runs out, the thread goes on retrying while the process lives,
        calls ``on_drained`` once everything is delivered, and stops.
        """
        if self._thread is None:
            if self.journal is not None:
                self.journal.sync()
            return False  # offline: nothing is delivered here
        done = self.flush(timeout)
        if not done and on_drained is not None:
            self._on_drained = on_drained
            self._wake.set()
            return False
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5)
        return done

    def _next_batch(self) -> list[Op] | None:
        """The operation(s) to deliver next: the batch already in flight, else a new one.

        A new batch is taken off its queue into ``_inflight`` so that a spill running
        meanwhile cannot move it to disk: it stays where it is until it is delivered.
        """
        with self._lock:
            if self._inflight:
                return self._inflight
            if not self._replay and self._segments:
                segment = self._segments.popleft()
                with segment.open() as lines:
                    self._replay.extend(Op(*json.loads(line)) for line in lines)
                segment.unlink()
            source = self._replay if self._replay else self._queue
            if not source:
                self._idle.set()
                return None
            if self.journal is not None:
                self.journal.sync()  # a batch boundary
            batch = [source.popleft()]
            points = batch[0].size
            if batch[0].kind == METRICS:
                while source and source[0].kind == METRICS and points + source[0].size <= self.batch_size:
                    op = source.popleft()
                    batch.append(op)
                    points += op.size
            if source is self._queue:
                self._points_in_memory -= points
            self._inflight = batch
            return batch

    def _run(self) -> None:
        first_backoff, longest_backoff = self.retry_backoff
        backoff = first_backoff
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while True:
                ops = self._next_batch()
                if ops is None:
                    if self._on_drained is not None:
                        try:
                            self._on_drained()
                        except Exception as exc:  # noqa: BLE001 - bookkeeping must not raise in a thread
                            _log.warning("trackbook: finishing a delivered journal failed: %s", exc)
                        return
                    break
                started = time.thread_time()
                try:
                    self._deliver(ops)
                except Exception as exc:  # noqa: BLE001 - any failure: keep, warn once, retry
                    self.delivery_cpu += time.thread_time() - started
                    self._on_failure(exc)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, longest_backoff)
                    if self._stop:
                        return
                    continue
                backoff = first_backoff
                self.delivery_cpu += time.thread_time() - started
                with self._lock:
                    self._inflight = []
                self._on_success(ops)
            if self._stop:
                return

    def _deliver(self, ops: list[Op]) -> None:
        if ops[0].kind == METRICS:
            points = [p for op in ops for p in op.payload]
            for i in range(0, len(points), self.batch_size):
                self._send(Op(METRICS, points[i : i + self.batch_size]))
        else:
            self._send(ops[0])

    def _on_failure(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"trackbook: cannot write to the tracking store ({self.last_error}). Training goes on; "
                f"writes are kept (in memory, then on disk) and delivered when the store is back.",
                RuntimeWarning,
                stacklevel=2,
            )

    def _on_success(self, ops: list[Op]) -> None:
        self.delivered_points += sum(op.size for op in ops if op.kind == METRICS)
        if self.journal is not None:
            self.journal.ack(max(op.seq for op in ops))
        if self._failing_since is not None:
            _log.warning(
                "trackbook: tracking store reachable again after %.0fs; delayed writes delivered.",
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
