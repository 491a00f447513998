"""The backend-agnostic writer: :class:`Tracker`.

A tracker writes one run at a time. Every write is appended to the run's local
journal (:mod:`trackbook.tracking._journal`) and queued in an
:class:`~trackbook.tracking._outbox.Outbox`, so a store that is down or slow never
blocks or crashes training: writes wait (in memory, then on disk) and are delivered
in order when it is back, and what a dead process could not deliver,
``trackbook sync`` delivers later. Offline (``offline=True`` or
``$TRACKBOOK_OFFLINE=1``), writes go to the journal only.

Each operation kind (:class:`trackbook.layout.OpKind`) is delivered by one backend
method, ``_send_<kind>``; :meth:`Tracker._send` routes to it.
"""

from __future__ import annotations

import abc
import json
import logging
import numbers
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackbook import columns as C
from trackbook._uri import redact_uri
from trackbook.layout import OpKind
from trackbook.tracking import _lifecycle
from trackbook.tracking._journal import Journal
from trackbook.tracking._outbox import Op, Outbox

_log = logging.getLogger("trackbook.tracking")

HEARTBEAT_SECONDS = 30.0
#: With a journal, seconds end_run waits for a failing store before leaving it to ``trackbook sync``.
FAILING_GRACE_SECONDS = 10.0
SYNC_COMMAND = "trackbook sync"

#: The backend method that delivers each kind of operation.
_HANDLERS = {kind: f"_send_{kind.value}" for kind in OpKind}


