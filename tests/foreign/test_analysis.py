"""compare, chains and studies on stores trackbook did not write, checked against MLflow's
and Optuna's own answers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import trackbook as tb
from trackbook import columns as C
from data_fixtures.foreign import OPTUNA_STORAGE, links, mlflow_plain, optuna_study, trading
from tests.foreign._truth import mlflow_points, mlflow_runs
from trackbook.errors import ChainCycle, TrackbookError

# ---------------------------------------------------------------------------- compare


def _last_finite(points):
    finite = [p for p in points if math.isfinite(p[1])]
    return finite[-1][1] if finite else math.nan


@pytest.mark.parametrize("name", ["plain", "trading", "links"])
def test_compare_is_mlflows_last_values(foreign, name):
    """final.<m> is the last finite value by step of MLflow's own history; ranks follow goal."""
    store, client = foreign.store(name), foreign.client(name)
    truth = mlflow_runs(client)
    metric_runs: dict[str, list[str]] = {}
    for rid, run in sorted(truth.items()):
        for metric in run.data.metrics:
            metric_runs.setdefault(metric, []).append(rid)
    metric = max(sorted(metric_runs), key=lambda m: len(metric_runs[m]))
    without = [r for r in sorted(truth) if r not in metric_runs[metric]][:2]
    run_ids = metric_runs[metric][:8] + without
    table = tb.compare(store, run_ids, [metric])
    assert table["run_id"].tolist() == run_ids
    expected = [_last_finite(mlflow_points(client, rid, metric)) for rid in run_ids]
    assert np.allclose(table[f"final.{metric}"], expected, equal_nan=True)
    ranked = table.sort_values(f"rank.{metric}")
    finals = ranked[f"final.{metric}"].dropna().tolist()
    lower = tb.layout.metric_goal(metric) == "min"
    assert finals == sorted(finals, reverse=not lower)
    # runs that never logged the metric rank last
    assert ranked[f"final.{metric}"].isna().sum() == len(without)
    assert ranked[f"final.{metric}"].iloc[len(ranked) - len(without):].isna().all()


