"""Panels driven through their widgets, as a user's clicks would, on the fixture stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from stable_baselines3 import PPO

import trackbook as tb
from trackbook import columns as C
from trackbook.widgets import ChainExplorer, ComparePanel, LiveTrainingPanel, RunBrowser, StudyPanel
from trackbook.widgets._base import Panel


@pytest.fixture(autouse=True)
def no_debounce(monkeypatch):
    monkeypatch.setattr(Panel, "debounce", 0)


def test_run_browser_filters_sorts_selects_and_plots(store_and_ids):
    store, ids = store_and_ids
    panel = RunBrowser(store, "ppo-cartpole", metrics=["rollout/ep_rew_mean"])
    everything = len(store.runs("ppo-cartpole"))
    assert len(panel.runs) == everything and f"{everything} runs" in panel.status.value
    assert panel.experiment.value == "ppo-cartpole"
    panel.filter.value = "params.learning_rate > 0.0005"
    assert 0 < len(panel.runs) < everything
    assert (panel.runs["params.learning_rate"] > 0.0005).all()
    assert panel.table.value.count("<tr") == len(panel.runs) + 1
    panel.filter.value = ""
    panel.sort.value = "metrics.rollout/ep_rew_mean"
    panel.descending.value = True
    values = panel.runs["metrics.rollout/ep_rew_mean"].dropna()
    assert values.is_monotonic_decreasing
    panel.run_select.value = (ids["plain-0"], ids["plain-1"])
    assert panel.selected_ids == [r for r in panel.runs[C.RUN_ID] if r in (ids["plain-0"], ids["plain-1"])]
    assert {t.name for t in panel.figure.data} == set(panel.selected[C.NAME])
    panel.status_filter.value = C.RUNNING
    assert len(panel.runs) == 0 and "0 runs match: loosen the filter" in panel.status.value


def test_a_bad_filter_is_a_message_not_a_traceback(mlflow_store):
    panel = RunBrowser(mlflow_store, "ppo-cartpole")
    panel.filter.value = "params.learning_rate >>> 3"
    assert "InvalidFilter" in panel.status.value and "color:#b00020" in panel.status.value


def test_an_empty_store_says_so(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    MlflowClient(uri).search_experiments()
    panel = RunBrowser(tb.connect(uri))
    assert "has no runs yet" in panel.status.value  # no filter was set: nothing to loosen


def test_chain_explorer(store_and_ids):
    store, ids = store_and_ids
    panel = ChainExplorer(store, ids["chain-2"], metrics=["rollout/ep_rew_mean"])
    assert panel.leaf.value == ids["chain-2"]
    assert [t.name for t in panel.figure.data] == ["chain-0", "chain-1", "chain-2"]
    assert panel.links.value.count("<tr") == 3  # header + 2 links
    panel.leaf.value = ids["chain-1b"]
    assert [t.name for t in panel.figure.data] == ["chain-0", "chain-1", "chain-1b"]
    assert "3 runs in this chain" in panel.status.value


def test_study_panel_and_clicking_a_trial(store_and_ids):
    store, ids = store_and_ids
    panel = StudyPanel(store, ids["study"])
    assert panel.trial_select.value == panel.study.best[C.RUN_ID]
    assert "trial-5 (FAIL)" in panel.status.value and "trial-7 (RUNNING)" in panel.status.value
    assert panel.trials.value.count("<tr") == 9
    assert type(panel.parallel_fig.data[0]).__name__ == "Parcoords"
    assert {t.y[0] for t in panel.importance_fig.data} >= {"learning_rate"} or len(panel.importance_fig.data[0].y) == 2
    # a click on trial 2's point selects it and draws its curves
    scatter = panel.history_fig.data[0]
    index = list(scatter.x).index(2)
    panel._clicked(scatter, type("Points", (), {"point_inds": [index]})(), None)
    assert panel.trial_select.value == ids["trial-2"]
    assert panel.trial_fig.data and panel.trial_fig.data[0].name == "trial-2"


def test_compare_panel(store_and_ids):
    store, ids = store_and_ids
    panel = ComparePanel(store, [ids["plain-0"], ids["plain-1"]], metrics=["rollout/ep_rew_mean"])
    assert list(panel.comparison[C.RUN_ID]) == [ids["plain-0"], ids["plain-1"]]
    assert len(panel.figure.data) == 1
    panel.metric_select.value = ("rollout/ep_rew_mean", "train/loss")
    assert len(panel.figure.data) == 2 and "rank.train/loss" in panel.comparison
    panel.value_kind.value = "best"
    assert list(panel.figure.data[0].y) == pytest.approx(panel.comparison["best.rollout/ep_rew_mean"].tolist())


def test_live_panel_grows_while_training(tmp_path: Path, cartpole):
    cb = tb.TrackingCallback(f"sqlite:///{tmp_path / 'm.db'}", experiment="live", eval_env=cartpole(),
                             eval_freq=512, n_eval_episodes=2)
    panel = LiveTrainingPanel(cb, ["rollout/ep_rew_mean", "eval/mean_reward"], refresh=0.0)
    PPO("MlpPolicy", cartpole(), n_steps=256, batch_size=64, seed=0).learn(2048, callback=cb)
    panel.draw()
    rew, ev = panel.figure.data
    assert list(rew.x) == list(range(256, 2049, 256)) and list(ev.x) == [512, 1024, 1536, 2048]
    assert panel.draws >= 8  # drawn during training, not only at the end
    stored = tb.connect(f"sqlite:///{tmp_path / 'm.db'}").history(cb.run_id, "eval/mean_reward")
    assert list(ev.y) == pytest.approx(stored["value"].tolist())
