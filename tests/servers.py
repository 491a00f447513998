"""Real servers for tests, bound to 127.0.0.1 and stopped by whoever started them."""

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
    """A real ``mlflow server`` on 127.0.0.1 that a test can stop and start again."""

    def __init__(self, backend_uri: str, workdir: Path, *, port: int | None = None, workers: int = 1) -> None:
        self.backend_uri = backend_uri
        self.workers = workers
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
def mlflow_server(backend_uri: str, workdir: Path, *, port: int | None = None, workers: int = 1) -> Iterator[str]:
    """Run ``mlflow server`` on 127.0.0.1 for the duration of the block; yield its URL."""
    server = MlflowServer(backend_uri, workdir, port=port, workers=workers)
    try:
        yield server.start()
    finally:
        server.stop()
