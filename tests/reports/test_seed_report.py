"""The comparison report compares groups when runs repeat a configuration over seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import scipy.stats

import trackbook as tb
from tests.reports.test_reports import _open
from tests.seed_sweep import EXPERIMENT, REWARD, write_sweep


def test_comparison_report_compares_groups_over_seeds(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'sweep.db'}"
    logged = write_sweep(uri)
    data, path = tb.report("comparison", tmp_path / "seeds.html", store_uri=uri, run_ids=list(logged),
                           metrics=[REWARD], progress=False)
    groups = data["groups"]
    assert set(groups) == {"learning_rate=0.001", "learning_rate=0.0003"}
    assert all(g["n_runs"] == 3 and sorted(g["seeds"]) == [0, 1, 2] for g in groups.values())
    store = tb.connect(uri)
    finals = store.runs(EXPERIMENT).set_index("params.learning_rate")[f"metrics.{REWARD}"]
    estimate, low, high = groups["learning_rate=0.001"]["iqm"][REWARD]
    assert estimate == pytest.approx(scipy.stats.trim_mean(finals.loc[0.001], 0.25))  # MLflow's own last values
    assert low <= estimate <= high
    # comparison bars, learning curves, interval estimates, curves with bands; side by side + groups
    _open(path, tmp_path / "seeds.png", figures=4, tables=2,
          texts=["Across seeds", "6 runs repeat 2 configurations, grouped by learning_rate",
                 "learning_rate=0.001: 3 runs", "95% percentile interval", "estimate [95% interval]"])
