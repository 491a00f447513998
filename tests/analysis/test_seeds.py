"""Statistics across seeds: estimates and intervals against hand-computed cases, scipy's
own answers and a known distribution; end to end on a real sqlite MLflow store."""

from __future__ import annotations

import logging
import re
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
from trackbook.analysis.seeds import SeedGroups
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


def test_percentile_intervals_are_the_quantiles_of_the_exact_bootstrap_distribution():
    # the mean of 2 draws from {0, 1} is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4
    scores = _scores({"a": [0, 1]})
    wide = score_intervals(scores, statistics=[C.MEAN], ci=0.9, reps=4000)
    assert (wide[C.LOW].iloc[0], wide[C.HIGH].iloc[0]) == (0.0, 1.0)  # the 5% and 95% quantiles
    narrow = score_intervals(scores, statistics=[C.MEAN], ci=0.4, reps=4000)
    assert (narrow[C.LOW].iloc[0], narrow[C.HIGH].iloc[0]) == (0.5, 0.5)  # the 30% and 70% quantiles


def test_optimality_gap_averages_the_tasks_shortfalls_and_follows_goals():
    scores = _scores({"a": [100, 600, 200, 300]}, tasks={"a": ["t1", "t1", "t2", "t2"]})
    out = score_intervals(scores, targets=500, reps=200)
    # per task, the mean of min(score, 500): t1 (100 + 500) / 2 = 300, t2 (200 + 300) / 2 = 250
    assert _estimate(out, "a", C.OPTIMALITY_GAP)[C.ESTIMATE] == pytest.approx(500 - (300 + 250) / 2)
    # a metric named like a reward, said to be lower-is-better: mean(max(score, 250)) - 250
    lower = score_intervals(_scores({"a": [100, 300, 600]}, metric="score"), targets=250, goals={"score": "min"},
                            reps=200)
    assert _estimate(lower, "a", C.OPTIMALITY_GAP)[C.ESTIMATE] == pytest.approx((250 + 300 + 600) / 3 - 250)


def test_a_metric_without_a_target_gets_the_other_statistics_in_the_order_asked():
    scores = _scores({"a": [1, 2, 3, 4]})
    out = score_intervals(scores, statistics=[C.OPTIMALITY_GAP, C.IQM, C.MEAN], targets={"another/metric": 1},
                          reps=100)
    assert out[C.STATISTIC].tolist() == [C.IQM, C.MEAN]  # no target for REWARD: no gap, and nothing else lost
    assert score_intervals(scores, targets={"another/metric": 1}, reps=100)[C.STATISTIC].tolist() == [
        C.IQM, C.MEAN, C.MEDIAN]


def test_seeds_and_tasks_are_counted_apart_from_runs():
    scores = _scores({"a": [1, 2, 3, 4]}, tasks={"a": ["t1", "t1", "t2", "t2"]})
    scores[C.SEED] = [0, 1, 0, 1]  # the same two seeds on each task
    row = _estimate(score_intervals(scores, reps=50), "a", C.IQM)
    assert (row[C.N_RUNS], row[C.N_SEEDS], row[C.N_TASKS]) == (4, 2, 2)
    scores[C.SEED] = None  # runs without a seed param: each run counts as one seed
    row = _estimate(score_intervals(scores, reps=50), "a", C.IQM)
    assert (row[C.N_RUNS], row[C.N_SEEDS]) == (4, 4)


def test_estimates_come_in_the_scores_order_of_groups_and_an_empty_input_gives_the_columns():
    scores = _scores({"b": [1, 2], "a": [3, 4]})  # not alphabetical: the table's order is kept
    out = score_intervals(scores, statistics=[C.MEAN], reps=50)
    assert out[C.GROUP].tolist() == ["b", "a"]
    assert performance_profiles(scores, taus=[0], reps=10)[C.GROUP].tolist() == ["b", "a"]
    empty = _scores({})
    assert list(score_intervals(empty).columns) == C.INTERVAL_COLUMNS
    assert list(performance_profiles(empty).columns) == C.PROFILE_COLUMNS


