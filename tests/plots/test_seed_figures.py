"""Figures of results across seeds: the traces, bands and intervals a reader relies on."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from trackbook import analysis
from trackbook import columns as C
from trackbook import plots

REWARD = "eval/mean_reward"


@pytest.fixture(scope="module")
def sweep():
    """3 groups x 4 seeds x 50 evaluations, each run logging at its own steps."""
    rng = np.random.default_rng(1)
    ids = [f"{i:032x}" for i in range(12)]
    runs = pd.DataFrame({C.RUN_ID: ids, C.NAME: ids, "params.learning_rate": np.repeat([1e-4, 1e-3, 1e-2], 4),
                         "params.seed": np.tile(range(4), 3)})
    rows = [(rid, REWARD, k * 100 + i, 100 * (i // 4) + k + rng.normal(), pd.Timestamp(0, tz="UTC"))
            for i, rid in enumerate(ids) for k in range(50)]
    hist = pd.DataFrame(rows, columns=C.HISTORY_COLUMNS)
    groups = analysis.seed_groups(runs)
    return groups, hist, analysis.seed_scores(hist, groups, last=3)


def test_seed_curves_one_band_and_one_line_per_group(sweep):
    groups, hist, _ = sweep
    curves = analysis.seed_curves(hist, groups, reps=200)
    fig = plots.seed_curves(curves)
    assert isinstance(fig, go.Figure)
    lines = [t for t in fig.data if t.fill is None]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [t.name for t in lines] == groups.table[C.GROUP].tolist()
    assert len(bands) == 3 and all(t.showlegend is False for t in bands)
    first = curves[curves[C.GROUP] == groups.table[C.GROUP].iloc[0]]
    assert list(lines[0].y) == pytest.approx(first[C.ESTIMATE].tolist())
    # the band is one closed polygon: up along the high side, back along the low side
    assert list(bands[0].y) == pytest.approx(first[C.HIGH].tolist() + first[C.LOW].tolist()[::-1])
    thin = plots.seed_curves(curves, max_points=20)
    assert all(len(t.x) <= 20 for t in thin.data if t.fill is None)
    assert thin.data[1].x[0] == first[C.STEP].iloc[0] and thin.data[1].x[-1] == first[C.STEP].iloc[-1]


def test_score_intervals_one_panel_per_metric_and_statistic(sweep):
    _, _, scores = sweep
    intervals = analysis.score_intervals(scores, targets=200, reps=300)
    fig = plots.score_intervals(intervals)
    assert len(fig.data) == 4  # one metric x iqm, mean, median, optimality gap
    iqm = intervals[intervals[C.STATISTIC] == C.IQM]
    trace = fig.data[0]
    assert list(trace.x) == pytest.approx(iqm[C.ESTIMATE].tolist())
    assert list(trace.error_x.array) == pytest.approx((iqm[C.HIGH] - iqm[C.ESTIMATE]).tolist())
    assert list(trace.error_x.arrayminus) == pytest.approx((iqm[C.ESTIMATE] - iqm[C.LOW]).tolist())
    assert "IQM" in fig.layout.annotations[0].text
    assert len(plots.score_intervals(intervals, statistics=[C.IQM]).data) == 1


def test_performance_profiles_and_probability_of_improvement(sweep):
    groups, _, scores = sweep
    profiles = analysis.performance_profiles(scores, points=21, reps=200)
    fig = plots.performance_profiles(profiles)
    lines = [t for t in fig.data if t.fill is None]
    assert len(lines) == 3 and all(len(t.x) == 21 for t in lines)
    a, b, c = groups.table[C.GROUP]
    poi = pd.concat([analysis.probability_of_improvement(scores, c, a, reps=200),
                     analysis.probability_of_improvement(scores, b, a, reps=200)], ignore_index=True)
    fig = plots.probability_of_improvement(poi)
    assert list(fig.data[0].x) == pytest.approx(poi[C.PROBABILITY].tolist())
    assert fig.data[0].y[0] == f"P({c} > {a})"


@pytest.mark.parametrize("builder, frame", [
    (plots.seed_curves, C.CURVE_COLUMNS), (plots.score_intervals, C.INTERVAL_COLUMNS),
    (plots.performance_profiles, C.PROFILE_COLUMNS), (plots.probability_of_improvement, C.IMPROVEMENT_COLUMNS),
])
def test_empty_input_warns_and_gives_a_titled_figure(builder, frame):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = builder(pd.DataFrame(columns=frame), title="Nothing yet")
    assert fig.layout.title.text == "Nothing yet" and not fig.data
    assert any("Nothing yet" in str(w.message) for w in caught)


def test_group_labels_are_shown_as_written():
    curves = pd.DataFrame({C.GROUP: ["tag=<b>x</b>"] * 2, C.METRIC: [REWARD] * 2, C.STEP: [0, 1],
                           C.ESTIMATE: [1.0, 2.0], C.LOW: [0.5, 1.5], C.HIGH: [1.5, 2.5], C.N_RUNS: [3, 3]})
    fig = plots.seed_curves(curves)
    assert fig.data[1].name == "tag=&lt;b&gt;x&lt;/b&gt;"
