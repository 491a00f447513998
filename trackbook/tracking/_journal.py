"""The local journal: every write of a run, on disk before training goes on.

A tracker appends each operation (see :class:`trackbook.layout.OpKind`) to its run's
journal before it returns to training, and the delivery thread marks in the journal
what the store acknowledged. Whatever then happens to the store or to the process
(a server down when the script ends, SIGKILL, a closed laptop), what was not
acknowledged is still on disk, and :func:`trackbook.tracking.sync.sync` delivers it
later, exactly once and in order.

Layout, one folder per run under ``<data>/journals/`` (``<data>`` is
``$TRACKBOOK_DATA_DIR``, else ``$XDG_DATA_HOME/trackbook``, else
``~/.local/share/trackbook``)::

    <local id>/meta.json         the store URI, experiment, run name, writer pid
    <local id>/state.json        {"acked": last acknowledged sequence number, "run_id": the store's id}
    <local id>/journal-000001.jsonl   one operation a line: [seq, t_ms, kind, payload]
    <local id>/artifacts/        private copies of the files to upload
    <local id>/lock              flock'ed by whoever writes or delivers the journal
    ids.jsonl                    every local id with the store id it got, for good

Guarantees and their price:

- A line reaches the operating system (one ``write``) before ``append`` returns, so a
  process killed hard loses nothing; the file is ``fsync``'ed at batch boundaries
  (each batch the delivery thread takes, and at the end of the run), so a power cut
  loses at most the writes since the last batch.
- A line cut mid-write (the process died inside ``write``) loses that line only;
  readers skip it and say so.
- The journal is bounded (``$TRACKBOOK_JOURNAL_MAX_MB``, 512 MiB a run by default).
  Past the bound, or when the disk is full, metric points and artifacts are no longer
  journaled (a warning says so once): they are still delivered while the process
  lives. Run creation, params, tags and the end of the run are always journaled, so
  a synced run gets its real status.
- The writing process holds the journal's lock for its life; the operating system
  releases it when the process dies, however it dies, which is how a sync knows a
  journal is orphaned rather than being written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trackbook.layout import OpKind

_log = logging.getLogger("trackbook.tracking")

DEFAULT_MAX_MB = 512
SEGMENT_BYTES = 8 * 2**20
#: Operations journaled even past the size bound: small, and needed for a right run.
_ALWAYS_KEPT = frozenset({OpKind.CREATE, OpKind.PARAMS, OpKind.TAGS, OpKind.TERMINATE})
LOCAL_ID_PREFIX = "local-"


def data_dir() -> Path:
    """trackbook's data folder: ``$TRACKBOOK_DATA_DIR``, else ``$XDG_DATA_HOME/trackbook``,
    else ``~/.local/share/trackbook``."""
    explicit = os.environ.get("TRACKBOOK_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "trackbook"


def journals_dir() -> Path:
    return data_dir() / "journals"


def max_bytes_default() -> int:
    text = os.environ.get("TRACKBOOK_JOURNAL_MAX_MB")
    try:
        return int(float(text) * 2**20) if text else DEFAULT_MAX_MB * 2**20
    except ValueError:
        warnings.warn(f"TRACKBOOK_JOURNAL_MAX_MB={text!r} is not a number; using {DEFAULT_MAX_MB}.",
                      RuntimeWarning, stacklevel=2)
        return DEFAULT_MAX_MB * 2**20


def new_local_id() -> str:
    return LOCAL_ID_PREFIX + uuid.uuid4().hex[:20]


def is_local_id(run_id: Any) -> bool:
    return isinstance(run_id, str) and run_id.startswith(LOCAL_ID_PREFIX)


def now_ms() -> int:
    return int(time.time() * 1000)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def try_lock(folder: Path) -> int | None:
    """An exclusive lock on ``folder``'s journal (its fd), or None if someone holds it."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def unlock(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)


