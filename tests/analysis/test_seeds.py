"""Statistics across seeds: estimates and intervals against hand-computed cases, scipy's
own answers and a known distribution; end to end on a real sqlite MLflow store."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import trackbook as tb
from trackbook import columns as C
from trackbook.analysis import (
    performance_profiles,
    probability_of_improvement,
    score_intervals,
    seed_curves,
    seed_groups,
    seed_scores,
)
from tests._mlflow_template import empty_mlflow_db
from tests.seed_sweep import EXPERIMENT, REWARD, write_sweep



def _scores(groups: dict[str, list[float]], *, metric: str = REWARD, tasks: dict[str, list[str]] | None = None):
    """A seed_scores()-shaped frame: one row per run."""
    rows = []
    for group, values in groups.items():
        for i, value in enumerate(values):
            task = tasks[group][i] if tasks else "all"
            rows.append({C.GROUP: group, C.RUN_ID: f"{group}-{i}", C.SEED: i, C.TASK: task, C.METRIC: metric,
                         C.SCORE: float(value)})
    return pd.DataFrame(rows, columns=C.SCORE_COLUMNS)


def _estimate(intervals: pd.DataFrame, group: str, statistic: str) -> pd.Series:
    row = intervals[(intervals[C.GROUP] == group) & (intervals[C.STATISTIC] == statistic)]
    assert len(row) == 1, intervals
    return row.iloc[0]


# ------------------------------------------------------------------ point estimates

def test_iqm_of_a_known_sample_by_hand_and_by_scipy():
    sample = [10, 1, 9, 2, 8, 3, 7, 4, 6, 100]
    out = score_intervals(_scores({"a": sample, "b": [1, 2, 3, 4, 5, 6, 7, 8]}), reps=200)
    # 10 values: int(0.25 * 10) = 2 dropped at each end -> 3, 4, 6, 7, 8, 9
    assert _estimate(out, "a", C.IQM)[C.ESTIMATE] == pytest.approx((3 + 4 + 6 + 7 + 8 + 9) / 6)
    assert _estimate(out, "a", C.IQM)[C.ESTIMATE] == pytest.approx(scipy.stats.trim_mean(sample, 0.25))
    assert _estimate(out, "b", C.IQM)[C.ESTIMATE] == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert _estimate(out, "a", C.MEAN)[C.ESTIMATE] == pytest.approx(15.0)
    # rliable's median is the median over tasks of per-task means: one task -> the mean
    assert _estimate(out, "a", C.MEDIAN)[C.ESTIMATE] == pytest.approx(15.0)
    assert set(out[C.STATISTIC]) == {C.IQM, C.MEAN, C.MEDIAN}  # no target, no optimality gap
    assert _estimate(out, "a", C.IQM)[C.N_RUNS] == 10


def test_tasks_pool_for_iqm_and_average_for_mean_and_median():
    scores = _scores({"a": [1, 2, 3, 10, 20, 30, 100, 200]},
                     tasks={"a": ["t1", "t1", "t1", "t2", "t2", "t2", "t3", "t3"]})
    out = score_intervals(scores, reps=200)
    task_means = [2.0, 20.0, 150.0]
    assert _estimate(out, "a", C.MEAN)[C.ESTIMATE] == pytest.approx(np.mean(task_means))
    assert _estimate(out, "a", C.MEDIAN)[C.ESTIMATE] == pytest.approx(20.0)
    assert _estimate(out, "a", C.IQM)[C.ESTIMATE] == pytest.approx(
        scipy.stats.trim_mean(scores[C.SCORE], 0.25))  # pooled over tasks: 3, 10, 20, 30
    assert _estimate(out, "a", C.IQM)[C.N_TASKS] == 3


def test_optimality_gap_by_hand_for_both_goals():
    reward = score_intervals(_scores({"a": [100, 300, 600]}), targets={REWARD: 500}, reps=200)
    assert _estimate(reward, "a", C.OPTIMALITY_GAP)[C.ESTIMATE] == pytest.approx(500 - (100 + 300 + 500) / 3)
    loss = score_intervals(_scores({"a": [0.1, 0.5]}, metric="train/loss"), targets=0.2, reps=200)
    assert _estimate(loss, "a", C.OPTIMALITY_GAP)[C.ESTIMATE] == pytest.approx((0.2 + 0.5) / 2 - 0.2)
    with pytest.raises(ValueError, match="targets="):
        score_intervals(_scores({"a": [1, 2]}), statistics=[C.OPTIMALITY_GAP])


# ------------------------------------------------------------------ intervals

def test_bootstrap_intervals_cover_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(42)
    samples = {f"g{i:03d}": rng.normal(3.0, 2.0, 30) for i in range(200)}
    out = score_intervals(_scores(samples), statistics=[C.MEAN, C.IQM], reps=1000, seed=7)
    for stat in (C.MEAN, C.IQM):  # the normal is symmetric: its IQM is its mean too
        rows = out[out[C.STATISTIC] == stat]
        covered = ((rows[C.LOW] <= 3.0) & (3.0 <= rows[C.HIGH])).mean()
        # a percentile interval from n=30 covers a little under 95%; 200 repetitions give +-3%
        assert 0.88 <= covered <= 0.99, (stat, covered)
        width = (rows[C.HIGH] - rows[C.LOW]).mean()
        assert width == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(30), rel=0.25) if stat == C.MEAN else width > 0


def test_intervals_are_seeded_and_contain_the_estimate():
    scores = _scores({"a": [1, 5, 2, 8, 3], "b": [4, 4, 9, 1, 7]})
    first = score_intervals(scores, reps=500, seed=3)
    pd.testing.assert_frame_equal(first, score_intervals(scores, reps=500, seed=3))
    assert not first[C.LOW].equals(score_intervals(scores, reps=500, seed=4)[C.LOW])
    assert ((first[C.LOW] <= first[C.ESTIMATE]) & (first[C.ESTIMATE] <= first[C.HIGH])).all()


def test_single_value_groups_have_degenerate_intervals():
    out = score_intervals(_scores({"a": [7.0]}), reps=100)
    assert (out[C.LOW] == 7.0).all() and (out[C.HIGH] == 7.0).all()


# ------------------------------------------------------------------ probability of improvement

def test_probability_of_improvement_by_hand():
    scores = _scores({"x": [1, 2, 3], "y": [2, 2, 0]})
    out = probability_of_improvement(scores, "x", "y", reps=500)
    # pairs (x_i, y_j): 1 beats 0; 2 ties 2 twice and beats 0; 3 beats all -> (1 + 2 + 3) / 9
    assert out[C.PROBABILITY].iloc[0] == pytest.approx(6 / 9)
    assert out[C.LOW].iloc[0] <= 6 / 9 <= out[C.HIGH].iloc[0]
    reverse = probability_of_improvement(scores, "y", "x", reps=500)
    assert reverse[C.PROBABILITY].iloc[0] == pytest.approx(3 / 9)
    losses = _scores({"x": [1, 2, 3], "y": [2, 2, 0]}, metric="train/loss")
    lower = probability_of_improvement(losses, "x", "y", reps=100)  # lower is better for a loss
    assert lower[C.PROBABILITY].iloc[0] == pytest.approx(3 / 9)
    with pytest.raises(ValueError, match="not a group"):
        probability_of_improvement(scores, "x", "nope")


def test_probability_of_improvement_averages_tasks():
    scores = _scores({"x": [5, 5, 0, 0], "y": [1, 1, 9, 9]}, tasks={"x": ["a", "a", "b", "b"],
                                                                     "y": ["a", "a", "b", "b"]})
    out = probability_of_improvement(scores, "x", "y", reps=100)
    assert out[C.PROBABILITY].iloc[0] == pytest.approx(0.5)  # wins every pair on a, loses every pair on b


# ------------------------------------------------------------------ performance profiles

def test_performance_profile_by_hand():
    scores = _scores({"a": [1, 2, 3, 4]})
    out = performance_profiles(scores, taus=[0, 2, 2.5, 4], reps=200)
    assert out[C.FRACTION].tolist() == pytest.approx([1.0, 0.5, 0.5, 0.0])  # strictly above tau
    assert ((out[C.LOW] <= out[C.FRACTION]) & (out[C.FRACTION] <= out[C.HIGH])).all()
    two_tasks = _scores({"a": [1, 3, 10, 20, 30, 40]}, tasks={"a": ["t1", "t1", "t2", "t2", "t2", "t2"]})
    assert performance_profiles(two_tasks, taus=[2.5], reps=10)[C.FRACTION].iloc[0] == pytest.approx((0.5 + 1) / 2)
    losses = _scores({"a": [1, 2, 3, 4]}, metric="train/loss")
    assert performance_profiles(losses, taus=[2.5], reps=10)[C.FRACTION].iloc[0] == pytest.approx(0.5)
    default = performance_profiles(scores, points=11, reps=10)
    assert default[C.TAU].iloc[0] == 1 and default[C.TAU].iloc[-1] == 4 and len(default) == 11


# ------------------------------------------------------------------ grouping

def _runs() -> pd.DataFrame:
    return pd.DataFrame({
        C.RUN_ID: [f"{i:032x}" for i in range(6)], C.NAME: [f"run-{i}" for i in range(6)],
        "params.learning_rate": [1e-3, 1e-3, 1e-3, 3e-4, 3e-4, 3e-4],
        "params.seed": [0, 1, 2, 0, 1, 2], "params.env.random_seed": [5, 6, 7, 8, 9, 10],
        "params.n_steps": [64] * 6, "tags.variant": ["a", "b", "a", "b", "a", "b"],
    })


def test_default_grouping_is_every_varying_param_but_seeds(caplog):
    with caplog.at_level(logging.INFO, logger="trackbook.analysis.seeds"):
        groups = seed_groups(_runs())
    assert groups.by == ["params.learning_rate"]
    assert groups.seed_columns == ["params.seed", "params.env.random_seed"]
    assert groups.table[C.GROUP].tolist() == ["learning_rate=0.0003", "learning_rate=0.001"]
    assert groups.table[C.N_RUNS].tolist() == [3, 3]
    assert groups.table[C.SEEDS].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert groups.table[C.RUN_IDS].iloc[1] == [f"{i:032x}" for i in range(3)]
    assert "learning_rate" in caplog.text and "seed" in caplog.text


def test_grouping_by_chosen_params_and_tags():
    groups = seed_groups(_runs(), by=["variant", "learning_rate"])
    assert groups.by == ["tags.variant", "params.learning_rate"]
    assert len(groups) == 4
    assert "variant=a, learning_rate=0.001" in set(groups.table[C.GROUP])
    one = seed_groups(_runs().assign(**{"params.learning_rate": 1e-3}))
    assert one.by == [] and one.table[C.N_RUNS].tolist() == [6]
    with pytest.raises(ValueError, match="no such param or tag"):
        seed_groups(_runs(), by="nope")
    tasks = seed_groups(_runs(), task="variant")
    assert tasks.by == ["params.learning_rate"] and set(tasks.members[C.TASK]) == {"a", "b"}


# ------------------------------------------------------------------ curves

def _history(points: dict[str, list[tuple[int, float]]], metric: str = REWARD) -> pd.DataFrame:
    rows = [(rid, metric, step, value, pd.Timestamp(0, tz="UTC")) for rid, pts in points.items() for step, value in pts]
    frame = pd.DataFrame(rows, columns=C.HISTORY_COLUMNS)
    frame[C.RUN_ID] = frame[C.RUN_ID].astype("category")
    frame[C.METRIC] = frame[C.METRIC].astype("category")
    return frame


def test_grouped_curves_against_a_hand_computed_case():
    ids = [f"{i:032x}" for i in range(3)]
    runs = pd.DataFrame({C.RUN_ID: ids, C.NAME: ["a", "b", "c"], "params.seed": [0, 1, 2]})
    groups = seed_groups(runs)
    # logged at different steps; the grid is the union 0, 5, ..., 25
    hist = _history({ids[0]: [(0, 0.0), (10, 10.0), (20, 20.0)],
                     ids[1]: [(5, 1.0), (15, 3.0), (25, 5.0)],
                     ids[2]: [(0, 0.0), (25, 50.0)]})
    mean = seed_curves(hist, groups, statistic=C.MEAN, reps=500)
    # interpolated: a = 0, 5, 10, 15, 20, -; b = -, 1, 2, 3, 4, 5; c = 0, 10, 20, 30, 40, 50
    assert mean[C.STEP].tolist() == [0, 5, 10, 15, 20, 25]
    assert mean[C.N_RUNS].tolist() == [2, 3, 3, 3, 3, 2]
    assert mean[C.ESTIMATE].tolist() == pytest.approx([0, 16 / 3, 32 / 3, 16, 64 / 3, 27.5])
    median = seed_curves(hist, groups, statistic=C.MEDIAN, reps=500)
    assert median[C.ESTIMATE].tolist() == pytest.approx([0, 5, 10, 15, 20, 27.5])
    band = mean.set_index(C.STEP)
    assert band.loc[10, C.LOW] >= 2 and band.loc[10, C.HIGH] <= 20  # within the runs' own values
    assert (band[C.LOW] <= band[C.ESTIMATE]).all() and (band[C.ESTIMATE] <= band[C.HIGH]).all()
    assert band.loc[0, C.LOW] == band.loc[0, C.HIGH] == 0  # both runs there read 0
    coarse = seed_curves(hist, groups, points=3, reps=50)
    assert coarse[C.STEP].iloc[0] == 0 and coarse[C.STEP].iloc[-1] == 25 and len(coarse) == 3


def test_curves_iqm_is_the_trimmed_mean_at_each_step():
    rng = np.random.default_rng(0)
    ids = [f"{i:032x}" for i in range(8)]
    values = rng.normal(size=(8, 5))
    hist = _history({rid: [(s * 10, values[i, s]) for s in range(5)] for i, rid in enumerate(ids)})
    curves = seed_curves(hist, seed_groups(pd.DataFrame({C.RUN_ID: ids, C.NAME: ids})), reps=100)
    assert curves[C.ESTIMATE].tolist() == pytest.approx(scipy.stats.trim_mean(values, 0.25, axis=0).tolist())


def test_scores_are_the_mean_of_the_last_n_points():
    ids = [f"{i:032x}" for i in range(2)]
    groups = seed_groups(pd.DataFrame({C.RUN_ID: ids, C.NAME: ["a", "b"], "params.seed": [0, 1]}))
    hist = _history({ids[0]: [(3, 30.0), (1, 10.0), (2, 20.0)], ids[1]: [(1, 1.0), (2, float("nan"))]})
    assert seed_scores(hist, groups, last=1)[C.SCORE].tolist() == [30.0, 1.0]
    assert seed_scores(hist, groups, last=2)[C.SCORE].tolist() == [25.0, 1.0]  # NaN is no evaluation
    with pytest.raises(ValueError, match="last="):
        seed_scores(hist, groups, last=0)


# ------------------------------------------------------------------ end to end

@pytest.fixture()
def sweep_store(tmp_path: Path):
    """2 learning rates x 3 seeds written with MLflow's own client."""
    from mlflow.tracking import MlflowClient

    uri = empty_mlflow_db(tmp_path / "sweep.db")  # a migrated empty store, copied: fast enough for scripts/mutation
    logged = write_sweep(uri)
    return tb.connect(uri), MlflowClient(uri), logged


