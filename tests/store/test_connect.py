"""connect(): which store, and clear errors when it cannot be had."""

from __future__ import annotations

from pathlib import Path

import pytest

import trackbook as tb
from trackbook.servers import free_port
from trackbook.store import resolve_uri


def test_default_is_sqlite_in_the_working_folder(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "ML_TRACKING_BACKEND", "AIM_REPO_PATH", "ML_STORAGE_PATH"):
        monkeypatch.delenv(var, raising=False)
    assert resolve_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = tb.connect(create=True)
    assert repr(store) == f"MLflowStore('sqlite:///{tmp_path / 'mlflow.db'}')"
    assert store.runs().empty


def test_readers_never_create_or_change_a_database(tmp_path: Path):
    import sqlite3

    with pytest.raises(tb.StoreUnavailable, match="does not exist. Readers never create a store"):
        tb.connect(f"sqlite:///{tmp_path / 'typo' / 'mlflow.db'}")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its folder
    app = tmp_path / "app.db"
    with sqlite3.connect(app) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
    before = app.read_bytes()
    with pytest.raises(tb.StoreUnavailable, match="not an MLflow store .its tables: orders"):
        tb.connect(f"sqlite:///{app}")
    assert app.read_bytes() == before  # MLflow's tables were not added
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(tb.StoreUnavailable, match="not a sqlite database"):
        tb.connect(f"sqlite:///{tmp_path / 'notes.txt'}")


def test_environment_variable_wins_over_the_default(tmp_path: Path, monkeypatch, fixture_dir: Path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{fixture_dir / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    assert len(tb.connect().runs()) == 17


def test_paths_are_recognised(fixture_dir: Path):
    assert resolve_uri(fixture_dir / "aim") == f"aim://{fixture_dir / 'aim'}"
    assert resolve_uri(fixture_dir / "aim" / ".aim") == f"aim://{fixture_dir / 'aim'}"
    assert resolve_uri(str(fixture_dir / "mlflow.db")) == f"sqlite:///{fixture_dir / 'mlflow.db'}"


def test_unknown_scheme():
    with pytest.raises(tb.UnsupportedStoreURI, match="'ftp'.*aim:///path"):
        tb.connect("ftp://example/runs")


def test_unreachable_server_fails_fast_with_one_sentence():
    port = free_port()
    with pytest.raises(tb.StoreUnavailable, match=f"Could not reach the MLflow server at http://127.0.0.1:{port}"):
        tb.connect(f"http://127.0.0.1:{port}")


def test_missing_aim_repository(tmp_path: Path):
    with pytest.raises(tb.StoreUnavailable, match="No Aim repository"):
        tb.connect(f"aim://{tmp_path / 'nothing'}")


def test_unopenable_database_hides_credentials():
    port = free_port()
    with pytest.raises(tb.StoreUnavailable) as info:
        tb.connect(f"postgresql://alice:s3cret@127.0.0.1:{port}/mlflow")
    assert "s3cret" not in str(info.value)
    assert "alice:***@127.0.0.1" in str(info.value)


def test_sqlite_path_that_is_not_a_database(tmp_path: Path):
    (tmp_path / "notes.db").write_text("not a database")
    with pytest.raises(tb.StoreUnavailable, match="notes.db is not a sqlite database"):
        tb.connect(f"sqlite:///{tmp_path / 'notes.db'}")
