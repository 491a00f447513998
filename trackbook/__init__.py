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

# Loaded on first use: training pulls in torch and stable-baselines3, plots pull in plotly.
_LAZY = {
    "TrackingCallback": ("trackbook.tracking", "TrackingCallback"),
    "MLflowLoggingCallback": ("trackbook.tracking", "MLflowLoggingCallback"),
    "continue_training": ("trackbook.tracking", "continue_training"),
    "load_config": ("trackbook.tracking", "load_config"),
    "health_check": ("trackbook.tracking", "health_check"),
    "sync": ("trackbook.tracking.sync", "sync"),
    "compare": ("trackbook.analysis.compare", "compare"),
    "hpo": ("trackbook.hpo", None),
    "plots": ("trackbook.plots", None),
    "analysis": ("trackbook.analysis", None),
    "report": ("trackbook.reports", "report"),
    "reports": ("trackbook.reports", None),
    "widgets": ("trackbook.widgets", None),
    "ReportFailed": ("trackbook.reports", "ReportFailed"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'trackbook' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)


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
    *_LAZY,
]
