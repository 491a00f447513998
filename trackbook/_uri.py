"""Store URIs: which store a URI names, and how to show one without its secrets.

Shared by the readers (``trackbook.store``) and the writers (``trackbook.tracking``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from trackbook.errors import UnsupportedStoreURI

#: The embedded store used when neither an argument nor $MLFLOW_TRACKING_URI names one.
DEFAULT_URI = "sqlite:///mlflow.db"

_MLFLOW_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")


def resolve_uri(uri: str | os.PathLike[str] | None = None) -> str:
    """The store URI :func:`connect` would use: ``uri``, else $MLFLOW_TRACKING_URI, else
    ``sqlite:///mlflow.db`` in the working folder. Relative sqlite and Aim paths are made
    absolute, so the URI still names the same store after a ``chdir``. ``env:NAME`` is
    the URI held in the environment variable NAME (reports pass credentials this way).
    """
    text = os.fspath(uri) if uri is not None else os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
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
            f"or http://host:port."
        )
    scheme = text.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "aim":
        from trackbook._aim import aim_path

        return f"aim://{aim_path(text).resolve()}"
    if scheme == "sqlite":
        rest = text[len("sqlite:///") :] if text.startswith("sqlite:///") else ""
        if rest and not rest.startswith("/") and rest != ":memory:":
            return f"sqlite:///{Path(rest).resolve()}"
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
