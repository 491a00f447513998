"""trackbook: ask questions of your RL/ML experiment runs from Jupyter.

Example:
    >>> import trackbook as tb
    >>> store = tb.connect()                       # doctest: +SKIP
    >>> runs = store.runs("ppo-cartpole")          # doctest: +SKIP
    >>> hist = store.history(runs, metrics="eval/mean_reward")  # doctest: +SKIP
"""

from __future__ import annotations

from trackbook import columns
from trackbook.errors import (
    ChainCycle,
    ExperimentNotFound,
    InvalidFilter,
    InvalidRunId,
    RunNotFound,
    StoreUnavailable,
    TrackbookError,
    UnsupportedStoreURI,
)
from trackbook.store import Store, connect

__version__ = "0.1.0"

__all__ = [
    "ChainCycle",
    "ExperimentNotFound",
    "InvalidFilter",
    "InvalidRunId",
    "RunNotFound",
    "Store",
    "StoreUnavailable",
    "TrackbookError",
    "UnsupportedStoreURI",
    "columns",
    "connect",
]