def _many_scores() -> pd.DataFrame:
    """Two groups of 18 runs on two tasks (7 and 11 runs): replicates with many distinct values."""
    rng = np.random.default_rng(11)
    tasks = ["t1"] * 7 + ["t2"] * 11
    return _scores({"a": rng.normal(0, 1, 18), "b": rng.normal(0.5, 1, 18)}, tasks={"a": tasks, "b": tasks})


def test_defaults_are_2000_replicates_from_seed_0_and_a_seed_repeats_its_answer():
    scores = _many_scores()
    pd.testing.assert_frame_equal(score_intervals(scores), score_intervals(scores, reps=2000, seed=0))
    profiles = performance_profiles(scores)
    pd.testing.assert_frame_equal(profiles, performance_profiles(scores, points=101, reps=2000, seed=0))
    pd.testing.assert_frame_equal(profiles, performance_profiles(scores))
    assert len(profiles) == 2 * 101 and profiles.index.equals(pd.RangeIndex(2 * 101))
    poi = probability_of_improvement(scores, "a", "b")
    pd.testing.assert_frame_equal(poi, probability_of_improvement(scores, "a", "b", reps=2000, seed=0))
    pd.testing.assert_frame_equal(poi, probability_of_improvement(scores, "a", "b"))


def test_arguments_are_checked_with_a_sentence_naming_them():
    scores = _scores({"a": [1, 2, 3]})
    for ci in (0, 1, 1.5):
        with pytest.raises(ValueError, match=re.escape(f"ci={ci!r}: pass the interval's coverage in (0, 1)")):
            score_intervals(scores, ci=ci)
    for reps in (0, 2.5):
        with pytest.raises(ValueError, match=re.escape(f"reps={reps!r}: pass the number of bootstrap replicates")):
            score_intervals(scores, reps=reps)
    assert len(score_intervals(scores, reps=1, ci=0.01)) == 3  # the smallest valid arguments
    with pytest.raises(ValueError, match=re.escape("statistics=['mode']: use some of")):
        score_intervals(scores, statistics=["mode"])
    with pytest.raises(ValueError) as raised:
        score_intervals(scores, statistics=[C.OPTIMALITY_GAP])
    assert str(raised.value) == ("statistics includes 'optimality_gap' but no targets= was given: pass the score to "
                                 "measure against, e.g. targets={'eval/mean_reward': 500}.")


def test_a_stratum_is_a_task_by_name_wherever_its_rows_are():
    scores = _many_scores()
    by_task_last = pd.concat([scores[scores[C.TASK] == "t2"], scores[scores[C.TASK] == "t1"]], ignore_index=True)
    pd.testing.assert_frame_equal(score_intervals(by_task_last, reps=300), score_intervals(scores, reps=300))
    pd.testing.assert_frame_equal(performance_profiles(by_task_last, points=5, reps=300),
                                  performance_profiles(scores, points=5, reps=300))


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


def test_probability_of_improvement_equals_scipys_mann_whitney_u_over_m_times_n():
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 6, 9).astype(float), rng.integers(0, 6, 7).astype(float)  # with ties
    out = probability_of_improvement(_scores({"x": x, "y": y}), "x", "y", reps=100)
    u = scipy.stats.mannwhitneyu(x, y).statistic  # U of the first sample: pairs it wins, ties as halves
    assert out[C.PROBABILITY].iloc[0] == pytest.approx(u / (len(x) * len(y)))


def test_improvement_intervals_of_ties_and_of_opposite_tasks_are_exact():
    ties = probability_of_improvement(_scores({"x": [1, 1], "y": [1, 1]}), "x", "y", reps=200)
    assert ties[[C.PROBABILITY, C.LOW, C.HIGH]].iloc[0].tolist() == [0.5, 0.5, 0.5]  # every resample ties
    # x wins every pair on task a and loses every pair on task b: 0.5 in every resample
    opposite = _scores({"x": [5, 6, 0, 1], "y": [1, 2, 8, 9]}, tasks={"x": ["a", "a", "b", "b"],
                                                                     "y": ["a", "a", "b", "b"]})
    out = probability_of_improvement(opposite, "x", "y", reps=200)
    assert out[[C.PROBABILITY, C.LOW, C.HIGH]].iloc[0].tolist() == [0.5, 0.5, 0.5]


