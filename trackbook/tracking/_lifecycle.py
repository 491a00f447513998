"""Ending runs whose training died: exceptions, Ctrl-C, SIGTERM, a notebook cell's error.

SB3's ``learn()`` calls no callback when it raises, so a run would stay RUNNING.
Trackers register here while a run is open, and callbacks mark the span of
``learn()``; whatever ends that span abnormally ends the run FAILED (an exception) or
KILLED (KeyboardInterrupt, SIGTERM, the interpreter exiting mid-training):

- in a script, the uncaught exception passes through ``sys.excepthook``;
- in Jupyter/IPython, the cell's ``post_run_cell`` event carries the error;
- at interpreter exit, runs still open in training are ended KILLED, and other open
  runs FINISHED (FAILED after an uncaught exception), as ``mlflow.start_run`` does.
A run killed hard (SIGKILL, power loss) cannot end itself: readers see it ``stale``
until ``trackbook sync`` delivers its journal and marks it KILLED at its last write.
A process that exits with writes undelivered says so on stderr, with the command
that delivers them.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
import weakref
from typing import Any

from trackbook import columns as C

_open: weakref.WeakSet = weakref.WeakSet()  # trackers with an open run
_training: weakref.WeakSet = weakref.WeakSet()  # trackers inside learn()
_installed = False
_lock = threading.Lock()
_uncaught: list[str] = []  # status implied by an uncaught exception, if any
_undelivered: weakref.WeakSet = weakref.WeakSet()  # ended runs whose writes are still being retried


def status_for(exc_type: type[BaseException] | None) -> str:
    if exc_type is None:
        return C.FINISHED
    if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
        return C.KILLED
    return C.FAILED


def watch(tracker: Any) -> None:
    _install()
    _open.add(tracker)


def unwatch(tracker: Any) -> None:
    _open.discard(tracker)
    _training.discard(tracker)


def undelivered(tracker: Any) -> None:
    _install()
    _undelivered.add(tracker)


def delivered(tracker: Any) -> None:
    _undelivered.discard(tracker)


def training_started(tracker: Any) -> None:
    _training.add(tracker)


def training_ended(tracker: Any) -> None:
    _training.discard(tracker)


def _end_training_runs(status: str) -> None:
    for tracker in list(_training):
        _training.discard(tracker)
        try:
            tracker.end_run(status, timeout=30)
        except Exception:  # noqa: BLE001 - never let bookkeeping mask the real error
            pass


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous_hook = sys.excepthook

    def excepthook(exc_type, exc, tb):
        _uncaught.append(status_for(exc_type))
        _end_training_runs(status_for(exc_type))
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook
    atexit.register(_at_exit)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.events.register("post_run_cell", _post_run_cell)


def _post_run_cell(result: Any) -> None:
    error = getattr(result, "error_in_exec", None)
    if error is not None:
        _end_training_runs(status_for(type(error)))


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _at_exit() -> None:
    _end_training_runs(C.KILLED)
    status = _uncaught[-1] if _uncaught else C.FINISHED
    for tracker in list(_open):
        try:
            tracker.end_run(status, timeout=30)
        except Exception:  # noqa: BLE001
            pass
    for tracker in list(_undelivered):
        try:
            if tracker._outbox is not None and tracker._outbox.pending:
                print(tracker.undelivered_message(), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001
            pass
