"""Local servers for a team set-up and for tests: PostgreSQL and ``mlflow server``.

Both bind 127.0.0.1 and are stopped by whoever started them (``with`` blocks do it).

Example:
    >>> from trackbook.servers import postgres_server, mlflow_server
    >>> with postgres_server("team/") as pg, mlflow_server(pg.uri("mlflow"), Path("team/")) as url:  # doctest: +SKIP
    ...     store = tb.connect(url)             # REST, for training processes and notebooks
    ...     fast = tb.connect(pg.uri("mlflow"))  # direct SQL, for bulk history reads

``trackbook serve --folder team/`` runs the same from a terminal.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, *, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered:\n{text}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).ok:
                return
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True``, its worker processes included."""
    import signal

    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived their parent


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 that a test can stop and start again.

    ``app="trackbook"`` (the default) runs it as ``--app-name trackbook``: MLflow's
    server plus trackbook's Arrow bulk-history endpoint. ``app=None`` is MLflow's own.
    """

    def __init__(
        self,
        backend_uri: str,
        workdir: Path,
        *,
        port: int | None = None,
        workers: int = 1,
        app: str | None = "trackbook",
    ) -> None:
        self.backend_uri = backend_uri
        self.workers = workers
        self.app = app
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> str:
        log = self.workdir / f"mlflow-server-{self.port}.log"
        cmd = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", str(self.workdir / "served-artifacts"),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", str(self.workers),
            *(["--app-name", self.app] if self.app else []),
        ]
        env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
        with log.open("a") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                                         start_new_session=True)
        wait_http(self.url + "/health", timeout=90, proc=self.proc, log=log)
        return self.url

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str, workdir: Path, *, port: int | None = None, workers: int = 1, app: str | None = "trackbook"
) -> Iterator[str]:
    """Run ``mlflow server`` on 127.0.0.1 for the duration of the block; yield its URL."""
    server = MlflowServer(backend_uri, workdir, port=port, workers=workers, app=app)
    try:
        yield server.start()
    finally:
        server.stop()


def _pg_tool(name: str) -> str:
    """A PostgreSQL server binary: on PATH, else in Debian's /usr/lib/postgresql/<v>/bin."""
    import glob
    import shutil

    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise FileNotFoundError(
            f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql); "
            f"trackbook starts a local server with initdb, pg_ctl and postgres."
        )
    return found


class PostgresServer:
    """A PostgreSQL cluster in a folder of its own, served on 127.0.0.1 only.

    Trust authentication for one user (``trackbook``) on 127.0.0.1: a server for one
    machine or a test, not for a network. As root, the cluster runs as the ``postgres``
    user in a folder it owns (PostgreSQL refuses root), under /tmp.

    Args:
        folder: where the cluster lives (``<folder>/pgdata``); created by ``start``.
        port: TCP port (a free one if None).
    """

    user = "trackbook"

    def __init__(self, folder: str | os.PathLike, *, port: int | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.port = port or free_port()
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self._tmp: str | None = None
        self.data = self.folder / "pgdata"

    def uri(self, database: str = "mlflow") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *cmd: str) -> None:
        full = (["runuser", "-u", "postgres", "--"] if self._as_root else []) + list(cmd)
        done = subprocess.run(full, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")

    def start(self, databases: tuple[str, ...] = ("mlflow",)) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            import shutil
            import tempfile

            self._tmp = tempfile.mkdtemp(prefix="trackbook-pg-")
            shutil.chown(self._tmp, "postgres", "postgres")
            self.data = Path(self._tmp) / "pgdata"
        sockets = self.data.parent / "sockets"
        if not (self.data / "PG_VERSION").is_file():
            self._run(_pg_tool("initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                      "--no-instructions")
        if self._as_root:
            self._run("mkdir", "-p", str(sockets))
        else:
            sockets.mkdir(exist_ok=True)
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {sockets} -c max_connections=200 "
                   f"-c fsync=off -c synchronous_commit=off")
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-l", str(self.data.parent / "postgres.log"), "-o",
                  options, "-w", "-t", "60", "start")
        for name in databases:
            self.create_database(name)
        return self

    def create_database(self, name: str) -> str:
        """Create ``name`` unless it exists; return its URI."""
        import psycopg

        if not name.isidentifier():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        conn = psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.uri(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").is_file():
            self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        if self._tmp:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


@contextlib.contextmanager
def postgres_server(folder: str | os.PathLike, *, port: int | None = None,
                    databases: tuple[str, ...] = ("mlflow",)) -> Iterator[PostgresServer]:
    """Run PostgreSQL on 127.0.0.1 for the duration of the block."""
    server = PostgresServer(folder, port=port)
    try:
        yield server.start(databases)
    finally:
        server.stop()
