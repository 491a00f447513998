"""The panels on stores trackbook did not write: every experiment, chain, study and comparison
opens without a traceback, draws what the store holds, or says in words why it cannot."""

from __future__ import annotations

import warnings

import pytest

import trackbook as tb
from trackbook import columns as C
from trackbook.widgets import ChainExplorer, ComparePanel, RunBrowser, StudyPanel
from trackbook.widgets._base import Panel

_ERROR = "color:#b00020"


@pytest.fixture(autouse=True)
def no_debounce(monkeypatch):
    monkeypatch.setattr(Panel, "debounce", 0)


def _active_experiments(store: tb.Store) -> list[str]:
    experiments = store.experiments()
    return experiments.loc[experiments[C.LIFECYCLE_STAGE] == "active", C.NAME].tolist()


def test_run_browser_on_every_experiment(foreign, any_store):
    store = foreign.store(any_store)
    for experiment in _active_experiments(store):
        runs = store.runs(experiment)
        panel = RunBrowser(store, experiment)
        assert _ERROR not in panel.status.value, (experiment, panel.status.value)
        assert panel.runs[C.RUN_ID].tolist() == runs[C.RUN_ID].tolist()
        drawn = {t.legendgroup for t in panel.figure.data}
        assert drawn <= set(panel.page_runs[C.RUN_ID]), experiment  # only runs of the page, never others


def test_chain_explorer_on_every_chain(foreign, any_store):
    store = foreign.store(any_store)
    for experiment in _active_experiments(store):
        tree = tb.chain_tree(store, experiment)
        if tree.empty:
            continue
        panel = ChainExplorer(store, experiment=experiment)
        assert _ERROR not in panel.status.value, (experiment, panel.status.value)
        assert panel.chain is not None and len(panel.chain) >= 1
        assert panel.tree.value.count("<tr") >= len(tree[tree[C.DEPTH] == 0]) + 1


def test_study_panel_on_every_study(foreign, any_store):
    store = foreign.store(any_store)
    for experiment in _active_experiments(store):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # objectives and directions inferred
            studies = tb.study_list(store, experiment)
        for parent in studies[C.RUN_ID]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                panel = StudyPanel(store, parent)
            if _ERROR in panel.status.value:  # a study whose objective cannot be told: said in words
                assert "objective" in panel.status.value, panel.status.value
                continue
            assert panel.study is not None
            assert panel.trials.value.count("<tr") == len(panel.study.trials) + 1


def test_compare_panel_on_each_experiments_first_runs(foreign, any_store):
    store = foreign.store(any_store)
    for experiment in _active_experiments(store):
        runs = store.runs(experiment).head(3)
        if runs.empty:
            continue
        panel = ComparePanel(store, runs[C.RUN_ID].tolist())
        assert _ERROR not in panel.status.value, (experiment, panel.status.value)
