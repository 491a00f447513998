"""connect(): which store, and clear errors when it cannot be had."""

from __future__ import annotations

from pathlib import Path

import pytest

import trackbook as tb
from trackbook.servers import free_port
from trackbook.store import resolve_uri


def test_default_is_sqlite_in_the_working_folder(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = tb.connect()
    assert repr(store) == f"MLflowStore('sqlite:///{tmp_path / 'mlflow.db'}')"
    assert store.runs().empty


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
    with pytest.raises(tb.StoreUnavailable, match="Could not open the MLflow store .*notes.db"):
        tb.connect(f"sqlite:///{tmp_path / 'notes.db'}")
