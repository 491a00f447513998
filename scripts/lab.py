"""JupyterLab on this project with the demo's store: run through ``bash scripts/dev lab``.

The server binds 127.0.0.1 with a fresh token and its root is the project folder, so
the notebooks' kernels start in ``notebooks/``. It sets ``MLFLOW_TRACKING_URI`` to the
demo's store (``mlflow.db`` in the project folder, as an absolute ``sqlite:///`` URI)
for the server, and the kernels inherit it: the notebooks call ``tb.connect()`` with no
URI and read what the demo wrote. When that store does not exist yet, the fixture runs
(the demo's first step, a few seconds) are written into it first, so the notebooks have
runs, a chain and a study to show before the demo has trained anything. Once the server
answers, the notebook's URL with its token is printed; Ctrl-C stops the server.

Options: ``--port N`` (default 8888, or a free port when 8888 is taken); ``--root DIR``
(another project folder: its ``mlflow.db``, ``mlartifacts/`` and ``notebooks/``; the
tests use it); anything after ``--`` goes to ``jupyter lab`` as it is.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

# Before mlflow loads (the fixture writer imports it): no INFO lines about creating tables.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from trackbook.servers import free_port, stop, wait_http  # noqa: E402

FIRST_NOTEBOOK = "notebooks/01_explore_runs.ipynb"


def _port(wanted: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bash scripts/dev lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--root", type=Path, default=PROJECT)
    parser.add_argument("lab_args", nargs="*", help="passed to jupyter lab (after --)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    store = root / "mlflow.db"
    uri = f"sqlite:///{store}"
    if not store.exists():
        from data_fixtures.build import write_mlflow

        print(f"No store at {store} yet: writing the fixture runs into it (the demo's first step) ...", flush=True)
        write_mlflow(uri, root / "mlartifacts")
    port, token = _port(args.port), secrets.token_hex(24)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           # nothing leaves the machine: no news feed, no update check
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.log_level=WARN", "--LabApp.log_level=WARN"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers run as root; Jupyter refuses it otherwise
    lab = subprocess.Popen([*cmd, *args.lab_args], env=env, cwd=root, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=120, proc=lab)
        print(f"JupyterLab on {root} with MLFLOW_TRACKING_URI={uri}\n"
              f"  http://127.0.0.1:{port}/lab/tree/{FIRST_NOTEBOOK}?token={token}\n"
              "Ctrl-C stops it.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        return lab.wait()
    except (RuntimeError, TimeoutError) as exc:  # its own log, above, says why
        print(f"JupyterLab did not start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(lab)


if __name__ == "__main__":
    sys.exit(main())
