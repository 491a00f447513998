"""Studies and comparisons read from the fixture stores (MLflow and Aim alike)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trackbook as tb
from trackbook import columns as C


def test_study_trials_best_and_states(store_and_ids):
    store, ids = store_and_ids
    study = tb.study(store, ids["study"])
    trials = study.trials
    assert list(trials["trial_number"]) == list(range(8))
    assert list(trials[C.RUN_ID]) == [ids[f"trial-{t}"] for t in range(8)]
    assert trials.set_index("trial_number")["state"].to_dict() == {
        **{t: "COMPLETE" for t in (0, 1, 2, 3, 4, 6)}, 5: "FAIL", 7: "RUNNING"}
    assert np.isnan(trials.loc[5, "objective"]) and np.isnan(trials.loc[7, "objective"])
    assert {"params.learning_rate", "params.gamma"} <= set(trials.columns)
    # the best trial is the one the fixture made best, with its params
    parent = store.runs(run_ids=[ids["study"]]).iloc[0]
    best = study.best
    assert best["objective"] == pytest.approx(parent["metrics.best_value"])
    done = trials[trials["state"] == "COMPLETE"]
    assert best[C.RUN_ID] == done.loc[done["objective"].idxmax(), C.RUN_ID]
    trial_run = store.runs(run_ids=[best[C.RUN_ID]]).iloc[0]
    assert best["params.learning_rate"] == pytest.approx(trial_run["params.learning_rate"])
    assert study.direction == "maximize"
    # minimize flips the choice
    assert tb.study(store, ids["study"], direction="minimize").best["objective"] == pytest.approx(done["objective"].min())


def test_importance_is_fanova_over_completed_trials(store_and_ids):
    store, ids = store_and_ids
    imp = tb.study(store, ids["study"]).importance()
    assert set(imp["param"]) == {"learning_rate", "gamma"}
    assert imp["importance"].sum() == pytest.approx(1.0)
    assert imp["importance"].is_monotonic_decreasing


def test_studies_of_an_experiment(store_and_ids):
    store, ids = store_and_ids
    listed = tb.study_list(store, "hpo-cartpole")
    assert list(listed[C.RUN_ID]) == [ids["study"]]
    row = listed.iloc[0]
    assert (row["n_trials"], row["COMPLETE"], row["FAIL"], row["RUNNING"]) == (8, 6, 1, 1)
    assert tb.study_list(store, "ppo-cartpole").empty


def test_a_run_without_trials_is_not_a_study(store_and_ids):
    store, ids = store_and_ids
    with pytest.raises(tb.RunNotFound, match="no child runs"):
        tb.study(store, ids["plain-0"])
    with pytest.raises(tb.InvalidRunId):
        tb.study(store, "1; DROP TABLE runs")


def test_compare_side_by_side(store_and_ids):
    store, ids = store_and_ids
    run_ids = [ids["plain-0"], ids["plain-1"], ids["chain-0"]]
    table = tb.compare(store, run_ids, ["rollout/ep_rew_mean", "train/loss"])
    assert list(table[C.RUN_ID]) == run_ids
    assert "params.learning_rate" in table and "params.n_steps" not in table  # only params that differ
    hist = store.history(run_ids, ["rollout/ep_rew_mean", "train/loss"])
    finite = hist[np.isfinite(hist[C.VALUE])].sort_values(C.STEP)
    last = finite.groupby([C.METRIC, C.RUN_ID], observed=True)[C.VALUE].last()
    for rid, final in zip(run_ids, table["final.rollout/ep_rew_mean"], strict=True):
        assert final == pytest.approx(last[("rollout/ep_rew_mean", rid)])
    rewards = table["final.rollout/ep_rew_mean"]
    assert table.loc[rewards.idxmax(), "rank.rollout/ep_rew_mean"] == 1
    losses = table["final.train/loss"]
    assert table.loc[losses.idxmin(), "rank.train/loss"] == 1  # a loss ranks lower-is-better
    assert table["rank.train/loss"].iloc[2] == 3  # chain-0 logged no loss: last
    assert table["best.train/loss"].iloc[0] == pytest.approx(
        finite[(finite[C.METRIC] == "train/loss") & (finite[C.RUN_ID] == run_ids[0])][C.VALUE].min())


def test_study_list_reads_direction_best_and_every_state(store_and_ids):
    store, ids = store_and_ids
    row = tb.study_list(store, "hpo-cartpole").iloc[0]
    parent = store.run(ids["study"])
    assert row["direction"] == "maximize"
    assert row["best_objective"] == pytest.approx(parent["metrics.best_value"])
    assert row["PRUNED"] == 0


def test_study_list_of_a_minimizing_study_with_a_pruned_trial(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'min.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("hpo")
    parent = client.create_run(exp, run_name="study").info.run_id
    client.log_param(parent, "direction", "minimize")
    objectives = {0: 0.9, 1: 0.2, 2: 0.5, 3: None}
    for number, value in objectives.items():
        trial = client.create_run(exp, run_name=f"t{number}", tags={"mlflow.parentRunId": parent,
                                                                   "trial_number": str(number)}).info.run_id
        client.log_param(trial, "lr", 10.0 ** -number)
        if value is None:
            client.set_tag(trial, "trial_state", "PRUNED")
            client.set_terminated(trial, "KILLED")
        else:
            client.log_metric(trial, "objective", value)
            client.set_terminated(trial, "FINISHED")
    store = tb.connect(uri)
    row = tb.study_list(store, "hpo").iloc[0]
    assert (row["direction"], row["n_trials"], row["COMPLETE"], row["PRUNED"]) == ("minimize", 4, 3, 1)
    assert row["best_objective"] == pytest.approx(0.2)  # the smallest, not the largest
    study = tb.study(store, parent)
    assert study.best["trial_number"] == 1
    assert study.trials.set_index("trial_number").loc[3, "state"] == "PRUNED"


def test_importance_equals_optunas_own_fanova(store_and_ids):
    import optuna

    store, ids = store_and_ids
    study = tb.study(store, ids["study"])
    ours = study.importance(seed=0).set_index("param")["importance"]
    # the same completed trials, told to Optuna directly, scored by Optuna's own evaluator
    done = study.completed
    reference = optuna.create_study(direction=study.direction)
    lr = optuna.distributions.FloatDistribution(done["params.learning_rate"].min(), done["params.learning_rate"].max(),
                                                log=True)
    gamma = optuna.distributions.FloatDistribution(done["params.gamma"].min(), done["params.gamma"].max())
    for _, trial in done.iterrows():
        reference.add_trial(optuna.trial.create_trial(
            params={"learning_rate": float(trial["params.learning_rate"]), "gamma": float(trial["params.gamma"])},
            distributions={"learning_rate": lr, "gamma": gamma}, value=float(trial["objective"])))
    theirs = optuna.importance.get_param_importances(
        reference, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=True)
    assert set(ours.index) == set(theirs)
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name  # values per name, not just the order
    assert ours["gamma"] != pytest.approx(ours["learning_rate"])  # a swap would show


@pytest.fixture()
def small_study(tmp_path):
    """A maximizing study by hand: trial numbers from tags, one failed and one running trial."""
    from mlflow.tracking import MlflowClient

    from tests._mlflow_template import empty_mlflow_db

    uri = empty_mlflow_db(tmp_path / "study.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("hpo")
    parent = client.create_run(exp, run_name="search").info.run_id
    client.log_param(parent, "objective", "eval/mean_reward")
    trials = {}
    # number: (status, objective metric, eval/mean_reward, lr, algo)
    plan = {0: ("FINISHED", 1.0, None, 0.001, "a"), 1: ("FINISHED", None, 7.0, 0.1, "b"),
            2: ("FAILED", None, 9.0, 0.01, "a"), 3: ("RUNNING", None, None, 0.5, "b"),
            4: ("FINISHED", 3.0, None, 1.0, "a")}
    for number, (status, objective, reward, lr, algo) in plan.items():
        run = client.create_run(exp, run_name=f"t{number}", start_time=1000 * (10 - number),
                                tags={"mlflow.parentRunId": parent, "trial_number": str(number)}).info.run_id
        client.log_param(run, "lr", lr)
        client.log_param(run, "algo", algo)
        client.log_param(run, "fixed", "same")
        if objective is not None:
            client.log_metric(run, "objective", objective)
        if reward is not None:
            client.log_metric(run, "eval/mean_reward", reward)
        if status != "RUNNING":
            client.set_terminated(run, status)
        trials[number] = run
    return tb.connect(uri), parent, trials


def test_a_small_study_by_hand(small_study):
    store, parent, trials = small_study
    study = tb.study(store, parent)
    assert study.direction == "maximize" and study.name == "search" and study.objective_metric == "eval/mean_reward"
    t = study.trials
    assert t["trial_number"].tolist() == [0, 1, 2, 3, 4]  # by the tag, not by start time (reversed here)
    assert t["state"].tolist() == ["COMPLETE", "COMPLETE", "FAIL", "RUNNING", "COMPLETE"]
    assert t["objective"].tolist()[:2] == [1.0, 7.0]  # trial 1: the parent's objective metric
    assert np.isnan(t["objective"].iloc[2])  # a failed trial's reward is no objective
    assert study.completed["trial_number"].tolist() == [0, 1, 4]
    assert study.best["trial_number"] == 1 and study.best["run_id"] == trials[1]
    assert study.param_columns == ["params.algo", "params.lr"]  # "fixed" does not vary
    assert repr(study) == "<Study 'search': 5 trials {'COMPLETE': 3, 'FAIL': 1, 'RUNNING': 1}, maximize>"
    low = tb.study(store, parent, direction="MINIMIZE")
    assert low.direction == "minimize" and low.best["trial_number"] == 0
    no_fallback = tb.study(store, parent, objective="nothing")
    assert no_fallback.trials["state"].tolist() == ["COMPLETE", "FAIL", "FAIL", "RUNNING", "COMPLETE"]
    with pytest.raises(ValueError, match="direction='up'"):
        tb.study(store, parent, direction="up")
    with pytest.raises(tb.RunNotFound, match="has no child runs"):
        tb.study(store, trials[0])
    hist = study.history("objective")
    assert sorted(hist["trial_number"].unique().tolist()) == [0, 4]


def test_study_list_counts_and_best_of_a_small_study(small_study):
    store, parent, _ = small_study
    table = tb.study_list(store, "hpo")
    assert table.columns.tolist() == ["run_id", "name", "status", "start_time", "direction", "n_trials",
                                      "COMPLETE", "PRUNED", "FAIL", "RUNNING", "best_objective"]
    row = table.iloc[0]
    assert len(table) == 1 and row["run_id"] == parent and row["name"] == "search"
    assert (row["n_trials"], row["COMPLETE"], row["PRUNED"], row["FAIL"], row["RUNNING"]) == (5, 3, 0, 1, 1)
    assert row["best_objective"] == 7.0 and row["direction"] == "maximize"


def test_spans_decades_and_distributions():
    import optuna.distributions as D

    from trackbook.analysis.studies import _distribution, spans_decades

    assert spans_decades(pd.Series([0.001, 0.5]))
    assert not spans_decades(pd.Series([1.0, 100.0]))  # exactly two decades: linear
    assert not spans_decades(pd.Series([-1.0, 1000.0])) and not spans_decades(pd.Series([5.0]))
    assert _distribution(pd.Series([1, 5, 3])) == D.IntDistribution(1, 5, log=False)
    assert _distribution(pd.Series([0.001, 0.5])) == D.FloatDistribution(0.001, 0.5, log=True)
    assert _distribution(pd.Series([1.0, 2.0])) == D.FloatDistribution(1.0, 2.0, log=False)
    assert _distribution(pd.Series(["b", "a"])) == D.CategoricalDistribution(["a", "b"])
