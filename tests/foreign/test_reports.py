"""Reports on a study trackbook did not write: told its objective, the hpo report judges by it."""

from __future__ import annotations

import pytest

import trackbook as tb


def test_hpo_report_of_an_ambiguous_hand_written_study_takes_objective_and_direction(foreign, tmp_path):
    ids = foreign.ids("plain")
    client = foreign.client("plain")
    trials = [ids[f"sweep-b/{t}"] for t in range(4)]
    losses = {rid: client.get_metric_history(rid, "val_loss")[-1].value for rid in trials}
    data, _ = tb.report("hpo", tmp_path / "hpo.html", store_uri=foreign.uri("plain"), parent_run_id=ids["sweep-b"],
                        objective="val_loss", direction="minimize", progress=False)
    assert data["direction"] == "minimize"
    assert data["best_value"] == pytest.approx(min(losses.values()))  # MLflow's own smallest val_loss
    with pytest.raises(tb.ReportFailed, match="val_loss.*val_accuracy|val_accuracy.*val_loss"):
        tb.report("hpo", tmp_path / "ambiguous.html", store_uri=foreign.uri("plain"), parent_run_id=ids["sweep-b"],
                  progress=False)  # not told, and two metrics could be the objective: a clear error


def test_training_chain_and_comparison_reports_on_the_trading_scripts_runs(foreign, tmp_path):
    """Runs logged the trading scripts' way (evaluation/mean_reward, steps restarting at 0 in each link)."""
    from data_fixtures.foreign import trading

    ids, uri = foreign.ids("trading"), foreign.uri("trading")
    client = foreign.client("trading")
    metric = "evaluation/mean_reward"
    rewards = {key: client.get_metric_history(ids[key], metric) for key in ("restart-0", "restart-1", "restart-2")}
    data, _ = tb.report("training", tmp_path / "training.html", store_uri=uri, run_id=ids["restart-2"],
                        metrics=[metric], progress=False)
    assert data["final"][metric] == pytest.approx(rewards["restart-2"][-1].value)  # MLflow's last point
    data, _ = tb.report("chain", tmp_path / "chain.html", store_uri=uri, run_id=ids["restart-2"], metrics=[metric],
                        progress=False)
    assert data["runs"] == [ids["restart-0"], ids["restart-1"], ids["restart-2"]]
    for link, (base, run) in enumerate((("restart-0", "restart-1"), ("restart-1", "restart-2")), start=1):
        assert data["deltas"][f"{link}:{metric}"] == pytest.approx(rewards[run][-1].value - rewards[base][-1].value)
    steps = tb.chain(foreign.store("trading"), ids["restart-2"]).history(metric)["global_step"]
    assert steps.is_monotonic_increasing and steps.max() == 3 * trading.SEGMENT  # one axis, no overlap
    assert len(steps) == sum(len(points) for points in rewards.values())
    runs = [ids["restart-0"], ids["offset-0"], ids["solo"]]
    data, _ = tb.report("comparison", tmp_path / "cmp.html", store_uri=uri, run_ids=runs, metrics=[metric],
                        progress=False)
    finals = {rid: client.get_metric_history(rid, metric)[-1].value for rid in runs}
    assert data["best_run"] == max(finals, key=finals.get)
