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
