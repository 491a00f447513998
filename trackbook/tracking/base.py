"""The backend-agnostic writer: :class:`Tracker`.

A tracker writes one run at a time. Every write goes through an
:class:`~trackbook.tracking._outbox.Outbox`, so a store that is down or slow never
blocks or crashes training: writes wait (in memory, then on disk) and are delivered
in order when it is back. Backends implement :meth:`Tracker._send`.
"""

from __future__ import annotations

import abc
import json
import logging
import numbers
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackbook import columns as C
from trackbook._uri import redact_uri
from trackbook.tracking import _lifecycle
from trackbook.tracking._outbox import Op, Outbox

_log = logging.getLogger("trackbook.tracking")

HEARTBEAT_SECONDS = 30.0


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
    """

    backend: str = ""

    def __init__(self, uri: str, *, flush_interval: float = 5.0, max_points_in_memory: int = 100_000) -> None:
        self.uri = uri
        self.run_id: str | None = None
        self.status: str | None = None
        self._run_created = threading.Event()
        self._outbox_args = {"flush_interval": flush_interval, "max_points_in_memory": max_points_in_memory}
        self._outbox: Outbox | None = None
        self._last_heartbeat = 0.0
        self._end_listeners: list[Any] = []

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
        self.run_id, self.status = None, C.RUNNING
        self._run_created.clear()
        self._outbox = Outbox(self._send, name=self.backend, **self._outbox_args)
        payload = {
            "experiment": experiment,
            "name": name,
            "tags": {str(k): _text(v) for k, v in (tags or {}).items()},
            "parent_run_id": parent_run_id,
            "start_ms": now_ms(),
        }
        self._outbox.put("create", payload)
        if params:
            self.log_params(params)
        _lifecycle.watch(self)
        self._run_created.wait(wait)
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._put("params", {str(k): _text(v) for k, v in params.items()})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._put("tags", {str(k): _text(v) for k, v in tags.items()})

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
        self._put("artifact", {"path": _snapshot(path), "artifact_path": artifact_path})

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
        target = Path(tempfile.mkdtemp(prefix="trackbook-model-")) / "model.zip"
        save(str(target))
        self._put("artifact", {"path": str(target), "artifact_path": artifact_path})

    def log_text(self, text: str, artifact_file: str) -> None:
        """Upload ``text`` as the artifact ``artifact_file`` (e.g. ``"config.yaml"``)."""
        folder = Path(tempfile.mkdtemp(prefix="trackbook-text-"))
        target = folder / Path(artifact_file).name
        target.write_text(text)
        parent = str(Path(artifact_file).parent)
        self._put("artifact", {"path": str(target), "artifact_path": None if parent == "." else parent})

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)

    def end_run(
        self, status: str = C.FINISHED, *, final_metrics: Mapping[str, Any] | None = None, step: int = 0,
        timeout: float = 120.0,
    ) -> bool:
        """Log ``final_metrics``, end the run with ``status``, deliver everything.

        Never raises because the store is down: returns False if writes are still
        queued after ``timeout`` seconds (they keep being retried while the process lives).
        """
        if self._outbox is None or self.status != C.RUNNING:
            return True
        if status not in C.FINAL_STATUSES:
            raise ValueError(f"status={status!r}: a run ends FINISHED, FAILED or KILLED.")
        if final_metrics:
            self.log_metrics(final_metrics, step)
        self.status = status
        self._outbox.put("terminate", {"status": status, "end_ms": now_ms()})
        for listener in self._end_listeners:
            try:
                listener(status)
            except Exception as exc:  # noqa: BLE001 - a watcher must not stop the run from ending
                _log.warning("trackbook: a run-end listener failed: %s", exc)
        self._end_listeners.clear()  # they watched this run, not the next one
        _lifecycle.unwatch(self)
        delivered = self._outbox.close(timeout)
        if not delivered:
            _log.warning(
                "trackbook: %d writes of run %s not delivered yet (%s); still retrying in the background.",
                self._outbox.pending, self.run_id, self._outbox.last_error,
            )
        return delivered

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

    def _put(self, kind: str, payload: Any) -> None:
        if self._outbox is None:
            raise RuntimeError("No run is open: call start_run() first.")
        self._outbox.put(kind, payload)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_SECONDS:
            self._last_heartbeat = now
            self._outbox.put("heartbeat", {"ms": now_ms()})

    def _created(self, run_id: str) -> None:
        self.run_id = run_id
        self._run_created.set()

    @abc.abstractmethod
    def _send(self, op: Op) -> None:
        """Deliver one operation (kinds: create, params, tags, metrics, artifact,
        heartbeat, terminate) to the store, or raise."""

    @abc.abstractmethod
    def health_check(self) -> HealthReport:
        """Whether the store is reachable and writable, with the problems found."""


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real)


def _snapshot(path: Path) -> str:
    """A private copy of ``path`` to upload later, whatever happens to the original."""
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="trackbook-artifact-"))
    target = folder / path.name
    if path.is_dir():
        shutil.copytree(path, target)
    else:
        shutil.copy2(path, target)
    return str(target)
