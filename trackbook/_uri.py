"""Store URIs: which store a URI names, and how to show one without its secrets.

Shared by the readers (``trackbook.store``) and the writers (``trackbook.tracking``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from trackbook.errors import UnsupportedStoreURI

#: The embedded store, used when neither an argument nor the environment names one.
DEFAULT_URI = "sqlite:///mlflow.db"

_MLFLOW_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")


#: Environment variables that name a store, in the order they are read (see :func:`resolve_uri`).
ENV_VARIABLES = ("ML_TRACKING_BACKEND", "MLFLOW_TRACKING_URI", "AIM_REPO_PATH", "ML_STORAGE_PATH")
BACKENDS = ("mlflow", "aim")


def resolve_uri(uri: Any = None, *, backend: str | None = None) -> str:
    """The store a URI (or nothing) names: the one rule for readers and writers alike.

    1. An explicit ``uri`` wins: a store object (anything with a ``uri``), a URI, or a
       path (an Aim repository folder, a ``.db`` file). ``env:NAME`` is the URI held in
       the environment variable NAME (reports pass credentials that way).
    2. Else the environment. The backend is ``backend``, else ``$ML_TRACKING_BACKEND``
       (``mlflow`` or ``aim``); for MLflow ``$MLFLOW_TRACKING_URI``, then
       ``$ML_STORAGE_PATH/mlflow.db``; for Aim ``$AIM_REPO_PATH``, then
       ``$ML_STORAGE_PATH/aim``. With no backend named, ``$MLFLOW_TRACKING_URI``, then
       ``$AIM_REPO_PATH``, then ``$ML_STORAGE_PATH/mlflow.db``.
    3. Else the embedded default: ``sqlite:///mlflow.db`` in the working folder (``./aim``
       when the backend is Aim).

    Relative sqlite and Aim paths are made absolute, so the URI still names the same
    store after a ``chdir``. Nothing is created: readers never write, and writers create
    their store when they first write.

    Raises:
        UnsupportedStoreURI: the URI's scheme or the backend is not one trackbook knows.
    """
    if uri is not None and not isinstance(uri, (str, os.PathLike)) and hasattr(uri, "uri"):
        return str(uri.uri)
    if uri is not None:
        return _normalise(os.fspath(uri))
    chosen = (backend or os.environ.get("ML_TRACKING_BACKEND") or "").strip().lower()
    if chosen and chosen not in BACKENDS:
        raise UnsupportedStoreURI(
            f"Tracking backend {chosen!r} is not supported; set ML_TRACKING_BACKEND (or backend=) to 'mlflow' or 'aim'."
        )
    env = {name: os.environ.get(name) or None for name in ENV_VARIABLES}
    storage = env["ML_STORAGE_PATH"]
    if chosen == "aim":
        text = env["AIM_REPO_PATH"] or (str(Path(storage) / "aim") if storage else "aim")
        return _aim_uri(text)
    if env["MLFLOW_TRACKING_URI"]:
        return _normalise(env["MLFLOW_TRACKING_URI"])
    if env["AIM_REPO_PATH"] and not chosen:
        return _aim_uri(env["AIM_REPO_PATH"])
    if storage:
        return _normalise(f"sqlite:///{Path(storage) / 'mlflow.db'}")
    return _normalise(DEFAULT_URI)


def _aim_uri(text: str) -> str:
    from trackbook._aim import aim_path

    return f"aim://{aim_path(text).resolve()}"


def _normalise(text: str) -> str:
    if text.startswith("env:"):  # a URI with credentials, kept out of code and notebooks
        name = text[len("env:"):]
        if not os.environ.get(name):
            raise UnsupportedStoreURI(f"{text!r} names the environment variable {name}, which is not set.")
        text = os.environ[name]
    if "://" not in text and ":" not in text.split("/")[0]:
        path = Path(text).expanduser().resolve()
        if (path / ".aim").is_dir() or path.name == ".aim":
            from trackbook._aim import aim_path

            return f"aim://{aim_path(str(path))}"
        if path.suffix in (".db", ".sqlite", ".sqlite3"):
            return f"sqlite:///{path}"
        raise UnsupportedStoreURI(
            f"{text!r} is a path but neither an Aim repository (no .aim folder inside) nor a "
            f"sqlite file (.db). Pass a URI: sqlite:///path.db, aim:///path, postgresql://..., "
            f"http://host:port, or tensorboard:///path for a folder of TensorBoard event files."
        )
    scheme = text.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "aim":
        return _aim_uri(text)
    if scheme == "sqlite":
        rest = text[len("sqlite:///") :] if text.startswith("sqlite:///") else ""
        if rest and not rest.startswith("/") and rest != ":memory:":
            return f"sqlite:///{Path(rest).expanduser().resolve()}"
        return text
    if scheme in _MLFLOW_SCHEMES:
        return text
    if scheme == "tensorboard":  # read-only: a folder of event files (SB3's tensorboard_log=)
        return f"tensorboard://{Path(text[len('tensorboard://'):] or '.').expanduser().resolve()}"
    raise UnsupportedStoreURI(
        f"Unsupported store URI {redact_uri(text)!r} (scheme {scheme!r}). trackbook reads MLflow "
        f"({', '.join(s + '://' for s in _MLFLOW_SCHEMES[:6])}), Aim (aim:///path/to/repo) and "
        f"TensorBoard folders (tensorboard:///path/to/logs)."
    )


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment of a local sqlite store keeps its artifacts, as a file URI.

    Beside the database, in ``mlruns/<experiment>`` next to the ``.db`` file, so the
    artifacts travel with the store whichever folder a kernel runs in (MLflow's own
    default is ``./mlruns`` in the working folder of the process that creates the
    experiment). None for other stores: a server or database decides for itself.

    Example:
        >>> artifact_location("sqlite:////data/mlflow.db", "ppo cartpole")
        'file:///data/mlruns/ppo_cartpole'
    """
    if not uri.startswith("sqlite:////"):
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("._") or "experiment"
    return (Path(uri[len("sqlite:///") :]).parent / "mlruns" / folder).as_uri()


#: Stores trackbook reads but never writes, by URI prefix.
READ_ONLY_PREFIXES = ("tensorboard://",)


def check_writable(uri: str) -> str:
    """``uri`` itself, if trackbook can write runs there.

    Raises:
        ReadOnlyStore: ``uri`` names a store trackbook only reads (TensorBoard folders).
    """
    if uri.startswith(READ_ONLY_PREFIXES):
        from trackbook.errors import ReadOnlyStore

        raise ReadOnlyStore(
            f"Cannot write runs to {redact_uri(uri)!r}: a folder of TensorBoard event files is "
            f"read-only for trackbook. Write to a store that takes writes: MLflow "
            f"(sqlite:///mlflow.db, postgresql://..., http://host:port) or Aim (aim:///path), e.g. "
            f"TrackingCallback('sqlite:///mlflow.db'); keep tensorboard_log= for TensorBoard itself."
        )
    return uri


def redact_uri(uri: str) -> str:
    """The URI with any password or token replaced by ``***``."""
    return re.sub(r"(?<=://)([^/@:]+):([^/@]+)@", r"\1:***@", uri)
