"""Session fixtures: the fixture stores, built once through the real SDKs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import trackbook as tb
from data_fixtures.build import build
from trackbook.servers import mlflow_server


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the tests' history cache out of the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRACKBOOK_CACHE_DIR", str(tmp_path_factory.mktemp("trackbook-cache")))
    mp.setenv("TRACKBOOK_DATA_DIR", str(tmp_path_factory.mktemp("trackbook-data")))  # journals too
    yield
    mp.undo()


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixture-stores")
    build(out)
    return out


@pytest.fixture(scope="session")
def fixture_ids(fixture_dir: Path) -> dict[str, dict[str, str]]:
    """``{"mlflow": {key: run_id}, "aim": {key: run_hash}}``."""
    return json.loads((fixture_dir / "ids.json").read_text())


@pytest.fixture(scope="session")
def mlflow_store(fixture_dir: Path) -> tb.Store:
    return tb.connect(f"sqlite:///{fixture_dir / 'mlflow.db'}")


@pytest.fixture(scope="session")
def aim_store(fixture_dir: Path) -> tb.Store:
    return tb.connect(f"aim://{fixture_dir / 'aim'}")


def _served_fixture(fixture_dir: Path, work: Path, app: str | None):
    db = work / "served.db"
    shutil.copyfile(fixture_dir / "mlflow.db", db)
    with mlflow_server(f"sqlite:///{db}", work, app=app) as url:
        yield tb.connect(url)


@pytest.fixture(scope="session")
def http_store(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The MLflow fixture served on 127.0.0.1 by ``mlflow server --app-name trackbook``."""
    yield from _served_fixture(fixture_dir, tmp_path_factory.mktemp("mlflow-server"), "trackbook")


@pytest.fixture(scope="session")
def stock_http_store(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The MLflow fixture served on 127.0.0.1 by MLflow's own ``mlflow server``."""
    yield from _served_fixture(fixture_dir, tmp_path_factory.mktemp("stock-mlflow-server"), None)


@pytest.fixture(scope="session", params=["mlflow", "aim"])
def store_and_ids(request, fixture_ids):
    """Each local fixture store with its key -> run id map."""
    store = request.getfixturevalue(f"{request.param}_store")
    return store, fixture_ids[request.param]


@pytest.fixture()
def cartpole():
    """A fresh Monitor-wrapped CartPole-v1 each call."""
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    def make():
        return Monitor(gym.make("CartPole-v1"))

    return make


@pytest.fixture()
def fresh_metrics(monkeypatch):
    """A process-wide Prometheus registry of this test's own, and no exporter left behind."""
    from trackbook.tracking import prometheus as prom

    monkeypatch.setattr(prom, "_default", None)
    yield
    prom.stop_metrics_server()
