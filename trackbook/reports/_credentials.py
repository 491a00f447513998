"""Keep credentials out of reports: they reach the kernel through its environment, never the notebook.

A store URI with ``user:password@`` is split before papermill sees it: for an MLflow
server the pair goes to ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` (which MLflow's client
reads), for a database URI the whole URI goes to a variable the notebook names with
``env:``. Every secret, and the values of MLflow's token variables, is then scrubbed
from every cell, output and traceback of the executed notebook before it is kept or
exported.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

_SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "DATABRICKS_TOKEN")
#: The variable a database URI with credentials travels in; the template reads ``env:<name>``.
STORE_URI_ENV = "TRACKBOOK_REPORT_STORE_URI"


def split_credentials(parameters: dict[str, Any]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Move user:password out of ``store_uri``.

    Returns:
        The parameters without credentials, the secrets to scrub, and the environment
        variables the kernel needs.

    Raises:
        ValueError: a token in the URI's query string (it belongs in ``MLFLOW_TRACKING_TOKEN``).
    """
    secrets = [os.environ[v] for v in _SECRET_ENV if os.environ.get(v)]
    env: dict[str, str] = {}
    uri = parameters.get("store_uri")
    if isinstance(uri, str) and "@" in uri:
        parts = urlsplit(uri)
        if parts.password or parts.username:
            host = parts.hostname or ""
            netloc = host + (f":{parts.port}" if parts.port else "")
            parameters = {**parameters, "store_uri": urlunsplit(parts._replace(netloc=netloc))}
            if parts.scheme.startswith("http"):
                env = {"MLFLOW_TRACKING_USERNAME": unquote(parts.username or ""),
                       "MLFLOW_TRACKING_PASSWORD": unquote(parts.password or "")}
            else:  # a database URI keeps its credentials in a variable the kernel reads back
                env = {STORE_URI_ENV: uri}
                parameters["store_uri"] = f"env:{STORE_URI_ENV}"
            secrets += [s for s in (parts.password, unquote(parts.password or ""), uri) if s]
    for key in ("token", "access_token", "password"):
        if isinstance(uri, str) and re.search(rf"[?&]{key}=([^&]+)", uri):
            raise ValueError("Put tokens in MLFLOW_TRACKING_TOKEN, not in the store URI's query string.")
    return parameters, secrets, env


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment (the kernel inherits it), then restore it."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so no fragment is left)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def scrub_notebook(nb: Any, secrets: list[str]) -> None:
    """Scrub every cell's source and every output of ``nb`` in place."""
    if not secrets:
        return
    for cell in nb.cells:
        cell.source = scrub(cell.source, secrets)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = scrub(out["text"], secrets)
            if "traceback" in out:
                out["traceback"] = [scrub(t, secrets) for t in out["traceback"]]
            if "evalue" in out:
                out["evalue"] = scrub(out["evalue"], secrets)
            for mime, value in out.get("data", {}).items():
                out["data"][mime] = (scrub(value, secrets) if isinstance(value, str)
                                     else json.loads(scrub(json.dumps(value), secrets)))


def scrub_file(src: Path, dst: Path, secrets: list[str]) -> bool:
    """Write ``src`` scrubbed to ``dst``; False when papermill never wrote ``src``."""
    import nbformat

    if not src.is_file():
        return False
    nb = nbformat.read(src, as_version=4)
    scrub_notebook(nb, secrets)
    nbformat.write(nb, dst)
    return True
