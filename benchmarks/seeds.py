"""How fast are the statistics across seeds on a sweep-sized frame?

Usage:
    python benchmarks/seeds.py                        # 50 groups x 10 seeds x 1,000 points, 2,000 replicates
    python benchmarks/seeds.py --groups 5 --reps 200  # a quick look

The history frame is synthetic (no store): the figures are the estimators' own cost on
numpy, from a tidy ``Store.history()``-shaped frame to the answers a panel shows. Each
figure is the median of --repeat runs, measured side by side in one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from trackbook import columns as C  # noqa: E402
from trackbook.analysis.seeds import (  # noqa: E402
    performance_profiles,
    probability_of_improvement,
    score_intervals,
    seed_curves,
    seed_groups,
    seed_scores,
)

METRIC = "eval/mean_reward"


def sweep(groups: int, seeds: int, points: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A runs frame and a history frame: ``groups`` learning rates x ``seeds`` seeds x ``points`` evaluations."""
    n_runs = groups * seeds
    run_ids = [f"{i:032x}" for i in range(n_runs)]
    runs = pd.DataFrame({C.RUN_ID: run_ids, C.NAME: [f"run-{i}" for i in range(n_runs)],
                         "params.learning_rate": np.repeat(np.geomspace(1e-5, 1e-2, groups), seeds),
                         "params.seed": np.tile(np.arange(seeds), groups)})
    # runs log at slightly different steps, as evaluations of real sweeps do
    steps = np.arange(points)[None, :] * 1000 + rng.integers(0, 50, size=(n_runs, 1))
    skill = np.repeat(rng.uniform(100, 500, groups), seeds)[:, None]
    values = skill * (1 - np.exp(-np.arange(points) / 200))[None, :] + rng.normal(0, 20, (n_runs, points))
    history = pd.DataFrame({C.RUN_ID: pd.Categorical(np.repeat(run_ids, points)),
                            C.METRIC: pd.Categorical([METRIC] * (n_runs * points)),
                            C.STEP: steps.ravel().astype("int64"), C.VALUE: values.ravel(),
                            C.TIMESTAMP: pd.Timestamp(0, tz="UTC")})
    return runs, history


def median_time(fn: Callable[[], object], repeat: int) -> tuple[tuple[float, float], object]:
    """Median wall and CPU seconds of ``fn``: on a shared machine the CPU time is this
    process's own work, the wall time what a user waits."""
    walls, cpus, out = [], [], fn()  # warm: the first call imports scipy.stats
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return (statistics.median(walls), statistics.median(cpus)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--points", type=int, default=1000, help="evaluations per run")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--grid", type=int, default=200, help="curve grid steps")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs, history = sweep(args.groups, args.seeds, args.points, np.random.default_rng(0))
    print(f"sizes: {args.groups} groups x {args.seeds} seeds x {args.points:,} points = {len(history):,} points; "
          f"{args.reps:,} bootstrap replicates; curves on {args.grid} grid steps")

    def finals():
        groups = seed_groups(runs)
        scores = seed_scores(history, groups, last=3)
        return score_intervals(scores, targets=500, reps=args.reps)

    figures = {}
    figures["groups + scores + IQM/mean/median/gap intervals"], intervals = median_time(finals, args.repeat)
    groups = seed_groups(runs)
    scores = seed_scores(history, groups, last=3)
    figures["  of which score_intervals alone"], _ = median_time(
        lambda: score_intervals(scores, targets=500, reps=args.reps), args.repeat)
    figures["performance_profiles (101 taus)"], _ = median_time(
        lambda: performance_profiles(scores, reps=args.reps), args.repeat)
    a, b = groups.table[C.GROUP].iloc[:2]
    figures["probability_of_improvement (one pair)"], _ = median_time(
        lambda: probability_of_improvement(scores, a, b, reps=args.reps), args.repeat)
    for stat in (C.MEAN, C.IQM):
        figures[f"seed_curves {stat} with bands"], _ = median_time(
            lambda stat=stat: seed_curves(history, groups, statistic=stat, points=args.grid, reps=args.reps),
            args.repeat)
    width = max(map(len, figures))
    print(f"  {'':<{width}}     wall      CPU")
    for name, (wall, cpu) in figures.items():
        print(f"  {name:<{width}}  {wall:6.3f} s  {cpu:6.3f} s")
    with open("/proc/loadavg") as f:
        print(f"load average while measured: {f.read().split()[0]} on {os.cpu_count()} cores")
    assert len(intervals) == 4 * args.groups


if __name__ == "__main__":
    main()