def test_across_seeds_end_to_end_on_mlflow(sweep_store):
    store, client, logged = sweep_store
    result = tb.analysis.across_seeds(store, store.runs(EXPERIMENT), REWARD, last=2)
    assert result.groups.by == ["params.learning_rate"]
    assert result.groups.table[C.GROUP].tolist() == ["learning_rate=0.0003", "learning_rate=0.001"]
    assert result.groups.table[C.N_RUNS].tolist() == [3, 3]
    assert sorted(result.groups.table[C.SEEDS].iloc[0]) == [0, 1, 2]
    # each score is the mean of the run's last two evaluations, as MLflow itself returns them
    for _, row in result.scores.iterrows():
        points = sorted(client.get_metric_history(row[C.RUN_ID], REWARD), key=lambda m: m.step)
        assert row[C.SCORE] == pytest.approx(np.mean([m.value for m in points[-2:]]))
        assert row[C.GROUP] == f"learning_rate={logged[row[C.RUN_ID]][0]}"
    intervals = result.intervals(targets={REWARD: 500}, reps=500)
    best = _estimate(intervals, "learning_rate=0.001", C.IQM)
    group_scores = result.scores[result.scores[C.GROUP] == "learning_rate=0.001"][C.SCORE]
    assert best[C.ESTIMATE] == pytest.approx(scipy.stats.trim_mean(group_scores, 0.25))
    assert best[C.N_RUNS] == 3 and best[C.N_SEEDS] == 3
    assert _estimate(intervals, "learning_rate=0.001", C.OPTIMALITY_GAP)[C.ESTIMATE] == pytest.approx(
        500 - group_scores.mean())
    poi = result.improvement("learning_rate=0.001", "learning_rate=0.0003", reps=200)
    assert poi[C.PROBABILITY].iloc[0] == 1.0  # every run of the faster rate scores higher
    curves = result.curves(statistic=C.MEAN, reps=200)
    assert set(curves[C.GROUP]) == set(result.groups.table[C.GROUP])
    assert curves[C.N_RUNS].max() == 3
    profiles = result.profiles(reps=200)
    fast = profiles[profiles[C.GROUP] == "learning_rate=0.001"][C.FRACTION].to_numpy()
    slow = profiles[profiles[C.GROUP] == "learning_rate=0.0003"][C.FRACTION].to_numpy()
    assert fast[0] == 1.0 and slow[0] == pytest.approx(2 / 3)  # tau starts at the lowest score, "above" is strict
    assert fast[-1] == slow[-1] == 0.0 and (np.diff(fast) <= 0).all() and (fast >= slow).all()
    with pytest.raises(tb.RunNotFound):
        tb.analysis.across_seeds(store, ["0" * 32], REWARD)
