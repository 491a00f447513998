"""A pytest plugin for scripts/mutation only (``-p tests._mutation_preload`` in [tool.mutmut]).

mutmut forks one process per mutant from a warmed one. What the selected tests import
lazily (MLflow's SQL store and its migrations, Optuna's fANOVA with scikit-learn,
scipy.stats for the seed statistics) was imported again in every fork, seconds per
mutant; imported here, once, in the warmed process, every fork has it already.
Imports only: no store, thread or file is opened.
"""

from __future__ import annotations

import logging.config  # noqa: F401
import netrc  # noqa: F401
import socketserver  # noqa: F401

import alembic.command  # noqa: F401
import alembic.config  # noqa: F401
import IPython.core.interactiveshell  # noqa: F401
import mlflow.store.db.utils  # noqa: F401
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
import mlflow.tracking  # noqa: F401
import optuna  # noqa: F401
import optuna.importance  # noqa: F401
import sklearn.ensemble  # noqa: F401
import pyarrow.dataset  # noqa: F401
import pyarrow.ipc  # noqa: F401
import scipy.stats  # noqa: F401
import sqlalchemy  # noqa: F401
import sqlalchemy.dialects.sqlite  # noqa: F401

import trackbook.store._cache  # noqa: F401
import trackbook.store._mlflow_sql  # noqa: F401
import trackbook.store.mlflow  # noqa: F401
import trackbook.tracking.mlflow  # noqa: F401