def record_store_id(local_id: str, run_id: str, uri: str) -> None:
    """Remember for good which store id a local id got (children name offline parents by it)."""
    root = journals_dir()
    root.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"local_id": local_id, "run_id": run_id, "uri": uri}) + "\n"
    fd = os.open(root / "ids.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def store_ids() -> dict[str, str]:
    """``{local id: store id}`` of every run a journal created so far."""
    path = journals_dir() / "ids.jsonl"
    found: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                found[entry["local_id"]] = entry["run_id"]
    return found


class Journal:
    """The journal a live tracker writes: appends, fsyncs at batch boundaries, acks.

    Args:
        uri: the store the run goes to.
        meta: experiment, run name and the like, kept in ``meta.json`` for ``sync --status``.
        max_bytes: the size bound (``$TRACKBOOK_JOURNAL_MAX_MB`` if None).
        root: the journals folder (``<data>/journals`` if None).
    """

    def __init__(self, uri: str, meta: dict[str, Any], *, max_bytes: int | None = None,
                 root: Path | None = None, local_id: str | None = None) -> None:
        self.local_id = local_id or new_local_id()
        self.uri = uri
        self.folder = (root or journals_dir()) / self.local_id
        (self.folder / "artifacts").mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)  # the URI may carry credentials
        self.max_bytes = max_bytes_default() if max_bytes is None else int(max_bytes)
        self._lock_fd = try_lock(self.folder)
        self.run_id: str | None = None
        self.seq = 0
        self.acked = 0
        self.bytes = 0
        self.full = False
        self.dropped = 0
        self._segment = 0
        self._segment_bytes = 0
        self._fd: int | None = None
        self._dirty = False
        _write_json_atomic(self.folder / "meta.json", {
            **meta, "local_id": self.local_id, "uri": uri, "pid": os.getpid(), "host": socket.gethostname(),
            "created_ms": now_ms(),
        })
        self._write_state()
        self._open_segment()

    def __repr__(self) -> str:
        return f"Journal({self.folder})"

    def _open_segment(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        self._segment += 1
        self._segment_bytes = 0
        path = self.folder / f"journal-{self._segment:06d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    # ----------------------------------------------------------------- producer

    def append(self, kind: str, payload: Any) -> int:
        """Journal one operation; return its sequence number (journaled or not)."""
        self.seq += 1
        if self._fd is None or (self.full and kind not in _ALWAYS_KEPT):
            self.dropped += 1
            return self.seq
        line = (json.dumps([self.seq, now_ms(), kind, payload], separators=(",", ":")) + "\n").encode()
        if kind not in _ALWAYS_KEPT and self.bytes + len(line) > self.max_bytes:
            self._refuse(f"it reached its size bound of {self.max_bytes / 2**20:g} MiB")
            self.dropped += 1
            return self.seq
        try:
            if self._segment_bytes + len(line) > SEGMENT_BYTES and self._segment_bytes:
                self._open_segment()
            os.write(self._fd, line)
        except OSError as exc:  # a full disk: training goes on, the store still gets the writes
            self._refuse(f"writing failed ({exc})")
            self.dropped += 1
            return self.seq
        self.bytes += len(line)
        self._segment_bytes += len(line)
        self._dirty = True
        return self.seq

    def _refuse(self, why: str) -> None:
        if self.full:
            return
        self.full = True
        warnings.warn(
            f"trackbook: the journal of run {self.run_id or self.local_id} at {self.folder}: {why}. Training goes "
            f"on; from now on its metric points and artifacts are not journaled: they reach the store while this "
            f"process lives, and are lost if it dies first. Free disk space or raise TRACKBOOK_JOURNAL_MAX_MB.",
            RuntimeWarning,
            stacklevel=4,
        )

    def artifact_copy(self) -> Path:
        """A new folder inside the journal for the private copy of an artifact."""
        folder = self.folder / "artifacts" / f"{self.seq + 1:09d}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def sync(self) -> None:
        """fsync what was appended since the last batch boundary."""
        if self._dirty and self._fd is not None:
            self._dirty = False
            with contextlib.suppress(OSError):
                os.fsync(self._fd)

    # -------------------------------------------------------------- delivery side

    def ack(self, seq: int) -> None:
        """Everything up to ``seq`` is in the store."""
        if seq > self.acked:
            self.acked = seq
            try:
                self._write_state()
            except OSError as exc:  # the worst case is a replay the store deduplicates
                _log.warning("trackbook: could not mark delivered writes in %s: %s", self.folder, exc)

    def set_run_id(self, run_id: str) -> None:
        self.run_id = run_id
        with contextlib.suppress(OSError):
            record_store_id(self.local_id, run_id, self.uri)

    def _write_state(self) -> None:
        _write_json_atomic(self.folder / "state.json", {"acked": self.acked, "run_id": self.run_id})

    @property
    def pending(self) -> int:
        """Operations journaled or queued and not acknowledged by the store."""
        return self.seq - self.acked

    def close(self, *, complete: bool) -> None:
        """Stop writing; delete the journal if ``complete`` (the run ended and the store has it all)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
                os.close(self._fd)
            self._fd = None
        if complete:
            shutil.rmtree(self.folder, ignore_errors=True)
        unlock(self._lock_fd)
        self._lock_fd = None


# --------------------------------------------------------------------- readers


@dataclass
class Entry:
    seq: int
    t_ms: int
    kind: str
    payload: Any


@dataclass
class Pending:
    """What one journal folder holds, as a sync sees it."""

    folder: Path
    meta: dict[str, Any]
    acked: int
    run_id: str | None
    entries: list[Entry]
    problems: list[str]

    @property
    def local_id(self) -> str:
        return str(self.meta.get("local_id") or self.folder.name)

    @property
    def uri(self) -> str:
        return str(self.meta.get("uri", ""))

    @property
    def ended(self) -> bool:
        return any(e.kind == OpKind.TERMINATE for e in self.entries)

    @property
    def last_t_ms(self) -> int | None:
        return self.entries[-1].t_ms if self.entries else None

    def unacked(self) -> list[Entry]:
        return [e for e in self.entries if e.seq > self.acked]


def journal_folders(root: Path | None = None) -> Iterator[Path]:
    """Journal folders, oldest first (parents before their children)."""
    root = root or journals_dir()
    if not root.is_dir():
        return iter(())

    def created(path: Path) -> float:
        try:
            return float(json.loads((path / "meta.json").read_text()).get("created_ms", 0))
        except (OSError, ValueError):
            return path.stat().st_mtime * 1000

    return iter(sorted((p for p in root.iterdir() if (p / "meta.json").is_file()), key=created))


def read(folder: Path) -> Pending:
    """Read a journal folder. A cut or unreadable line is skipped, and named in ``problems``."""
    meta = json.loads((folder / "meta.json").read_text())
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((folder / "state.json").read_text())
    entries: list[Entry] = []
    problems: list[str] = []
    for segment in sorted(folder.glob("journal-*.jsonl")):
        data = segment.read_bytes()
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            cut = number == len(lines)  # no newline after it: the write was interrupted
            try:
                seq, t_ms, kind, payload = json.loads(raw)
                entries.append(Entry(int(seq), int(t_ms), OpKind(kind), payload))
            except (ValueError, TypeError):
                what = "was cut mid-write" if cut else "is unreadable"
                problems.append(f"line {number} of {segment.name} {what} ({len(raw)} bytes); that one write is lost")
    return Pending(folder, meta, int(state.get("acked", 0)), state.get("run_id"), entries, problems)