def test_improvement_uses_only_tasks_both_groups_ran_and_skips_metrics_they_share_no_task_of():
    scores = _scores({"x": [5, 5, 0], "y": [1, 1]}, tasks={"x": ["a", "a", "b"], "y": ["a", "a"]})
    out = probability_of_improvement(scores, "x", "y", reps=100)
    assert out[C.PROBABILITY].tolist() == [1.0]  # task b (x only) is left out
    first = _scores({"x": [1], "y": [2]}, metric="eval/first", tasks={"x": ["a"], "y": ["b"]})  # no common task
    both = pd.concat([first, _scores({"x": [3, 4], "y": [1, 2]})], ignore_index=True)
    out = probability_of_improvement(both, "x", "y", reps=100)
    assert out[C.METRIC].tolist() == [REWARD] and out[C.PROBABILITY].tolist() == [1.0]
    only = probability_of_improvement(both, "x", "y", metrics="eval/first", reps=100)
    assert list(only.columns) == C.IMPROVEMENT_COLUMNS and only.empty
    lower = probability_of_improvement(both, "x", "y", metrics=[REWARD], goals={REWARD: "min"}, reps=100)
    assert lower[C.PROBABILITY].tolist() == [0.0]


def test_improvement_names_the_group_it_does_not_know():
    scores = _scores({f"g{i:02d}": [i] for i in range(12)})
    with pytest.raises(ValueError) as raised:
        probability_of_improvement(scores, "g00", "nope")
    known = [f"g{i:02d}" for i in range(10)]
    assert str(raised.value) == (f"y='nope' is not a group of these scores (groups: {known}). "
                                 "Pass a label from seed_groups(...).table['group'].")
    with pytest.raises(ValueError, match=re.escape("x='nope' is not a group")):
        probability_of_improvement(scores, "nope", "g00")
    for empty in (_scores({}), pd.DataFrame()):
        with pytest.raises(ValueError, match=re.escape("x='g00' is not a group of these scores (groups: [])")):
            probability_of_improvement(empty, "g00", "g01")


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


def test_profile_thresholds_per_metric_goals_and_float_taus():
    scores = _scores({"a": [1, 2, 3, 4]}, metric="score")
    out = performance_profiles(scores, taus={"score": [0, 2]}, reps=20)
    assert out[C.TAU].tolist() == [0.0, 2.0] and out[C.TAU].dtype == np.float64
    assert out[C.FRACTION].tolist() == [1.0, 0.5]
    lower = performance_profiles(scores, taus=[2], goals={"score": "min"}, reps=20)
    assert lower[C.FRACTION].tolist() == [0.25]  # strictly below 2: only the 1
    other = performance_profiles(scores, taus={"another/metric": [0]}, points=5, reps=20)
    assert other[C.TAU].tolist() == [1.0, 1.75, 2.5, 3.25, 4.0]  # no taus for "score": its default grid


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


def test_labels_print_numbers_as_a_user_reads_them_and_missing_values_as_none():
    ids = [f"{i:032x}" for i in range(6)]
    runs = pd.DataFrame({C.RUN_ID: ids, "params.x": [1e15, 1234567.0, 3.0, 0.000123456789, np.nan, 2.5],
                         "params.act": ["relu", "relu", None, "tanh", "tanh", "tanh"]})
    groups = seed_groups(runs, by="x")
    # whole floats below 1e15 as ints, others with 6 significant digits (f"{v:.6g}"), NaN as None
    assert groups.members[C.GROUP].tolist() == ["x=1e+15", "x=1234567", "x=3", "x=0.000123457", "x=None", "x=2.5"]
    assert groups.table[C.GROUP].tolist() == ["x=0.000123457", "x=2.5", "x=3", "x=1234567", "x=1e+15", "x=None"]
    np.testing.assert_array_equal(groups.table["params.x"], [0.000123456789, 2.5, 3.0, 1234567.0, 1e15, np.nan])
    assert seed_groups(runs, by="act").table[C.GROUP].tolist() == ["act=relu", "act=tanh", "act=None"]


