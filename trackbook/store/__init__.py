"""Reading runs: the :class:`Store` interface, its backends, and :func:`connect`."""

from __future__ import annotations

import logging
import os

from trackbook._uri import DEFAULT_URI, resolve_uri
from trackbook.store.base import RunRecord, Store

_log = logging.getLogger("trackbook")

def connect(uri: str | os.PathLike[str] | None = None) -> Store:
    """Open a store for reading.

    Example:
        >>> import trackbook as tb
        >>> store = tb.connect()                      # doctest: +SKIP
        >>> store = tb.connect("aim:///data/aim")     # doctest: +SKIP

    Args:
        uri: an MLflow tracking URI (``sqlite:///mlflow.db``, ``postgresql://...``,
            ``http://host:port``), an Aim repository (``aim:///path``) or a folder of
            TensorBoard event files (``tensorboard:///path``, read-only). If None,
            $MLFLOW_TRACKING_URI, else ``sqlite:///mlflow.db`` in the working folder.

    Returns:
        A :class:`Store`; its repr names what it connected to.

    Raises:
        UnsupportedStoreURI: the URI names a kind of store trackbook cannot read.
        StoreUnavailable: the store could not be reached or opened.
    """
    resolved = resolve_uri(uri)
    if resolved.startswith("aim://"):
        from trackbook.store.aim import AimStore

        store: Store = AimStore(resolved)
    elif resolved.startswith("tensorboard://"):
        from trackbook.store.tensorboard import TensorBoardStore

        store = TensorBoardStore(resolved)
    else:
        from trackbook.store.mlflow import MLflowStore

        store = MLflowStore(resolved)
    _log.info("trackbook connected to %r", store)
    return store


def __getattr__(name: str):
    # The backends import mlflow / aim; load them only when asked for.
    if name == "MLflowStore":
        from trackbook.store.mlflow import MLflowStore

        return MLflowStore
    if name == "AimStore":
        from trackbook.store.aim import AimStore

        return AimStore
    if name == "TensorBoardStore":
        from trackbook.store.tensorboard import TensorBoardStore

        return TensorBoardStore
    raise AttributeError(name)


__all__ = ["AimStore", "DEFAULT_URI", "MLflowStore", "RunRecord", "Store", "TensorBoardStore", "connect", "resolve_uri"]
