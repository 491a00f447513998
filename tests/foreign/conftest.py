"""Session fixtures: stores written by MLflow, Optuna and Aim themselves (``data_fixtures.foreign``).

Each store is built the first time a test asks for it, once per session, into one
session folder; the 2,000-run store (``wide``) only when a test asks for it.
``TRACKBOOK_FOREIGN_FIXTURES=DIR`` reuses stores that ``python -m data_fixtures.foreign DIR``
built (read only: tests never write to them), to iterate without rebuilding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import trackbook as tb
from data_fixtures.foreign import build_store, store_uri

SMALL = ["plain", "optuna", "trading", "links", "aim"]
MLFLOW_STORES = ["plain", "optuna", "trading", "links"]


class Foreign:
    """The session's foreign stores: ``foreign.store("plain")``, ``foreign.ids("plain")["basic"]``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        manifest = root / "ids.json"
        self._ids: dict[str, dict[str, str]] = json.loads(manifest.read_text()) if manifest.exists() else {}
        self._stores: dict[str, tb.Store] = {}

    def ids(self, name: str) -> dict[str, str]:
        if name not in self._ids:
            self._ids[name] = build_store(self.root, name)
            (self.root / "ids.json").write_text(json.dumps(self._ids, indent=2, sort_keys=True))
        return self._ids[name]

    def uri(self, name: str) -> str:
        self.ids(name)
        return store_uri(self.root, name)

    def store(self, name: str) -> tb.Store:
        if name not in self._stores:
            self._stores[name] = tb.connect(self.uri(name))
        return self._stores[name]

    def client(self, name: str):
        """MLflow's own client on an MLflow store: the independent answer."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri(name))

    def aim_repo(self):
        """Aim's own Repo on the Aim store, with every closed run indexed."""
        from trackbook import _aim

        repo = _aim.open_repo(Path(self.uri("aim")[len("aim://"):]))
        _aim.index_pending_runs(repo)
        return repo


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Foreign:
    prebuilt = os.environ.get("TRACKBOOK_FOREIGN_FIXTURES")
    return Foreign(Path(prebuilt) if prebuilt else tmp_path_factory.mktemp("foreign-stores"))


@pytest.fixture(scope="session", params=SMALL)
def any_store(request, foreign: Foreign) -> str:
    """The name of each small foreign store in turn."""
    return request.param


@pytest.fixture(scope="session", params=MLFLOW_STORES)
def mlflow_name(request, foreign: Foreign) -> str:
    """The name of each foreign MLflow store in turn."""
    return request.param