def offline_default() -> bool:
    """Whether ``$TRACKBOOK_OFFLINE`` asks for offline mode (1, true, yes, on)."""
    return os.environ.get("TRACKBOOK_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class HealthReport:
    """What :meth:`Tracker.health_check` found."""

    ok: bool
    backend: str
    uri: str
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok


def now_ms() -> int:
    return int(time.time() * 1000)


class Tracker(abc.ABC):
    """Writes runs to one store. Get one with :func:`trackbook.tracking.make_tracker`.

    Example:
        >>> with make_tracker("sqlite:///mlflow.db") as tracker:       # doctest: +SKIP
        ...     tracker.start_run("ppo-cartpole", params={"lr": 3e-4})
        ...     tracker.log_metrics({"loss": 0.5}, step=10)

    Args:
        uri: the store.
        flush_interval: seconds between deliveries.
        max_points_in_memory: queued points kept in memory before spilling to disk.
        offline: write the journal only, reach no store (``$TRACKBOOK_OFFLINE`` if None);
            ``trackbook sync`` delivers it later. ``run_id`` is then the local id.
        journal: keep the local journal (on by default; offline implies it).
        journal_max_mb: the journal's size bound (``$TRACKBOOK_JOURNAL_MAX_MB``, else 512).
    """

    backend: str = ""

    def __init__(
        self, uri: str, *, flush_interval: float = 5.0, max_points_in_memory: int = 100_000,
        offline: bool | None = None, journal: bool = True, journal_max_mb: float | None = None,
    ) -> None:
        self.uri = uri
        self.run_id: str | None = None
        #: The run's id in its journal (``local-...``); the store's id is ``run_id``.
        self.local_id: str | None = None
        self.status: str | None = None
        self.offline = offline_default() if offline is None else bool(offline)
        self.journaled = journal or self.offline
        self._journal_max_bytes = None if journal_max_mb is None else int(journal_max_mb * 2**20)
        self.journal: Journal | None = None
        self._experiment: str | None = None
        self._run_created = threading.Event()
        self._outbox_args = {"flush_interval": flush_interval, "max_points_in_memory": max_points_in_memory}
        self._outbox: Outbox | None = None
        self._last_heartbeat = 0.0
        self._end_listeners: list[Any] = []
        self._old_journals: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_uri(self.uri)!r}, run_id={self.run_id!r})"

    # ------------------------------------------------------------------- the run

    def start_run(
        self,
        experiment: str,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        wait: float = 30.0,
    ) -> str | None:
        """Start a run; return its id (None while the store cannot be reached).

        Offline, returns the run's local id at once (the store's id comes with
        ``trackbook sync``).

        Args:
            experiment: experiment name; created if missing.
            name: run name.
            params: logged as params.
            tags: logged as tags.
            parent_run_id: the parent (study) run.
            wait: seconds to wait for the store to create the run; if it is down, the
                run is created as soon as it is back and ``run_id`` is set then.
        """
        if self.active:
            raise RuntimeError(f"{self!r} already has a run open; end_run() it first.")
        self.run_id, self.status, self._experiment = None, C.RUNNING, experiment
        self._run_created.clear()
        self.journal = self._open_journal(experiment, name)
        self.local_id = self.journal.local_id if self.journal else None
        self._outbox = Outbox(None if self.offline else self._send, name=self.backend, journal=self.journal,
                              **self._outbox_args)
        payload = {
            "experiment": experiment,
            "name": name,
            "tags": {str(k): _text(v) for k, v in (tags or {}).items()},
            "parent_run_id": parent_run_id,
            "start_ms": now_ms(),
            "local_id": self.local_id,
        }
        self._outbox.put(OpKind.CREATE, payload)
        if params:
            self.log_params(params)
        _lifecycle.watch(self)
        if self.offline:
            self.run_id = self.local_id
            self._run_created.set()
            _log.info("trackbook: offline run %s journaled in %s", self.local_id, self.journal.folder)
            return self.run_id
        self._deliver_old_journals()
        self._run_created.wait(wait)
        return self.run_id

    def _open_journal(self, experiment: str, name: str | None) -> Journal | None:
        if not self.journaled:
            return None
        meta = {"backend": self.backend, "experiment": experiment, "name": name, "offline": self.offline}
        try:
            return Journal(self.uri, meta, max_bytes=self._journal_max_bytes)
        except OSError as exc:
            if self.offline:
                raise OSError(f"trackbook: offline mode needs a journal, and none could be created: {exc}. "
                              f"Point TRACKBOOK_DATA_DIR at a writable folder.") from exc
            warnings.warn(f"trackbook: no journal for this run ({exc}); writes are kept in memory only and lost "
                          f"if this process dies before the store takes them. Point TRACKBOOK_DATA_DIR at a "
                          f"writable folder.", RuntimeWarning, stacklevel=3)
            return None

    def _deliver_old_journals(self) -> None:
        """Deliver, in the background, journals that earlier processes left for this store
        (``make_tracker`` sets the deliverer; a tracker built by ``trackbook sync`` has none)."""
        if self._old_journals is not None:
            self._old_journals(self.uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._put(OpKind.PARAMS, {str(k): _text(v) for k, v in params.items()})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._put(OpKind.TAGS, {str(k): _text(v) for k, v in tags.items()})

    def log_metrics(self, metrics: Mapping[str, Any], step: int, *, timestamp_ms: int | None = None) -> None:
        """Queue metric points at ``step``; non-numeric values are skipped."""
        if self._outbox is None:
            return
        ts = now_ms() if timestamp_ms is None else int(timestamp_ms)
        points = [[str(k), float(v), ts, int(step)] for k, v in metrics.items() if _is_number(v)]
        self._outbox.put_points(points)
        self._heartbeat()

    def log_metric(self, key: str, value: float, step: int) -> None:
        self.log_metrics({key: value}, step)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or folder (copied aside first, so later changes do not leak in)."""
        path = Path(local_path)
        if not path.exists():
            raise FileNotFoundError(f"log_artifact: {path} does not exist.")
        self._put(OpKind.ARTIFACT, {"path": _snapshot(path, self._scratch()), "artifact_path": artifact_path})

    def log_model(self, model: Any, artifact_path: str = "model") -> None:
        """Upload a model: anything with ``save(path)`` (stable-baselines3, ...) or a saved file.

        A stable-baselines3 model lands at ``<artifact_path>/model.zip``, where
        :func:`~trackbook.tracking.callback.load_model_of_run` looks for it.
        """
        if isinstance(model, (str, Path)):
            self.log_artifact(model, artifact_path)
            return
        save = getattr(model, "save", None)
        if not callable(save):
            raise TypeError(f"log_model() needs a path or an object with save(path); got {type(model).__name__}.")
        target = self._scratch() / "model.zip"
        save(str(target))
        self._put(OpKind.ARTIFACT, {"path": str(target), "artifact_path": artifact_path})

    def log_text(self, text: str, artifact_file: str) -> None:
        """Upload ``text`` as the artifact ``artifact_file`` (e.g. ``"config.yaml"``)."""
        target = self._scratch() / Path(artifact_file).name
        target.write_text(text)
        parent = str(Path(artifact_file).parent)
        self._put(OpKind.ARTIFACT, {"path": str(target), "artifact_path": None if parent == "." else parent})

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)

    def end_run(
        self, status: str = C.FINISHED, *, final_metrics: Mapping[str, Any] | None = None, step: int = 0,
        timeout: float = 120.0,
    ) -> bool:
        """Log ``final_metrics``, end the run with ``status``, deliver everything.

        Never raises because the store is down: returns False if writes are still
        queued after ``timeout`` seconds, or after 10 s of a failing store when the run
        has a journal (they keep being retried while the process lives, and
        ``trackbook sync`` delivers them after it). Offline, returns False: the run
        is in the journal only.
        """
        if self._outbox is None or self.status != C.RUNNING:
            return True
        if status not in C.FINAL_STATUSES:
            raise ValueError(f"status={status!r}: a run ends FINISHED, FAILED or KILLED.")
        if final_metrics:
            self.log_metrics(final_metrics, step)
        self.status = status
        self._outbox.put(OpKind.TERMINATE, {"status": status, "end_ms": now_ms()})
        for listener in self._end_listeners:
            try:
                listener(status)
            except Exception as exc:  # noqa: BLE001 - a watcher must not stop the run from ending
                _log.warning("trackbook: a run-end listener failed: %s", exc)
        self._end_listeners.clear()  # they watched this run, not the next one
        _lifecycle.unwatch(self)
        if self.offline:
            self._outbox.close()
            self.journal.close(complete=False)
            _log.warning("trackbook: offline run %s (experiment %r): %d writes journaled in %s; deliver them with "
                         "`%s`.", self.local_id, self._experiment, self.journal.seq, self.journal.folder,
                         SYNC_COMMAND)
            return False
        delivered = self._wait_delivered(timeout)
        journal = self.journal
        if delivered:
            self._outbox.close(0)
            if journal is not None:
                journal.close(complete=True)
            return True
        self._outbox.close(0, on_drained=self._drained)
        _log.warning(self.undelivered_message())
        _lifecycle.undelivered(self)
        return False

    def undelivered_message(self) -> str:
        """What is left to deliver, for which run, and the command that delivers it."""
        pending = self._outbox.pending if self._outbox is not None else 0
        run = self.run_id or "(not created in the store yet)"
        where = (f"they are kept in the journal {self.journal.folder}; deliver them with `{SYNC_COMMAND}`"
                 if self.journal is not None else "they are retried while this process lives (no journal)")
        return (f"trackbook: {pending} writes of run {run} (local id {self.local_id}, experiment "
                f"{self._experiment!r}) not delivered to {redact_uri(self.uri)} ({self._outbox.last_error}); {where}.")

    def _wait_delivered(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        failing_since: float | None = None
        while True:
            left = deadline - time.monotonic()
            if self._outbox.flush(max(0.0, min(0.5, left))):
                return True
            if left <= 0:
                return False
            if self.journal is not None and self._outbox.failing:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since >= FAILING_GRACE_SECONDS:
                    return False  # the journal keeps it all: do not hold the user's script
            else:
                failing_since = None

    def _drained(self) -> None:
        """Everything was delivered after end_run gave up waiting."""
        if self.journal is not None:
            self.journal.close(complete=True)
        _lifecycle.delivered(self)
        _log.warning("trackbook: the delayed writes of run %s are delivered.", self.run_id)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write so far is delivered; False if ``timeout`` ran out."""
        return True if self._outbox is None else self._outbox.flush(timeout)

    def add_end_listener(self, listener: Any) -> None:
        """Call ``listener(status)`` once, when the current run ends, however it ends."""
        self._end_listeners.append(listener)

    @property
    def active(self) -> bool:
        """Whether a run is open (started and not ended)."""
        return self._outbox is not None and self.status == C.RUNNING

    @property
    def delivering(self) -> bool:
        """Whether the store is failing and writes are waiting."""
        return self._outbox is not None and self._outbox.failing

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end_run(_lifecycle.status_for(exc_type))

    # ------------------------------------------------------------ for backends

    def _scratch(self) -> Path:
        """A new folder for a private copy of an artifact: in the journal while it has room."""
        if self.journal is not None and not self.journal.full:
            try:
                return self.journal.artifact_copy()
            except OSError:
                pass
        return Path(tempfile.mkdtemp(prefix="trackbook-artifact-"))

    def _put(self, kind: str, payload: Any) -> None:
        if self._outbox is None:
            raise RuntimeError("No run is open: call start_run() first.")
        self._outbox.put(kind, payload)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_SECONDS:
            self._last_heartbeat = now
            self._outbox.put(OpKind.HEARTBEAT, {"ms": now_ms()})

    def _created(self, run_id: str) -> None:
        self.run_id = run_id
        if self.journal is not None:
            self.journal.set_run_id(run_id)
        self._run_created.set()

    def _send(self, op: Op) -> None:
        """Deliver one operation to the store, or raise: the backend's ``_send_<kind>``."""
        result = getattr(self, _HANDLERS[OpKind(op.kind)])(op.payload)
        if op.kind == OpKind.CREATE:
            self._created(result)

    # One method per OpKind; each delivers its payload to the store or raises.
    @abc.abstractmethod
    def _send_create(self, payload: dict[str, Any]) -> str:
        """Create the run (or find the one an earlier try of this create made); return its id."""

    @abc.abstractmethod
    def _send_params(self, payload: dict[str, str]) -> None: ...

    @abc.abstractmethod
    def _send_tags(self, payload: dict[str, str]) -> None: ...

    @abc.abstractmethod
    def _send_metrics(self, payload: list[list[Any]]) -> None:
        """Points ``[key, value, ts_ms, step]``, at most a batch."""

    @abc.abstractmethod
    def _send_artifact(self, payload: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def _send_heartbeat(self, payload: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def _send_terminate(self, payload: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def _resume(self, run_id: str) -> None:
        """Write into the existing run ``run_id`` (a sync resuming a journal).

        Raises:
            _Deleted: the store no longer has that run (or holds it deleted).
        """

    @abc.abstractmethod
    def health_check(self) -> HealthReport:
        """Whether the store is reachable and writable, with the problems found."""


class _Deleted(Exception):
    """Raised by a backend's ``_resume``: the store no longer has the run; a sync turns it into RunDeleted."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real)


def _snapshot(path: Path, folder: Path) -> str:
    """A private copy of ``path`` in ``folder`` to upload later, whatever happens to the original."""
    import shutil

    target = folder / path.name
    if path.is_dir():
        shutil.copytree(path, target)
    else:
        shutil.copy2(path, target)
    return str(target)
