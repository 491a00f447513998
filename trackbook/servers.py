"""Local servers for a team set-up and for tests: PostgreSQL and ``mlflow server``.

Both bind 127.0.0.1 and are stopped by whoever started them (``with`` blocks do it).
Bound to any other address (``host=``), both authenticate: PostgreSQL with scram-sha-256
passwords, the mlflow server as ``--app-name trackbook-auth`` (MLflow's basic-auth app
with trackbook's Arrow endpoint behind the same permission checks). Secrets live in
files of the server folder readable by their owner only (0600) and reach the server
processes through their environment, never their command line.

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
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, *, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None,
              verify: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered:\n{text}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2, verify=verify).ok:
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


LOCAL_HOST = "127.0.0.1"
#: MLflow's switch for its job runner, off in the servers trackbook starts (see MlflowServer.start).
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def secret_file(path: Path) -> str:
    """The secret kept in ``path`` (owner-only, 0600), generated there the first time."""
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


class MlflowAuth:
    """MLflow's basic-auth set-up for one server folder: its ini, user database and secrets.

    ``admin_password`` is the plain admin password on the first start only (the user
    database does not exist yet); MLflow keeps it hashed and it is never written down.
    """

    admin = "admin"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)  # the user database (hashes) and the Flask secret: the owner's only
        self.database = folder / "basic_auth.db"
        self.ini = folder / "basic_auth.ini"
        self.admin_password = None if self.database.exists() else secrets.token_urlsafe(18)
        self.ini.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{self.database}\n"
            f"admin_username = {self.admin}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # MLflow's own credential cache: without it every request pays a PBKDF2 hash; a
            # changed password or deleted user is seen by every worker within this many seconds
            "auth_cache_ttl_seconds = 60\n"
        )

    def forget_first_start(self) -> None:
        """Undo a first start that failed before its admin password was shown: the next start makes a new one."""
        if self.admin_password:
            self.database.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        env = {"MLFLOW_AUTH_CONFIG_PATH": str(self.ini),
               "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_file(self.folder / "flask-secret-key")}
        if self.admin_password:
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.admin_password
        return env


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 that a test can stop and start again.

    ``app="trackbook"`` (the default) runs it as ``--app-name trackbook``: MLflow's
    server plus trackbook's Arrow bulk-history endpoint. ``app=None`` is MLflow's own.
    With ``auth`` it is ``--app-name trackbook-auth`` on ``host``; ``env`` (e.g. the
    PostgreSQL password) reaches the server through its environment.
    """

    def __init__(
        self,
        backend_uri: str,
        workdir: Path,
        *,
        port: int | None = None,
        workers: int = 1,
        app: str | None = "trackbook",
        host: str = LOCAL_HOST,
        auth: MlflowAuth | None = None,
        env: dict[str, str] | None = None,
        uvicorn_opts: str | None = None,
        allowed_hosts: str | None = None,
    ) -> None:
        self.backend_uri = backend_uri
        self.workers = workers
        self.app = "trackbook-auth" if auth else app
        self.auth = auth
        self.host = host
        self.extra_env = env or {}
        self.uvicorn_opts = uvicorn_opts
        self.allowed_hosts = allowed_hosts
        self.workdir = workdir
        self.port = port or free_port()
        scheme = "https" if uvicorn_opts and "--ssl-certfile" in uvicorn_opts else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> str:
        log = self.workdir / f"mlflow-server-{self.port}.log"
        cmd = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", str(self.workdir / "served-artifacts"),
            "--host", self.host,
            "--port", str(self.port),
            "--workers", str(self.workers),
            *(["--app-name", self.app] if self.app else []),
            *(["--uvicorn-opts", self.uvicorn_opts] if self.uvicorn_opts else []),
            *(["--allowed-hosts", self._allowed_hosts()] if self.host != LOCAL_HOST else []),
        ]
        env = {**os.environ, "MLFLOW_TRACKING_URI": "", **self.extra_env, **(self.auth.env() if self.auth else {})}
        # MLflow's job runner (GenAI evaluation and trace jobs) is eight more processes a
        # tracking server does not use; a user who wants it sets the variable to true.
        env.setdefault(JOB_EXECUTION_ENV, "false")
        with log.open("a") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                                         start_new_session=True)
        wait_http(self.url + "/health", timeout=300, proc=self.proc, log=log, verify=not self.url.startswith("https"))
        return self.url

    def _allowed_hosts(self) -> str:
        """Host headers MLflow's security middleware accepts: the address served, unless told otherwise."""
        if self.allowed_hosts:
            return self.allowed_hosts
        if self.host in ("0.0.0.0", "::"):  # every address: the names clients use are unknown here
            return "*"
        return f"{self.host},{self.host}:{self.port},localhost:{self.port},127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str, workdir: Path, *, port: int | None = None, workers: int = 1, app: str | None = "trackbook",
    **options: Any,
) -> Iterator[str]:
    """Run ``mlflow server`` for the duration of the block; yield its URL (options: see MlflowServer)."""
    server = MlflowServer(backend_uri, workdir, port=port, workers=workers, app=app, **options)
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
    """A PostgreSQL cluster in a folder of its own.

    On 127.0.0.1 (the default): trust authentication for one user (``trackbook``), a
    server for one machine or a test. On any other ``host``: scram-sha-256 for every
    connection, local ones included, with a password generated at the first start and
    kept in ``<folder>/pg-password`` (0600); :attr:`env` hands it to a client as
    ``PGPASSWORD``, so URIs carry no secret. As root, the cluster runs as the
    ``postgres`` user in a folder it owns (PostgreSQL refuses root), under /tmp.

    Args:
        folder: where the cluster lives (``<folder>/pgdata``); created by ``start``.
        port: TCP port (a free one if None).
        host: the address to listen on.
    """

    user = "trackbook"

    def __init__(self, folder: str | os.PathLike, *, port: int | None = None, host: str = LOCAL_HOST) -> None:
        self.folder = Path(folder).resolve()
        self.host = host
        self.password_file = self.folder / "pg-password"
        self.password = None if host == LOCAL_HOST else secret_file(self.password_file)
        self.port = port or free_port()
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self._tmp: str | None = None
        self.data = self.folder / "pgdata"

    def uri(self, database: str = "mlflow") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def env(self) -> dict[str, str]:
        """Environment a client needs besides the URI (the password, where there is one)."""
        return {"PGPASSWORD": self.password} if self.password else {}

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
            self._initdb()
        if self._as_root:
            self._run("mkdir", "-p", str(sockets))
        else:
            sockets.mkdir(exist_ok=True)
        options = (f"-p {self.port} -c listen_addresses={self.host} -k {sockets} -c max_connections=200 "
                   f"-c fsync=off -c synchronous_commit=off")
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-l", str(self.data.parent / "postgres.log"), "-o",
                  options, "-w", "-t", "60", "start")
        for name in databases:
            self.create_database(name)
        return self

    def _initdb(self) -> None:
        if self.password is None:
            self._run(_pg_tool("initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                      "--no-instructions")
            return
        import tempfile

        # initdb reads the password from a file; as root a copy the postgres user can read, removed at once
        pwdir = Path(tempfile.mkdtemp(prefix="trackbook-pw-", dir=self.data.parent))
        pwfile = pwdir / "pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.password + "\n")
        if self._as_root:
            import shutil

            for path in (pwdir, pwfile):
                shutil.chown(path, "postgres", "postgres")
        try:
            self._run(_pg_tool("initdb"), "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
                      f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions")
        finally:
            pwfile.unlink(missing_ok=True)
            pwdir.rmdir()
        # other hosts: password (scram) only, never trust; initdb already set scram for local ones
        hba = "host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n"
        self._run("sh", "-c", f"printf '{hba}' >> {self.data / 'pg_hba.conf'}")

    def create_database(self, name: str) -> str:
        """Create ``name`` unless it exists; return its URI."""
        import psycopg

        if not name.isidentifier():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        conn = psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True,
                               password=self.password)
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
                    databases: tuple[str, ...] = ("mlflow",), host: str = LOCAL_HOST) -> Iterator[PostgresServer]:
    """Run PostgreSQL on ``host`` (127.0.0.1 by default) for the duration of the block."""
    server = PostgresServer(folder, port=port, host=host)
    try:
        yield server.start(databases)
    finally:
        server.stop()
