"""trackbook: ask questions of your RL/ML experiment runs from Jupyter.

Example:
    >>> import trackbook as tb
    >>> store = tb.connect()                       # doctest: +SKIP
    >>> runs = store.runs("ppo-cartpole")          # doctest: +SKIP
    >>> hist = store.history(runs, metrics="eval/mean_reward")  # doctest: +SKIP
    >>> chain = tb.chain(store, runs["run_id"][0])  # doctest: +SKIP
    >>> seeds = tb.across_seeds(store, runs, "eval/mean_reward")  # doctest: +SKIP
"""

from __future__ import annotations

from trackbook import columns, layout
from trackbook._lazy import lazy_exports
from trackbook.analysis import Chain, Study, across_seeds, chain, chain_tree, compare, study, study_list
from trackbook.errors import (
    BrowserNotFound,
    ChainCycle,
    ConfigError,
    ExperimentNotFound,
    InvalidFilter,
    InvalidRunId,
    MetricNameCollision,
    PortInUse,
    ReportFailed,
    ReportParameterError,
    RunDeleted,
    RunNotFound,
    StoreUnavailable,
    TrackbookError,
    UnsupportedStoreURI,
)
from trackbook.store import Store, connect

__version__ = "0.1.0"

# Loaded on first use: training pulls in torch and stable-baselines3, figures plotly,
# panels ipywidgets, reports papermill.
_LAZY = {
    "TrackingCallback": "trackbook.tracking:TrackingCallback",
    "MLflowLoggingCallback": "trackbook.tracking:MLflowLoggingCallback",
    "continue_training": "trackbook.tracking:continue_training",
    "load_config": "trackbook.tracking:load_config",
    "make_tracker": "trackbook.tracking:make_tracker",
    "health_check": "trackbook.tracking:health_check",
    "sync": "trackbook.tracking.sync:sync",
    "hpo": "trackbook.hpo",
    "plots": "trackbook.plots",
    "report": "trackbook.reports:report",
    "reports": "trackbook.reports",
    "widgets": "trackbook.widgets",
    "tracking": "trackbook.tracking",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "BrowserNotFound",
    "Chain",
    "ChainCycle",
    "ConfigError",
    "ExperimentNotFound",
    "InvalidFilter",
    "InvalidRunId",
    "MetricNameCollision",
    "PortInUse",
    "ReportFailed",
    "ReportParameterError",
    "RunDeleted",
    "RunNotFound",
    "Store",
    "StoreUnavailable",
    "Study",
    "TrackbookError",
    "UnsupportedStoreURI",
    "across_seeds",
    "chain",
    "chain_tree",
    "columns",
    "compare",
    "connect",
    "layout",
    "study",
    "study_list",
]
