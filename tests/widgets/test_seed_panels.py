"""RunBrowser and ComparePanel grouping runs over seeds, on a sweep written with MLflow's client."""

from __future__ import annotations


import pytest

import trackbook as tb
from trackbook import columns as C
from trackbook.widgets import ComparePanel, RunBrowser
from trackbook.widgets._base import Panel
from tests.seed_sweep import EXPERIMENT, REWARD, write_sweep


@pytest.fixture(autouse=True)
def no_debounce(monkeypatch):
    monkeypatch.setattr(Panel, "debounce", 0)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('seed-panels') / 'sweep.db'}"
    logged = write_sweep(uri)
    return tb.connect(uri), logged


def test_run_browser_groups_runs_over_seeds(sweep):
    store, _ = sweep
    panel = RunBrowser(store, EXPERIMENT, metrics=[REWARD])
    assert len({t.legendgroup for t in panel.figure.data}) == 6  # lines per run
    panel.group_by.value = "(configuration)"
    assert "error" not in panel.status.value.lower()
    lines = [t for t in panel.figure.data if t.fill is None]
    assert sorted(t.name for t in lines) == ["learning_rate=0.0003", "learning_rate=0.001"]
    assert len([t for t in panel.figure.data if t.fill == "toself"]) == 2  # a band per group
    assert "learning_rate=0.001" in panel.groups_table.value and "n_runs" in panel.groups_table.value
    panel.group_by.value = "seed"  # by a param the user picks: one group per seed, across rates
    assert sorted(t.name for t in panel.figure.data if t.fill is None) == ["seed=0", "seed=1", "seed=2"]


def test_compare_panel_compares_groups_with_intervals(sweep):
    store, logged = sweep
    panel = ComparePanel(store, list(logged), metrics=[REWARD])
    assert len(panel.comparison) == 6
    panel.group_by.value = "(configuration)"
    assert "2 groups" in panel.status.value and "bootstrap" in panel.status.value
    iqm = panel.intervals[panel.intervals[C.STATISTIC] == C.IQM].set_index(C.GROUP)
    assert iqm.loc["learning_rate=0.001", C.ESTIMATE] > iqm.loc["learning_rate=0.0003", C.HIGH]
    assert list(panel.figure.data[0].x) == pytest.approx(iqm[C.ESTIMATE].tolist())
    assert panel.table.value.count("<tr") == 1 + 2  # header + one row per group and metric
    panel.group_by.value = "(each run)"
    assert len(panel.figure.data[0].y) == 6