def test_compare_odd_names_and_infinities(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    table = tb.compare(store, [ids["odd-names"], ids["basic"]], ["train/loss", "ρ_reward/平均"])
    row = table.iloc[0]
    # train/loss ends NaN, +inf, -inf: its last finite value is at step 6
    assert row["final.train/loss"] == foreign.client("plain").get_metric_history(ids["odd-names"], "train/loss")[6].value
    finite = [m.value for m in foreign.client("plain").get_metric_history(ids["odd-names"], "train/loss")
              if math.isfinite(m.value) and abs(m.value) < 1e308]
    assert row["best.train/loss"] == min(finite)  # lower is better for a loss; ±inf are not a best
    assert math.isnan(table.iloc[1]["final.ρ_reward/平均"])


def test_compare_aim_runs(foreign):
    store, ids = foreign.store("aim"), foreign.ids("aim")
    table = tb.compare(store, [ids["contexts"], ids["list-tags"], ids["string-hparams"]], ["loss[subset=val]", "loss"])
    assert table["final.loss[subset=val]"].iloc[0] == 0.72
    assert table["final.loss"].iloc[2] == pytest.approx(0.6)


# ----------------------------------------------------------------------------- chains


def test_trading_chain_restarting_steps_read_as_one_curve(foreign):
    store, ids, client = foreign.store("trading"), foreign.ids("trading"), foreign.client("trading")
    chain = tb.chain(store, ids["restart-2"])
    assert chain.runs["run_id"].tolist() == [ids["restart-0"], ids["restart-1"], ids["restart-2"]]
    assert chain.runs["offset"].tolist() == [0, trading.SEGMENT, 2 * trading.SEGMENT]
    hist = chain.history("evaluation/mean_reward")
    by_segment = hist.groupby("segment")["global_step"].agg(["min", "max"])
    assert (by_segment["min"].iloc[1:].to_numpy() > by_segment["max"].iloc[:-1].to_numpy()).all()
    last = client.get_metric_history(ids["restart-2"], "total_timesteps")[-1].value
    assert hist["global_step"].max() == last
    for position, key in enumerate(["restart-0", "restart-1", "restart-2"]):
        logged = [m.value for m in sorted(client.get_metric_history(ids[key], "evaluation/mean_reward"),
                                          key=lambda m: m.step)]
        assert hist.loc[hist["segment"] == position, "value"].tolist() == logged


def test_trading_chain_with_offset_steps_is_not_shifted_twice(foreign):
    store, ids, client = foreign.store("trading"), foreign.ids("trading"), foreign.client("trading")
    hist = tb.chain(store, ids["offset-1"]).history("portfolio/value")
    own = hist[hist["segment"] == 1]
    logged = sorted(m.step for m in client.get_metric_history(ids["offset-1"], "portfolio/value"))
    assert own["global_step"].tolist() == logged


def test_trading_links_before_and_after(foreign):
    store, ids, client = foreign.store("trading"), foreign.ids("trading"), foreign.client("trading")
    table = tb.chain(store, ids["restart-2"]).links(["evaluation/mean_reward", "portfolio/sharpe_ratio"])
    assert len(table) == 4
    for _, row in table.iterrows():
        for column, rid in (("before", row["base_run_id"]), ("after", row["run_id"])):
            points = mlflow_points(client, rid, row["metric"])
            assert row[column] == pytest.approx(_last_finite(points))
    assert (table["timesteps_added"] == trading.SEGMENT).all()


def test_trading_chain_tree(foreign):
    store, ids = foreign.store("trading"), foreign.ids("trading")
    tree = tb.chain_tree(store, trading.EXPERIMENT).set_index("name")
    assert set(tree.index) == {"restart-0", "restart-1", "restart-2", "offset-0", "offset-1"}
    assert tree.loc["restart-2", "depth"] == 2 and tree.loc["restart-2", "root_run_id"] == ids["restart-0"]
    assert tree.loc["offset-1", "root_run_id"] == ids["offset-0"]


def test_links_healthy_chains_read_alone(foreign):
    store, ids = foreign.store("links"), foreign.ids("links")
    assert tb.chain(store, ids["ok-2"]).runs["name"].tolist() == ["ok-0", "ok-1", "ok-2"]
    assert tb.chain(store, ids["cross-1"]).runs["experiment"].tolist() == [links.OTHER_EXPERIMENT, links.EXPERIMENT]
    branch = tb.chain(store, ids["branch-3"])
    assert branch.runs["name"].tolist() == ["branch-root", "branch-3"]
    assert tb.chain(store, ids["missing"]).missing_base == links.MISSING_ID
    assert tb.chain(store, ids["not-an-id"]).missing_base == links.NOT_AN_ID


def test_a_200_link_chain(foreign):
    store, ids = foreign.store("links"), foreign.ids("links")
    chain = tb.chain(store, ids[f"long-{links.LONG_LINKS - 1}"])
    assert len(chain) == links.LONG_LINKS
    assert chain.runs["offset"].tolist() == [j * links.LONG_SEGMENT for j in range(links.LONG_LINKS)]
    hist = chain.history("reward")
    assert hist["global_step"].is_monotonic_increasing and hist["global_step"].is_unique
    tree = tb.chain_tree(store, links.LONG_EXPERIMENT)
    assert len(tree) == links.LONG_LINKS and tree["depth"].max() == links.LONG_LINKS - 1


def test_the_chain_of_a_run_in_a_cycle_may_raise(foreign):
    store, ids = foreign.store("links"), foreign.ids("links")
    for key in ("cycle-a", "self"):
        with pytest.raises(ChainCycle):
            tb.chain(store, ids[key])


def test_links_tree_lists_broken_links_with_a_reason(foreign):
    """One bad link is a row with a reason; every healthy chain beside it reads as usual."""
    store, ids = foreign.store("links"), foreign.ids("links")
    tree = tb.chain_tree(store, links.EXPERIMENT).set_index("name")
    problem = tree[C.LINK_PROBLEM]
    assert problem["cycle-a"] == problem["cycle-b"] == C.LINK_CYCLE
    assert problem["self"] == C.LINK_SELF
    assert problem["missing"] == problem["not-an-id"] == C.LINK_MISSING
    assert tree.loc["missing", "missing_base"] == links.MISSING_ID
    assert tree.loc["not-an-id", "missing_base"] == links.NOT_AN_ID
    assert problem[["ok-0", "ok-1", "ok-2", "branch-root", "branch-1", "cross-1", "spaced", "upper"]].isna().all()
    assert tree.loc["ok-2", "depth"] == 2 and tree.loc["branch-root", "children"] == 3
    assert tree.loc["cross-0", "experiment"] == links.OTHER_EXPERIMENT
    assert tree.loc["after-cycle", "root_run_id"] in (ids["cycle-a"], ids["cycle-b"])


def test_base_ids_with_whitespace_or_upper_case_are_found(foreign):
    store, ids = foreign.store("links"), foreign.ids("links")
    for key in ("spaced", "upper"):
        chain = tb.chain(store, ids[key])
        assert chain.missing_base is None
        assert chain.runs["run_id"].tolist() == [ids["ok-0"], ids[key]]


def test_after_a_cycle_the_chain_stops_with_a_reason(foreign):
    store, ids = foreign.store("links"), foreign.ids("links")
    tree = tb.chain_tree(store, links.EXPERIMENT).set_index("name")
    assert tree.loc["ok-1", "base_run_id"] == ids["ok-0"]
    assert tree["root_run_id"].notna().all()


# ---------------------------------------------------------------------------- studies


def _optuna_study():
    import optuna

    def load(out_dir):
        storage = f"sqlite:///{out_dir / OPTUNA_STORAGE}"
        return optuna.load_study(study_name=optuna_study.STUDY_NAME, storage=storage)

    return load


def test_hand_written_sweep_infers_objective_and_direction(foreign):
    store, ids, client = foreign.store("plain"), foreign.ids("plain"), foreign.client("plain")
    with pytest.warns(UserWarning, match="(?i)infer"):
        study = tb.study(store, ids["sweep-a"])
    assert study.direction == "minimize" and study.objective_metric == "val_loss"
    trials = study.trials
    assert trials["run_id"].tolist() == [ids[f"sweep-a/{t}"] for t in range(len(mlflow_plain.SWEEP_A_LR))]
    assert trials["trial_number"].tolist() == list(range(len(mlflow_plain.SWEEP_A_LR)))
    states = dict(zip(trials["run_id"], trials["state"], strict=True))
    assert states[ids[f"sweep-a/{mlflow_plain.SWEEP_A_FAILED}"]] == "FAIL"
    finished = {rid: client.get_run(rid).data.metrics["val_loss"] for rid in trials["run_id"]
                if client.get_run(rid).info.status == "FINISHED"}
    assert study.best["run_id"] == min(finished, key=finished.get)
    assert study.best["objective"] == min(finished.values())


def test_hand_written_sweep_with_the_objective_given(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is inferred, so nothing is warned about
        study = tb.study(store, ids["sweep-a"], objective="val_loss", direction="minimize")
    assert study.best["params.lr"] == pytest.approx(0.003)


def test_ambiguous_objective_is_a_clear_error(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    with pytest.raises(TrackbookError, match="objective=") as caught:
        tb.study(store, ids["sweep-b"])
    assert "val_accuracy" in str(caught.value) and "val_loss" in str(caught.value)
    with pytest.warns(UserWarning, match="(?i)infer"):
        study = tb.study(store, ids["sweep-b"], objective="val_accuracy")
    assert study.direction == "maximize" and study.best["name"] == "b-3"


def test_study_list_takes_objective_and_direction(foreign):
    store = foreign.store("plain")
    table = tb.study_list(store, mlflow_plain.SWEEP_EXPERIMENT, objective="val_loss", direction="minimize")
    table = table.set_index("name")
    best_a = min(min(mlflow_plain.sweep_a_val_loss(t)[-1:]) for t in range(len(mlflow_plain.SWEEP_A_LR))
                 if t != mlflow_plain.SWEEP_A_FAILED)
    assert table.loc["sweep-a", "best_objective"] == pytest.approx(best_a)
    assert table.loc["sweep-a", "FAIL"] == 1 and table.loc["sweep-a", "COMPLETE"] == 5
    assert table.loc["sweep-b", "best_objective"] == pytest.approx(0.35)
    assert (table["direction"] == "minimize").all()


def test_optuna_callback_study_is_optunas(foreign):
    """Trial numbers, states, objectives and the best trial as Optuna itself recorded them."""
    store, ids = foreign.store("optuna"), foreign.ids("optuna")
    truth = _optuna_study()(foreign.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        study = tb.study(store, ids["optuna-parent"])
    trials = study.trials.set_index("trial_number")
    assert sorted(trials.index) == [t.number for t in truth.trials]
    for t in truth.trials:
        row = trials.loc[t.number]
        assert row["run_id"] == ids[f"trial/{t.number}"]
        assert row["state"] == t.state.name, t.number
        if t.state.name == "COMPLETE":
            assert row["objective"] == pytest.approx(t.value)
    assert study.direction == "minimize"
    assert study.best["trial_number"] == truth.best_trial.number
    assert study.best["objective"] == pytest.approx(truth.best_value)


def test_optuna_study_list_counts_optunas_states(foreign):
    store = foreign.store("optuna")
    truth = _optuna_study()(foreign.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        row = tb.study_list(store, optuna_study.STUDY_NAME).iloc[0]
    for state in ("COMPLETE", "PRUNED", "FAIL"):
        assert row[state] == sum(t.state.name == state for t in truth.trials), state
    assert row["best_objective"] == pytest.approx(truth.best_value)


def test_optuna_study_importance(foreign):
    store, ids = foreign.store("optuna"), foreign.ids("optuna")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        importance = tb.study(store, ids["optuna-parent"]).importance()
    assert set(importance["param"]) <= {"x", "lr", "layers", "activation"}
    assert importance["importance"].sum() == pytest.approx(1.0)