def test_repr_and_the_log_line_say_what_the_groups_are_made_of(caplog):
    assert repr(seed_groups(_runs())) == "<SeedGroups: 2 groups of 6 runs by learning_rate>"
    assert repr(seed_groups(_runs(), by=["variant", "learning_rate"])) == (
        "<SeedGroups: 4 groups of 6 runs by variant, learning_rate>")
    same = _runs().drop(columns=["params.seed", "params.env.random_seed"]).assign(**{"params.learning_rate": 1e-3})
    with caplog.at_level(logging.INFO, logger="trackbook.analysis.seeds"):
        one = seed_groups(same)
    assert repr(one) == "<SeedGroups: 1 groups of 6 runs by nothing (one group)>"
    assert one.table[C.GROUP].tolist() == ["all runs"] and one.table[C.SEEDS].tolist() == [[]]
    assert caplog.messages == ["seed groups: 6 runs in 1 groups by nothing (seed-like params left out: none)"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trackbook.analysis.seeds"):
        seed_groups(_runs())
    assert caplog.messages == ["seed groups: 6 runs in 2 groups by ['learning_rate'] "
                               "(seed-like params left out: ['seed', 'env.random_seed'])"]


def test_seeds_come_from_the_first_seed_like_param_a_run_has_as_ints():
    ids = [f"{i:032x}" for i in range(6)]
    runs = pd.DataFrame({C.RUN_ID: ids, "params.eval_seed": [7.0, 7.0, 2.0, np.nan, np.nan, np.nan],
                         "params.env.random_seed": [9.0, 4.0, np.nan, 5.0, np.nan, np.nan],
                         "params.seed": [3.0, np.nan, np.nan, np.nan, 1.0, np.nan]})
    groups = seed_groups(runs)
    assert groups.seed_columns == ["params.seed", "params.eval_seed", "params.env.random_seed"]
    seeds = groups.members[C.SEED].tolist()
    assert seeds == [3, 7, 2, 5, 1, None] and [type(s) for s in seeds] == [int] * 5 + [type(None)]
    assert groups.table[C.SEEDS].tolist() == [[1, 2, 3, 5, 7]]  # by seed; a run without one is listed last
    assert groups.table[C.RUN_IDS].tolist() == [[ids[4], ids[2], ids[0], ids[3], ids[1], ids[5]]]


def test_seeds_that_are_not_numbers_are_kept_as_logged_after_the_numbers():
    ids = [f"{i:032x}" for i in range(4)]
    # SB3 logs seed=None as the text "None"; MLflow params are text
    runs = pd.DataFrame({C.RUN_ID: ids, "params.seed": pd.Series([2, 0, "None", np.nan], dtype=object),
                         "params.env_seed": pd.Series(["x", "y", "z", "w"], dtype=object)})
    groups = seed_groups(runs)
    assert groups.members[C.SEED].tolist() == [2, 0, "None", "w"]
    assert groups.table[C.SEEDS].tolist() == [[0, 2, "None", "w"]]


def test_runs_without_seed_params_or_names_have_none_and_ties_keep_the_given_order():
    ids = [f"{i:032x}" for i in range(40)]
    bare = seed_groups(pd.DataFrame({C.RUN_ID: ids[:3]}))
    assert all(s is None for s in bare.members[C.SEED]) and all(n is None for n in bare.members[C.NAME])
    assert bare.table[C.SEEDS].tolist() == [[]] and bare.table[C.N_RUNS].dtype == np.int64
    named = seed_groups(pd.DataFrame({C.RUN_ID: ids[:2], C.NAME: ["a", "b"]}))
    assert named.members[C.NAME].tolist() == ["a", "b"]
    # 20 seeds on 2 tasks: runs sharing a seed stay in the order given
    tied = seed_groups(pd.DataFrame({C.RUN_ID: ids, "params.seed": [i % 20 for i in range(40)],
                                     "params.env": ["a"] * 20 + ["b"] * 20}), task="env")
    assert tied.table[C.RUN_IDS].iloc[0] == [ids[i + k] for i in range(20) for k in (0, 20)]
    assert tied.task == "params.env"


def test_a_param_set_on_some_runs_only_varies_and_a_text_param_that_does_not_is_left_out():
    runs = _runs().assign(**{"params.clip_range": [0.2, 0.2, 0.2, np.nan, np.nan, np.nan],
                             "params.policy": "MlpPolicy"})
    assert seed_groups(runs).by == ["params.learning_rate", "params.clip_range"]


def test_values_printed_alike_are_one_group_and_the_runs_index_does_not_matter():
    runs = _runs().assign(**{"params.learning_rate": [1e-3, 1e-3, 1e-3, 1.0000001e-3, 1.0000001e-3, 1.0000001e-3]})
    groups = seed_groups(runs, by="learning_rate")  # a label is a group: both print as 0.001
    assert groups.table[C.GROUP].tolist() == ["learning_rate=0.001"] and groups.table[C.N_RUNS].tolist() == [6]
    indexed = _runs().set_index(C.RUN_ID, drop=False)  # an index named like a column
    pd.testing.assert_frame_equal(seed_groups(indexed).table, seed_groups(_runs()).table)
    assert seed_groups(_runs(), by="learning_rate").by == ["params.learning_rate"]  # one name, not a list


def test_bad_frames_and_names_are_refused_with_what_there_is():
    with pytest.raises(ValueError) as raised:
        seed_groups(pd.DataFrame({f"c{i}": [1] for i in range(10)}))
    assert str(raised.value) == ("seed_groups takes a Store.runs() frame; got columns "
                                 "['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'].")
    many = _runs().assign(**{f"params.p{i:02d}": 1 for i in range(12)})
    known = ["learning_rate", "seed", "env.random_seed", "n_steps", "variant"] + [f"p{i:02d}" for i in range(7)]
    for arg in ("task", "by"):
        with pytest.raises(ValueError) as raised:
            seed_groups(many, **{arg: "nope"})
        assert str(raised.value) == (f"{arg}='nope': the runs have no such param or tag (they have {known}). "
                                     "Pass one of those names.")


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
    assert seed_scores(hist, groups)[C.SCORE].tolist() == [30.0, 1.0]  # the default: the final value
    assert seed_scores(hist, groups, last=2)[C.SCORE].tolist() == [25.0, 1.0]  # NaN is no evaluation
    with pytest.raises(ValueError, match="last="):
        seed_scores(hist, groups, last=0)


def _long_history(rows: list[tuple[str, str, int, float]], runs: list[str] | None = None) -> pd.DataFrame:
    """A history frame from (run_id, metric, step, value) rows; ``runs`` gives every run id category."""
    frame = pd.DataFrame([(*row, pd.Timestamp(0, tz="UTC")) for row in rows], columns=C.HISTORY_COLUMNS)
    frame[C.RUN_ID] = pd.Categorical(frame[C.RUN_ID], categories=runs or sorted(set(frame[C.RUN_ID])))
    frame[C.METRIC] = frame[C.METRIC].astype("category")
    return frame


def _two_groups(n: int = 2) -> tuple[list[str], SeedGroups]:
    ids = [f"{i:032x}" for i in range(2 * n)]
    runs = pd.DataFrame({C.RUN_ID: ids, "params.arm": ["b"] * n + ["a"] * n, "params.seed": list(range(n)) * 2})
    return ids, seed_groups(runs)


def test_a_group_has_a_curve_only_where_its_runs_logged_and_one_run_reads_alone():
    ids, groups = _two_groups()
    hist = _history({ids[0]: [(0, 1.0), (10, 3.0)], ids[1]: [(0, 5.0), (10, 7.0), (20, 9.0)],
                     ids[2]: [(30, 2.0), (40, 4.0)], ids[3]: [(30, 6.0), (40, 8.0)]})
    curves = seed_curves(hist, groups, statistic=C.MEAN, reps=200)
    a, b = (curves[curves[C.GROUP] == g].set_index(C.STEP) for g in ("arm=a", "arm=b"))
    assert b.index.tolist() == [0, 10, 20] and a.index.tolist() == [30, 40]  # no rows where a group has no run
    assert b[C.ESTIMATE].tolist() == [3.0, 5.0, 9.0] and b[C.N_RUNS].tolist() == [2, 2, 1]
    assert b.loc[20, C.LOW] == b.loc[20, C.HIGH] == 9.0  # one run: its value, and no spread
    assert curves[C.STEP].dtype == np.int64 and curves[C.ESTIMATE].dtype == np.float64
    assert curves.index.equals(pd.RangeIndex(len(curves)))


def test_a_curve_band_is_the_bootstrap_of_the_statistic_asked_for():
    ids = [f"{i:032x}" for i in range(4)]
    groups = seed_groups(pd.DataFrame({C.RUN_ID: ids, "params.seed": range(4)}))
    hist = _history({rid: [(0, v)] for rid, v in zip(ids, [0.0, 0.0, 0.0, 100.0], strict=True)})
    # k of 4 draws are the 100 (binomial, p = 1/4): P(k <= 1) = 0.738, P(k = 2) = 0.211, P(k = 3) = 0.047.
    # The IQM of a resample (the middle two of four) is 0, 0, 50, 100, 100 for k = 0..4; its mean is 25 k.
    iqm = seed_curves(hist, groups, statistic=C.IQM, reps=4000).iloc[0]
    assert (iqm[C.ESTIMATE], iqm[C.LOW], iqm[C.HIGH]) == (0.0, 0.0, 100.0)  # the 97.5% quantile falls on k = 3
    mean = seed_curves(hist, groups, statistic=C.MEAN, reps=4000).iloc[0]
    assert (mean[C.ESTIMATE], mean[C.LOW], mean[C.HIGH]) == (25.0, 0.0, 75.0)


def test_curves_sort_steps_read_only_the_metrics_asked_and_skip_groups_without_points():
    ids, groups = _two_groups()
    rows = [(ids[0], REWARD, 20, 2.0), (ids[0], REWARD, 0, 0.0), (ids[1], REWARD, 0, 4.0), (ids[1], REWARD, 20, 6.0),
            (ids[0], "train/loss", 0, 9.0), (ids[2], "train/loss", 0, 1.0), (ids[3], REWARD, 0, np.nan)]
    hist = _long_history(rows, runs=ids)  # arm=a (ids 2, 3), the first group, has no finite reward
    curves = seed_curves(hist, groups, metrics=["absent/metric", REWARD], statistic=C.MEAN, reps=100)
    assert curves[C.GROUP].unique().tolist() == ["arm=b"] and curves[C.METRIC].unique().tolist() == [REWARD]
    assert curves[C.STEP].tolist() == [0, 20] and curves[C.ESTIMATE].tolist() == [2.0, 4.0]  # steps sorted first
    loss = seed_curves(hist, groups, metrics="train/loss", statistic=C.MEAN, reps=100)
    assert loss[C.GROUP].tolist() == ["arm=a", "arm=b"] and loss[C.ESTIMATE].tolist() == [1.0, 9.0]
    asked = seed_curves(hist, groups, metrics=["train/loss", REWARD], reps=100)  # history has the reward first
    assert asked[C.METRIC].unique().tolist() == ["train/loss", REWARD]
    assert list(seed_curves(hist, groups, metrics="absent/metric").columns) == C.CURVE_COLUMNS


def test_the_grid_is_the_logged_steps_up_to_points_of_them():
    ids = [f"{i:032x}" for i in range(2)]
    groups = seed_groups(pd.DataFrame({C.RUN_ID: ids}))
    hist = _history({ids[0]: [(0, 0.0), (1, 1.0), (10, 10.0)], ids[1]: [(0, 0.0), (10, 10.0)]})
    assert seed_curves(hist, groups, points=3, reps=10)[C.STEP].tolist() == [0, 1, 10]  # 3 steps, points=3
    assert seed_curves(hist, groups, points=2, reps=10)[C.STEP].tolist() == [0, 10]


def test_curve_defaults_repeat_and_bad_arguments_are_named():
    ids = [f"{i:032x}" for i in range(12)]
    groups = seed_groups(pd.DataFrame({C.RUN_ID: ids, "params.seed": range(12)}))
    rng = np.random.default_rng(1)
    hist = _history({rid: [(s, float(v)) for s, v in enumerate(rng.normal(size=300))] for rid in ids})
    curves = seed_curves(hist, groups)
    assert len(curves) == 200  # 300 logged steps, 200 grid steps
    pd.testing.assert_frame_equal(curves, seed_curves(hist, groups, statistic=C.IQM, points=200, reps=2000, seed=0))
    pd.testing.assert_frame_equal(curves, seed_curves(hist, groups))
    with pytest.raises(ValueError, match=re.escape("statistic='mode': use one of ('iqm', 'mean', 'median').")):
        seed_curves(hist, groups, statistic="mode")
    for points in (1, 2.5):
        with pytest.raises(ValueError, match=re.escape(f"points={points!r}: pass the most grid steps per metric")):
            seed_curves(hist, groups, points=points)


def test_scores_of_the_metrics_asked_in_their_order_and_none_for_a_run_without_finite_points():
    ids, groups = _two_groups()
    rows = [(ids[0], "b/second", 1, 1.0), (ids[0], "a/first", 1, 2.0), (ids[1], "a/first", 1, 3.0),
            (ids[2], "b/second", 1, 4.0), (ids[2], "a/first", 1, 5.0), (ids[3], "a/first", 1, np.nan)]
    hist = _long_history(rows, runs=ids)
    scores = seed_scores(hist, groups, ["a/first", "b/second"])
    assert list(scores.columns) == C.SCORE_COLUMNS and scores.index.equals(pd.RangeIndex(len(scores)))
    # groups in the table's order (arm=a first), then metrics as asked, then runs as given
    assert list(zip(scores[C.RUN_ID], scores[C.METRIC], scores[C.SCORE], strict=True)) == [
        (ids[2], "a/first", 5.0), (ids[2], "b/second", 4.0),
        (ids[0], "a/first", 2.0), (ids[1], "a/first", 3.0), (ids[0], "b/second", 1.0)]
    only = seed_scores(hist, groups, "b/second")
    assert only[C.METRIC].tolist() == ["b/second", "b/second"]
    pd.testing.assert_frame_equal(seed_scores(hist, groups), seed_scores(hist, groups, last=1))
    assert list(seed_scores(hist.iloc[:0], groups).columns) == C.SCORE_COLUMNS


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


def test_across_seeds_keeps_the_frame_given_and_passes_metrics_goals_and_options_on(sweep_store):
    store, client, logged = sweep_store
    for rid, (_, seed) in logged.items():
        client.log_metric(rid, "train/loss", 1.0 + seed, step=500)
    runs = store.runs(EXPERIMENT)
    runs["params.arm"] = np.where(runs["params.seed"] == 0, "x", "y")  # a column added by hand is kept
    one = tb.analysis.across_seeds(store, runs, REWARD, by="learning_rate")
    assert repr(one) == "<AcrossSeeds: 2 groups, 6 runs, metrics ['eval/mean_reward']>"
    assert one.groups.by == ["params.learning_rate"] and set(one.history[C.METRIC]) == {REWARD}
    for _, row in one.scores.iterrows():  # the default score is the final value
        final = max(client.get_metric_history(row[C.RUN_ID], REWARD), key=lambda m: m.step)
        assert row[C.SCORE] == final.value
    goals = {"train/loss": "max"}  # against its name: higher is better here
    both = tb.analysis.across_seeds(store, runs, [REWARD, "train/loss"], by="arm", task="learning_rate", goals=goals)
    assert both.groups.table[C.GROUP].tolist() == ["arm=x", "arm=y"] and both.groups.task == "params.learning_rate"
    assert set(both.groups.members[C.TASK]) == {"0.001", "0.0003"}
    assert set(both.scores[C.METRIC]) == {REWARD, "train/loss"}
    # arm x (seed 0) has losses 1, 1; arm y (seeds 1, 2) has 2, 3 on each task; with "max", y is better
    poi = both.improvement("arm=x", "arm=y", metrics="train/loss", reps=50)
    assert poi[C.METRIC].tolist() == ["train/loss"] and poi[C.PROBABILITY].tolist() == [0.0]
    gaps = both.intervals(statistics=[C.OPTIMALITY_GAP], targets={"train/loss": 2}, reps=50)
    assert gaps[C.ESTIMATE].tolist() == [2 - 1, 2 - 2]  # target - mean(min(loss, target)), x then y
    profile = both.profiles(taus={"train/loss": [1.5]}, reps=20)
    loss_profile = profile[profile[C.METRIC] == "train/loss"]
    assert loss_profile[C.TAU].tolist() == [1.5, 1.5] and loss_profile[C.FRACTION].tolist() == [0.0, 1.0]
    assert set(both.curves(metrics="train/loss", reps=20)[C.METRIC]) == {"train/loss"}
    pd.testing.assert_frame_equal(both.curves(statistic=C.MEDIAN, reps=30, seed=4),
                                  seed_curves(both.history, both.groups, statistic=C.MEDIAN, reps=30, seed=4))
