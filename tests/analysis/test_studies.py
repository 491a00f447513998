"""Studies and comparisons read from the fixture stores (MLflow and Aim alike)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import trackbook as tb
from trackbook import columns as C
from trackbook.errors import StudyObjectiveUnknown


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
    assert t.index.tolist() == [0, 1, 2, 3, 4]
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
    assert sorted(hist["trial_number"].unique().tolist()) == [0, 4] and hist["trial_number"].dtype == "int64"


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


# ------------------------------------------------------------ studies other tools wrote


def _hand_store(tmp_path, name="hand.db"):
    from mlflow.tracking import MlflowClient

    from tests._mlflow_template import empty_mlflow_db

    uri = empty_mlflow_db(tmp_path / name)
    return tb.connect(uri), MlflowClient(uri)


def _trial(client, exp, parent, name, *, start, status="FINISHED", params=None, metrics=None, tags=None):
    run = client.create_run(exp, run_name=name, start_time=start,
                            tags={"mlflow.parentRunId": parent, **(tags or {})}).info.run_id
    for key, value in (params or {}).items():
        client.log_param(run, key, value)
    for key, value in (metrics or {}).items():
        client.log_metric(run, key, value)
    if status != "RUNNING":
        client.set_terminated(run, status)
    return run


def test_an_optuna_callback_study_reads_numbers_states_and_direction_from_optunas_tags(tmp_path):
    """What optuna_integration.MLflowCallback tags: number, state, direction; no objective metric or params."""
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("optuna")
    parent = client.create_run(exp, run_name="sweep", start_time=1).info.run_id
    # number: (state tag, val_loss, lr); started in reverse so start order is not the numbering
    plan = {0: ("COMPLETE", 0.8, 0.1), 1: ("PRUNED", 0.7, 0.01), 2: ("COMPLETE", 0.3, 0.001), 3: ("FAIL", None, 0.5)}
    runs = {}
    for number, (state, loss, lr) in plan.items():
        runs[number] = _trial(client, exp, parent, f"trial-{number}", start=100 - number, params={"lr": lr},
                              metrics={} if loss is None else {"val_loss": loss},
                              tags={"number": str(number), "state": state, "direction": "MINIMIZE"})
    with pytest.warns(UserWarning, match=r"inferred objective 'val_loss' \(the one metric every finished trial "
                                         r"logged\); pass objective= and direction="):
        study = tb.study(store, parent)
    assert study.direction == "minimize" and study.objective_metric == "val_loss"
    t = study.trials
    assert t["trial_number"].tolist() == [0, 1, 2, 3]
    assert t[C.RUN_ID].tolist() == [runs[n] for n in range(4)]
    assert t["state"].tolist() == ["COMPLETE", "PRUNED", "COMPLETE", "FAIL"]
    assert t["objective"].tolist()[:3] == [0.8, 0.7, 0.3] and np.isnan(t["objective"].iloc[3])
    assert study.best["trial_number"] == 2  # the smallest loss: minimize came from the tags
    assert study.param_columns == ["params.lr"]
    assert study.completed["trial_number"].tolist() == [0, 2]  # the PRUNED trial's finite loss is not complete
    assert t.index.tolist() == [0, 1, 2, 3]
    assert repr(study) == "<Study 'sweep': 4 trials {'COMPLETE': 2, 'PRUNED': 1, 'FAIL': 1}, minimize>"
    with pytest.warns(UserWarning, match="inferred objective 'val_loss'"):
        [row] = tb.study_list(store, "optuna").to_dict("records")
    assert (row["direction"], row["n_trials"], row["COMPLETE"], row["PRUNED"], row["FAIL"], row["RUNNING"]) == (
        "minimize", 4, 2, 1, 1, 0)
    assert row["best_objective"] == 0.3 and row["name"] == "sweep" and row["status"] == "RUNNING"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named: nothing inferred, no warning
        named = tb.study(store, parent, objective="val_loss", direction="maximize")
    assert named.best["trial_number"] == 0


def test_trial_state_tags_win_over_optunas_and_the_run_status(tmp_path):
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("states")
    parent = client.create_run(exp, run_name="s").info.run_id
    client.log_param(parent, "direction", "maximize")
    cases = [  # (status, optuna state tag, trial_state tag) -> state
        ("FINISHED", None, None, "COMPLETE"), ("FAILED", None, None, "FAIL"), ("KILLED", None, None, "FAIL"),
        ("RUNNING", None, None, "RUNNING"), ("FINISHED", "PRUNED", None, "PRUNED"),
        ("FINISHED", "PRUNED", "COMPLETE", "COMPLETE"), ("FINISHED", "nonsense", None, "COMPLETE"),
        ("KILLED", None, "PRUNED", "PRUNED"), ("FINISHED", "COMPLETE", "bogus", "COMPLETE"),
    ]
    for number, (status, optuna_state, state, _) in enumerate(cases):
        tags = {"trial_number": str(number)}
        tags.update({"state": optuna_state} if optuna_state else {})
        tags.update({"trial_state": state} if state else {})
        _trial(client, exp, parent, f"t{number}", start=10 + number, status=status, tags=tags,
               metrics={"objective": float(number)})
    study = tb.study(store, parent)
    assert study.trials["state"].tolist() == [case[-1] for case in cases]
    row = tb.study_list(store, "states").iloc[0]
    assert (row["COMPLETE"], row["PRUNED"], row["FAIL"], row["RUNNING"], row["n_trials"]) == (4, 2, 2, 1, 9)
    assert row["best_objective"] == 8.0  # the largest COMPLETE objective; the PRUNED 7.0 does not count
    assert study.best["trial_number"] == 8


def test_trials_without_number_tags_are_numbered_by_start_then_run_id(tmp_path):
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("unnumbered")
    parent = client.create_run(exp, run_name="s").info.run_id
    runs = [_trial(client, exp, parent, f"t{i}", start=start, metrics={"objective": float(i)},
                   tags={"trial_number": tag} if tag else {})
            for i, (start, tag) in enumerate([(30, "x"), (10, "2"), (20, None)])]
    frame = tb.study(store, parent).trials  # trial_number tags are not whole on every run: start order
    assert frame[C.RUN_ID].tolist() == [runs[1], runs[2], runs[0]] and frame["trial_number"].tolist() == [0, 1, 2]
    # duplicated or fractional numbers are no numbering either
    for tags in ({"trial_number": "1"}, {"trial_number": "1.5"}):
        client.set_tag(runs[2], "trial_number", tags["trial_number"])
        client.set_tag(runs[0], "trial_number", "1")
        client.set_tag(runs[1], "trial_number", "0")
        fallback = tb.study(store, parent).trials
        assert fallback[C.RUN_ID].tolist() == [runs[1], runs[2], runs[0]] and fallback["trial_number"].tolist() == [0, 1, 2]
    # unique whole numbers on some runs only, a word on another: still start order
    client.set_tag(runs[0], "trial_number", "x")
    client.set_tag(runs[1], "trial_number", "2")
    client.set_tag(runs[2], "trial_number", "3")
    partial = tb.study(store, parent).trials
    assert partial[C.RUN_ID].tolist() == [runs[1], runs[2], runs[0]] and partial["trial_number"].tolist() == [0, 1, 2]
    client.set_tag(runs[0], "trial_number", "1")
    client.set_tag(runs[1], "trial_number", "0")
    client.set_tag(runs[2], "trial_number", "7")
    numbered = tb.study(store, parent).trials
    assert numbered["trial_number"].tolist() == [0, 1, 7] and numbered[C.RUN_ID].tolist() == runs[1:2] + runs[0:1] + runs[2:3]


def test_the_direction_is_inferred_from_the_objectives_name_with_a_warning(tmp_path):
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("inferred")
    for name, metric, values, want, best in (("losses", "train_loss", [0.5, 0.2, 0.9], "minimize", 0.2),
                                              ("rewards", "episode_return", [5.0, 9.0, 1.0], "maximize", 9.0)):
        parent = client.create_run(exp, run_name=name).info.run_id
        for i, value in enumerate(values):
            _trial(client, exp, parent, f"{name}-{i}", start=i + 1, metrics={metric: value},
                   tags={"trial_number": str(i)})
        with pytest.warns(UserWarning) as got:
            study = tb.study(store, parent)
        message = str(got[0].message)
        assert (f"inferred objective {metric!r} (the one metric every finished trial logged) and direction {want!r} "
                f"(from the name {metric!r}); pass") in message
        assert f"inferred objective {metric!r}" in message and f"direction {want!r} (from the name {metric!r})" in message
        assert parent in message and f"Study {name!r}" in message
        assert study.direction == want and study.best["objective"] == best
    # the trials' own `objective` metric, and no direction anywhere: maximize, from the name "objective"
    parent = client.create_run(exp, run_name="plain").info.run_id
    for i, value in enumerate([1.0, 3.0]):
        _trial(client, exp, parent, f"plain-{i}", start=10 + i, metrics={"objective": value})
    with pytest.warns(UserWarning, match=r"inferred direction 'maximize' \(from the name 'objective'\)"):
        assert tb.study(store, parent).best["objective"] == 3.0


def test_a_study_whose_objective_cannot_be_told_raises_and_is_listed_with_nan(tmp_path):
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("unknown")
    parent = client.create_run(exp, run_name="two-metrics", start_time=5).info.run_id
    for i in range(2):
        _trial(client, exp, parent, f"t{i}", start=10 + i, metrics={"a": 1.0 + i, "b": 2.0})
    _trial(client, exp, parent, "t2", start=12, status="FAILED", metrics={"c": 1.0})
    with pytest.raises(StudyObjectiveUnknown) as info:
        tb.study(store, parent)
    text = str(info.value)
    assert "study 'two-metrics'" in text and parent in text and "the 2 finished trials share ['a', 'b']" in text
    assert "(trials logged: a, b, c)" in text and f"tb.study(store, {parent!r}, objective=\"a\")" in text
    none = client.create_run(exp, run_name="no-metrics", start_time=1).info.run_id
    client.log_param(none, "direction", "minimize")
    _trial(client, exp, none, "n0", start=20)
    with pytest.raises(StudyObjectiveUnknown, match=r"no metric is logged by all 1 finished trials \(trials "
                                                       r"logged: none\).*objective=\"<metric>\""):
        tb.study(store, none)
    with pytest.warns(UserWarning, match="Which metric is the objective") as got:
        table = tb.study_list(store, "unknown")
    assert len([w for w in got if "Which metric" in str(w.message)]) == 2
    assert table[C.NAME].tolist() == ["no-metrics", "two-metrics"]  # by start time
    assert table["direction"].tolist() == ["minimize", "maximize"] and table["best_objective"].isna().all()
    assert table["n_trials"].tolist() == [1, 3]
    assert table["COMPLETE"].tolist() == [0, 0] and table["FAIL"].tolist() == [1, 3]  # NaN objectives fail
    with pytest.warns(UserWarning, match="Which metric"):
        assert tb.study_list(store, "unknown", direction="minimize")["direction"].tolist() == ["minimize"] * 2
    with pytest.warns(UserWarning, match="Which metric"):  # spelled as the caller likes, listed as the rest are
        assert tb.study_list(store, "unknown", direction="MINIMIZE")["direction"].tolist() == ["minimize"] * 2
    named = tb.study_list(store, "unknown", objective="b")["best_objective"]
    assert np.isnan(named.iloc[0]) and named.iloc[1] == 2.0
    with pytest.raises(ValueError, match="direction='sideways'"):
        tb.study_list(store, "unknown", direction="sideways")


def test_study_list_sorts_by_start_skips_foreign_parents_and_keeps_finite_bests(tmp_path):
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("many")
    elsewhere = client.create_experiment("parents-elsewhere")
    late = client.create_run(exp, run_name="late", start_time=3_000).info.run_id
    early = client.create_run(exp, run_name="early", start_time=1_000).info.run_id
    outside = client.create_run(elsewhere, run_name="outside").info.run_id
    client.log_param(early, "direction", "minimize")
    # `late`'s trials both begin and end the experiment's trials, so in either order of
    # start times its study is met first and the table's sort by the parents' start moves it
    for parent, values, starts in ((late, [1.0, float("nan"), 4.0], [4_000, 4_500, 6_000]),
                                   (early, [2.0, 0.5, float("inf")], [5_000, 5_001, 5_002])):
        for i, (value, start) in enumerate(zip(values, starts, strict=True)):
            _trial(client, exp, parent, f"x{i}", start=start, metrics={"objective": value},
                   tags={"trial_number": str(i)})
    _trial(client, exp, outside, "stray", start=9_000, metrics={"objective": 1.0})
    with pytest.warns(UserWarning, match="inferred direction 'maximize'"):  # `late` names no direction
        table = tb.study_list(store, "many")
    assert table.index.tolist() == [0, 1]
    assert table[C.RUN_ID].tolist() == [early, late]  # the stray trial's parent is not in this experiment
    assert table["direction"].tolist() == ["minimize", "maximize"]
    assert table["best_objective"].tolist() == [0.5, 4.0]  # NaN and inf are no best
    assert table["COMPLETE"].tolist() == [3, 2] and table["FAIL"].tolist() == [0, 1]
    assert table["start_time"].is_monotonic_increasing
    assert tb.study(store, early).best["objective"] == 0.5
    assert tb.study_list(store, "parents-elsewhere").empty
    with pytest.raises(ValueError, match="direction='up'"):  # checked even where there is no study
        tb.study_list(store, "parents-elsewhere", direction="up")
    with pytest.raises(tb.RunNotFound, match="has no child runs in experiment 'parents-elsewhere'"):
        tb.study(store, outside)  # its one child run is in another experiment
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tb.study_list(store, "many", direction="maximize")["best_objective"].tolist() == [2.0, 4.0]


def test_direction_tags_other_tools_write_objective_hints_and_float_numbers(tmp_path):
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("tags")
    # a `direction` tag that is no direction, and a study with no direction tag next to a tagged one
    odd = client.create_run(exp, run_name="odd", start_time=1).info.run_id
    plain = client.create_run(exp, run_name="plain", start_time=2).info.run_id
    for i, value in enumerate([0.4, 0.1]):
        _trial(client, exp, odd, f"o{i}", start=10 + i, metrics={"val_loss": value},
               tags={"trial_number": f"{i}.0", "direction": "sideways"})
        _trial(client, exp, plain, f"p{i}", start=20 + i, metrics={"val_loss": value})
    for parent in (odd, plain):
        with pytest.warns(UserWarning, match="direction 'minimize' \\(from the name 'val_loss'\\)"):
            study = tb.study(store, parent)
        assert study.direction == "minimize" and study.best["objective"] == 0.1
    with pytest.warns(UserWarning, match="inferred objective 'val_loss'"):
        numbered = tb.study(store, odd, direction="minimize").trials["trial_number"]
    assert numbered.tolist() == [0, 1] and numbered.dtype == "int64"  # tags "0.0", "1.0" are whole numbers
    with pytest.warns(UserWarning, match="inferred"):
        tb.study_list(store, "tags")
    # the finished trials share b and c, a failed one logged a: the hint names a shared metric
    hint = client.create_run(exp, run_name="hint", start_time=3).info.run_id
    for i in range(2):
        _trial(client, exp, hint, f"h{i}", start=30 + i, metrics={"b": 1.0 + i, "c": 2.0})
    _trial(client, exp, hint, "h2", start=32, status="FAILED", metrics={"a": 1.0})
    with pytest.raises(StudyObjectiveUnknown) as info:
        tb.study(store, hint)
    assert "share ['b', 'c']" in str(info.value) and "objective=\"b\")" in str(info.value)
    with pytest.warns(UserWarning, match="Which metric"):
        tb.study_list(store, "tags")


def test_param_columns_follow_the_parents_space_params(tmp_path):
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("space")
    parent = client.create_run(exp, run_name="s").info.run_id
    client.log_param(parent, "space.gamma", "float(0.9, 0.999)")
    client.log_param(parent, "space.lr", "float(1e-5, 1e-2, log)")
    for i, (lr, gamma, seed) in enumerate([(1e-3, 0.99, 1), (1e-4, 0.99, 2)]):
        _trial(client, exp, parent, f"t{i}", start=i + 1, params={"lr": lr, "gamma": gamma, "seed": seed},
               metrics={"objective": float(i)})
    study = tb.study(store, parent, direction="maximize")
    # the space names gamma (constant among these trials) and lr; seed varies but was not searched
    assert study.param_columns == ["params.gamma", "params.lr"]


def test_importance_of_a_small_study_equals_optunas_own_fanova(small_study):
    import optuna

    store, parent, _ = small_study
    study = tb.study(store, parent)
    ours = study.importance(seed=3).set_index("param")["importance"]
    done = study.completed  # trials 0, 1 and 4: lr 0.001 / 0.1 / 1.0, algo a / b / a
    assert done["trial_number"].tolist() == [0, 1, 4]
    reference = optuna.create_study(direction="maximize")
    lr = optuna.distributions.FloatDistribution(0.001, 1.0, log=True)  # three decades: log
    algo = optuna.distributions.CategoricalDistribution(["a", "b"])
    for (_, trial), value in zip(done.iterrows(), [1.0, 7.0, 3.0], strict=True):
        reference.add_trial(optuna.trial.create_trial(
            params={"lr": float(trial["params.lr"]), "algo": trial["params.algo"]},
            distributions={"lr": lr, "algo": algo}, value=value))
    theirs = optuna.importance.get_param_importances(
        reference, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=3), normalize=True)
    assert ours.index.tolist() == list(theirs)  # most important first, as Optuna orders them
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name
    assert study.importance(seed=3).columns.tolist() == ["param", "importance"]


def test_importance_needs_two_completed_trials_and_a_varying_param(tmp_path):
    store, client = _hand_store(tmp_path)
    exp = client.create_experiment("tiny")
    parent = client.create_run(exp, run_name="tiny").info.run_id
    _trial(client, exp, parent, "t0", start=1, params={"lr": 0.1, "n": 3}, metrics={"objective": 1.0})
    study = tb.study(store, parent, direction="maximize")
    with pytest.raises(tb.TrackbookError, match=r"Study 'tiny' has 1 completed trials and 0 params that vary among "
                                                r"them; importance needs at least 2 trials"):
        study.importance()
    _trial(client, exp, parent, "t1", start=2, params={"lr": 0.1, "n": 3}, metrics={"objective": 2.0})
    _trial(client, exp, parent, "t2", start=3, params={"lr": 0.2, "n": 4}, status="FAILED")
    study = tb.study(store, parent, direction="maximize")
    assert study.param_columns == ["params.lr", "params.n"]  # they vary over all trials ...
    with pytest.raises(tb.TrackbookError, match="has 2 completed trials and 0 params"):
        study.importance()  # ... but not among the completed ones
    _trial(client, exp, parent, "t3", start=4, params={"lr": 0.3, "n": 5}, metrics={"objective": 0.5})
    imp = tb.study(store, parent, direction="maximize").importance()
    assert sorted(imp["param"]) == ["lr", "n"] and imp["importance"].sum() == pytest.approx(1.0)
    pair = client.create_run(exp, run_name="pair").info.run_id  # two completed trials are enough
    _trial(client, exp, pair, "p0", start=5, params={"lr": 0.1}, metrics={"objective": 1.0})
    _trial(client, exp, pair, "p1", start=6, params={"lr": 0.2}, metrics={"objective": 2.0})
    imp = tb.study(store, pair, direction="maximize").importance()
    assert imp["param"].tolist() == ["lr"] and imp["importance"].tolist() == pytest.approx([1.0])


def test_distributions_for_ints_floats_and_categories():
    import optuna.distributions as D

    from trackbook.analysis.studies import _distribution, _native, spans_decades

    assert _distribution(pd.Series([1, 1000, 3])) == D.IntDistribution(1, 1000, log=True)
    assert _distribution(pd.Series([2.0, 3.0])) == D.FloatDistribution(2.0, 3.0, log=False)  # whole floats stay floats
    assert _distribution(pd.Series(["1", "300"])) == D.FloatDistribution(1.0, 300.0, log=True)
    assert _distribution(pd.Series(["x", 2, "x"], dtype=object)) == D.CategoricalDistribution([2, "x"])
    assert spans_decades(pd.Series([1.0, 100.01])) and not spans_decades(pd.Series([0.0, 1000.0]))
    assert spans_decades(pd.Series(["0.01", "5", "word"]))
    assert type(_native(np.int64(3))) is int and type(_native(np.float64(0.5))) is float and _native("a") == "a"
