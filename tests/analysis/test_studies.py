"""Studies and comparisons read from the fixture stores (MLflow and Aim alike)."""

from __future__ import annotations

import numpy as np
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
