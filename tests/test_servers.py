"""What the servers trackbook starts run beside MLflow's tracking server."""

from __future__ import annotations

from urllib.parse import urlsplit

import psutil


def _server_tree(url: str) -> list[psutil.Process]:
    port = urlsplit(url).port
    listener = next(psutil.Process(c.pid) for c in psutil.net_connections("tcp")
                    if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid)
    root = next((p for p in [listener, *listener.parents()] if "server" in p.cmdline()[1:3]), listener)
    return [root, *root.children(recursive=True)]


def test_a_served_store_runs_no_job_runner(http_store):
    """MLflow 3's server starts a job runner (huey consumers for GenAI jobs) by default:
    eight more processes and about twice the memory of a tracking server. trackbook's
    servers leave it off."""
    tree = _server_tree(http_store.uri)
    commands = [" ".join(p.cmdline()) for p in tree]
    assert any("uvicorn" in c for c in commands), commands  # the tracking server itself
    assert not [c for c in commands if "huey" in c or "_job_runner" in c], commands
