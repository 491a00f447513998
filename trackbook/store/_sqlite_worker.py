"""ADBC reads of a sqlite file from a process of their own.

``adbc-driver-sqlite`` carries its own copy of SQLite. Two copies of SQLite in one
process do not see each other's file locks (POSIX locks belong to the process, and
each copy keeps its own table of them), so a read by one copy does not hold off a
commit by the other: MLflow's client (Python's ``sqlite3``) logging from a training
thread of the same kernel rewrites pages under the ADBC read, which then returns a
torn result or fails with "database disk image is malformed"; and the ADBC copy's
unlock releases every lock the process holds on the file, the writer's too. See
https://www.sqlite.org/howtocorrupt.html, "Multiple copies of SQLite linked into the
same application".

So the ADBC driver is never loaded into trackbook's process: this file, run as a
script by :class:`Worker` (it imports neither trackbook nor anything of the caller's),
reads for it and streams each result back as Arrow IPC over a pipe, where locks work
between processes as SQLite means them to. The caller's side is a small DBAPI-like
connection (``cursor``, ``execute``, ``fetchall``, ``fetch_record_batch``, ``close``)
for the few statements of :mod:`trackbook.store._mlflow_sql`.

The protocol, one request at a time: a JSON line ``{"path", "sql", "params", "batch_rows"}`` in;
out, a status line (``ok`` or ``error <message>``), after ``ok`` one Arrow IPC stream,
then a second status line for what failed while the rows were read.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading


class WorkerError(RuntimeError):
    """SQLite's or the driver's error in the reading process, or that process gone."""


# ------------------------------------------------------------------ the reading process


def _serve() -> None:  # pragma: no cover - runs in the worker process
    from urllib.parse import quote

    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow as pa

    out = sys.stdout.buffer

    def status(text: str) -> None:
        out.write((" ".join(text.split()) + "\n").encode())
        out.flush()

    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            conn = adbc.connect(f"file:{quote(request['path'])}?mode=ro")
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            status(f"error {exc}")
            continue
        cur = conn.cursor()
        try:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(request["batch_rows"])})
            cur.execute(request["sql"], request["params"] or None)
            reader = cur.fetch_record_batch()
        except Exception as exc:  # noqa: BLE001
            cur.close()
            conn.close()
            status(f"error {exc}")
            continue
        status("ok")
        failed = None
        with pa.ipc.new_stream(out, reader.schema) as stream:
            try:
                for batch in reader:
                    stream.write_batch(batch)
            except Exception as exc:  # noqa: BLE001 - ends the stream, then says why
                failed = exc
        # Closed before the last status line: the caller may write to the file as soon as
        # it reads that line, and this read's lock must be gone by then.
        del reader
        cur.close()
        conn.close()
        status("ok" if failed is None else f"error {failed}")


# ------------------------------------------------------------------ the caller's side


class Worker:
    """One reading process, started at first use and again if it died; one request at
    a time (a connection holds the worker from ``connect`` to ``close``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def connect(self, path: str, batch_rows: int = 1024) -> Connection:
        self._lock.acquire()
        try:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen(
                    # -P: this folder (store/mlflow.py, store/aim.py, ...) is not put on its sys.path
                    [sys.executable, "-P", os.path.abspath(__file__)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )
        except BaseException:
            self._lock.release()
            raise
        return Connection(self, self._proc, os.path.abspath(path), batch_rows)

    def release(self) -> None:
        self._lock.release()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.stdin.close()  # the worker's loop ends with its input
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _forget(self) -> None:
        """In a forked child: the parent's process and pipes are the parent's."""
        self._lock = threading.Lock()
        self._proc = None


class Connection:
    """The worker's reads of one file, as the DBAPI subset the SQL reader uses."""

    def __init__(self, worker: Worker, proc: subprocess.Popen, path: str, batch_rows: int) -> None:
        self._worker, self._proc, self._path, self._batch_rows = worker, proc, path, batch_rows
        self._open = True

    def cursor(self) -> Cursor:
        return Cursor(self)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._worker.release()

    def _status(self) -> None:
        line = self._proc.stdout.readline().decode(errors="replace").strip()
        if line == "ok":
            return
        if not line:  # the process died: the next connection starts another
            self._proc.kill()
            raise WorkerError(f"the sqlite reading process exited (code {self._proc.wait()})")
        raise WorkerError(line.removeprefix("error "))


class Cursor:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stream = None

    def execute(self, sql: str, params=None) -> None:
        self._drain()
        conn = self._conn
        request = {"path": conn._path, "sql": sql, "params": list(params) if params else None,
                   "batch_rows": conn._batch_rows}
        try:
            conn._proc.stdin.write((json.dumps(request) + "\n").encode())
            conn._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"the sqlite reading process is gone ({exc})") from exc
        conn._status()
        import pyarrow as pa

        self._stream = pa.ipc.open_stream(conn._proc.stdout)

    def fetch_record_batch(self):
        """The result's Arrow record batches as they come."""
        yield from self._stream
        self._stream = None
        self._conn._status()

    def fetchall(self) -> list[tuple]:
        table = self._stream.read_all()
        self._stream = None
        self._conn._status()
        return list(zip(*(column.to_pylist() for column in table.columns)))

    def _drain(self) -> None:
        """Reads what is left of a result the caller stopped reading, so the next one can
        come; if that fails, the process is ended (the next connection starts another)."""
        if self._stream is None:
            return
        stream, self._stream = self._stream, None
        try:
            for _ in stream:
                pass
            self._conn._status()
        except BaseException:
            self._conn._proc.kill()
            raise

    def close(self) -> None:
        self._drain()


#: The process's one worker, stopped at exit.
WORKER = Worker()
atexit.register(WORKER.stop)
os.register_at_fork(after_in_child=WORKER._forget)


if __name__ == "__main__":
    _serve()
