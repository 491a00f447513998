"""One rule for which store a URI (or nothing) names, for readers and writers alike."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import trackbook as tb
from trackbook import _aim
from trackbook._uri import resolve_uri
from trackbook.tracking import make_tracker

_VARIABLES = ("ML_TRACKING_BACKEND", "MLFLOW_TRACKING_URI", "AIM_REPO_PATH", "ML_STORAGE_PATH")


@pytest.fixture()
def stores(tmp_path: Path, monkeypatch) -> dict[str, str]:
    """Every store the combinations below can name, created up front (readers never create one)."""
    from mlflow.tracking import MlflowClient

    for var in _VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "storage").mkdir()
    sqlite = {
        "default": tmp_path / "mlflow.db",
        "argument": tmp_path / "argument.db",
        "env": tmp_path / "env.db",
        "storage": tmp_path / "storage" / "mlflow.db",
    }
    for path in sqlite.values():
        MlflowClient(f"sqlite:///{path}").search_experiments()
    aim = {"default": tmp_path / "aim", "env": tmp_path / "aim-env", "storage": tmp_path / "storage" / "aim"}
    for path in aim.values():
        path.mkdir()
        _aim.open_repo(path, init=True)
    return {
        **{f"sqlite-{k}": f"sqlite:///{v}" for k, v in sqlite.items()},
        **{f"aim-{k}": f"aim://{v}" for k, v in aim.items()},
    }


def _expected(stores, argument, backend, mlflow_uri, aim_repo, storage) -> str:
    """The documented order, written out case by case."""
    if argument:
        return stores["sqlite-argument"]
    if backend == "aim":
        return stores["aim-env"] if aim_repo else stores["aim-storage"] if storage else stores["aim-default"]
    if mlflow_uri:
        return stores["sqlite-env"]
    if aim_repo and backend is None:
        return stores["aim-env"]
    return stores["sqlite-storage"] if storage else stores["sqlite-default"]


def test_readers_and_writers_name_the_same_store_under_every_combination(stores, tmp_path: Path, monkeypatch):
    combinations = itertools.product([False, True], [None, "mlflow", "aim"], [False, True], [False, True],
                                     [False, True])
    for argument, backend, mlflow_uri, aim_repo, storage in combinations:
        for var, value in zip(_VARIABLES, (backend, "sqlite:///env.db" if mlflow_uri else None,
                                           str(tmp_path / "aim-env") if aim_repo else None,
                                           str(tmp_path / "storage") if storage else None), strict=True):
            if value is None:
                monkeypatch.delenv(var, raising=False)
            else:
                monkeypatch.setenv(var, value)
        given = "sqlite:///argument.db" if argument else None
        case = f"argument={argument} backend={backend} MLFLOW_TRACKING_URI={mlflow_uri} AIM_REPO_PATH={aim_repo} " \
               f"ML_STORAGE_PATH={storage}"
        expected = _expected(stores, argument, backend, mlflow_uri, aim_repo, storage)
        writer = make_tracker(given)
        reader = tb.connect(given)
        assert (writer.uri, reader.uri) == (expected, expected), case


def test_a_store_object_is_written_to_as_given(stores, monkeypatch):
    store = tb.connect(stores["sqlite-argument"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stores["sqlite-env"])
    assert make_tracker(store).uri == store.uri == resolve_uri(store)


def test_an_unknown_backend_is_refused_in_one_sentence(monkeypatch):
    monkeypatch.setenv("ML_TRACKING_BACKEND", "wandb")
    with pytest.raises(tb.UnsupportedStoreURI, match="'wandb' is not supported.*'mlflow' or 'aim'"):
        tb.connect()
    with pytest.raises(tb.UnsupportedStoreURI, match="'wandb' is not supported"):
        make_tracker()


def test_artifacts_of_a_new_experiment_live_beside_the_sqlite_file(tmp_path: Path, monkeypatch):
    from mlflow import MlflowClient

    store_dir, kernel_dir = tmp_path / "store", tmp_path / "notebooks"
    store_dir.mkdir()
    kernel_dir.mkdir()
    monkeypatch.chdir(kernel_dir)  # a notebook's kernel runs in its own folder
    uri = f"sqlite:///{store_dir / 'mlflow.db'}"
    tracker = make_tracker(uri)
    run_id = tracker.start_run("ppo cartpole/v1")
    tracker.log_text("hello", "notes/hello.txt")
    tracker.end_run()
    assert tracker.flush(30)

    client = MlflowClient(uri)
    location = client.get_experiment_by_name("ppo cartpole/v1").artifact_location
    assert location == (store_dir / "mlruns" / "ppo_cartpole_v1").as_uri()
    assert client.get_run(run_id).info.artifact_uri.startswith(location)
    assert (store_dir / "mlruns" / "ppo_cartpole_v1" / run_id / "artifacts" / "notes" / "hello.txt").read_text() == "hello"
    assert list(kernel_dir.iterdir()) == []
