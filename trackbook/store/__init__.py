"""Reading runs: the :class:`Store` port, its backends, and :func:`connect`."""

from __future__ import annotations

import logging
from typing import Any

from trackbook._lazy import lazy_exports
from trackbook._uri import DEFAULT_URI, resolve_uri
from trackbook.store.base import RunRecord, Store
from trackbook.store.follow import Follower, FollowUpdate

_log = logging.getLogger("trackbook")


def connect(uri: Any = None, *, create: bool = False) -> Store:
    """Open a store for reading.

    Example:
        >>> import trackbook as tb
        >>> store = tb.connect()                      # doctest: +SKIP
        >>> store = tb.connect("aim:///data/aim")     # doctest: +SKIP

    Args:
        uri: an MLflow tracking URI (``sqlite:///mlflow.db``, ``postgresql://...``,
            ``http://host:port``), an Aim repository (``aim:///path``), a folder of
            TensorBoard event files (``tensorboard:///path``, read-only), or a path to
            a sqlite file or Aim repository. If None, the environment, then the embedded
            default, decide (see :func:`trackbook._uri.resolve_uri`: the same rule writers follow).
        create: start an empty sqlite store when the file does not exist. Off by
            default: reading never writes, so a mistyped path is an error, not a new file.

    Returns:
        A :class:`Store`; its repr names what it connected to.

    Raises:
        UnsupportedStoreURI: the URI names a kind of store trackbook cannot read.
        StoreUnavailable: the store could not be reached or opened, or a sqlite file is
            missing or holds no MLflow store.
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

        store = MLflowStore(resolved, create=create)
    _log.info("trackbook connected to %r", store)
    return store


# The backends import mlflow / aim; they load when first asked for.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MLflowStore": "trackbook.store.mlflow:MLflowStore",
        "AimStore": "trackbook.store.aim:AimStore",
        "TensorBoardStore": "trackbook.store.tensorboard:TensorBoardStore",
    },
    globals(),
)

__all__ = ["DEFAULT_URI", "Follower", "FollowUpdate", "RunRecord", "Store", "connect", "resolve_uri"]
