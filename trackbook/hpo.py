"""``tb.hpo``: hyper-parameter studies with Optuna, logged as parent + child runs.

See :mod:`trackbook.tracking.hpo`; read a study back with ``tb.study(store, parent_run_id)``.
"""

from trackbook.tracking.hpo import OptimizeResult, Trial, load_objective, optimize, parse_space

__all__ = ["OptimizeResult", "Trial", "load_objective", "optimize", "parse_space"]
