"""The main job, on the embedded store ``sqlite:///mlflow.db`` in the working folder.

Run through ``bash scripts/dev demo``. It writes the fixture runs into the store (first
call only), trains a PPO agent on CartPole-v1 with ``TrackingCallback``, continues it
twice as an enhancement chain, runs a small Optuna study over PPO's learning rate and
gamma, trains a seed sweep (2 learning rates x 3 seeds) and prints its IQM table with
bootstrap intervals, writes the four HTML reports into ``reports/``, and asks trackbook the questions a user would ask in a notebook: a runs table,
the chain on one continuous step axis with its before/after per link, the study's
trials, best trial and parameter importance. It ends by naming the next step,
``bash scripts/dev lab``: JupyterLab on this store, with the example notebooks.

It prints only that: MLflow's artifact progress bars and INFO logs are off (a variable
set before MLflow loads, so a user's own setting wins), and the report kernels' traffic
is encrypted, so they do not warn that it is not.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

# Before anything imports mlflow: it reads these once, and report kernels inherit them.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trackbook as tb  # noqa: E402
from trackbook import columns as C  # noqa: E402
from data_fixtures.build import PLAIN_EXPERIMENT, write_mlflow  # noqa: E402

DEMO_EXPERIMENT = "demo-ppo-cartpole"
STUDY_EXPERIMENT = "demo-ppo-hpo"
SWEEP_EXPERIMENT = "demo-ppo-seeds"


def env():
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    return Monitor(gym.make("CartPole-v1"))


def train_chain(store: tb.Store) -> str:
    """Train PPO, continue it twice; return the last run's id."""
    from stable_baselines3 import PPO

    from trackbook.tracking import TrackingCallback, continue_training

    model = PPO("MlpPolicy", env(), n_steps=512, batch_size=64, seed=0)
    cb = TrackingCallback(store, experiment=DEMO_EXPERIMENT, eval_env=env(), eval_freq=1024, n_eval_episodes=5)
    model.learn(4096, callback=cb)
    print(f"  trained run {cb.run_id}: eval/mean_reward {cb.last_eval['eval/mean_reward']:.1f}")
    for link in (1, 2):
        _, cb = continue_training(store, cb.run_id, env(), 2048, eval_env=env(), eval_freq=1024, n_eval_episodes=5)
        print(f"  continued as run {cb.run_id} (link {link}): eval/mean_reward {cb.last_eval['eval/mean_reward']:.1f}")
    return cb.run_id


def run_study(store: tb.Store) -> str:
    """A 6-trial Optuna study over PPO; return the parent run's id."""
    from stable_baselines3 import PPO

    def objective(trial: tb.hpo.Trial) -> float:
        model = PPO("MlpPolicy", env(), n_steps=256, batch_size=64, seed=trial.number, **trial.params)
        cb = trial.callback(eval_env=env(), eval_freq=512, n_eval_episodes=5)
        model.learn(2048, callback=cb)
        return cb.best_mean_reward

    space = {"learning_rate": {"low": 1e-4, "high": 3e-3, "log": True}, "gamma": [0.95, 0.98, 0.99]}
    result = tb.hpo.optimize(objective, space, n_trials=6, store=store, experiment=STUDY_EXPERIMENT, seed=0)
    return result.parent_run_id


def run_sweep(store: tb.Store) -> list[str]:
    """2 learning rates x 3 seeds of a short PPO; return the runs' ids."""
    import torch
    from stable_baselines3 import PPO

    from trackbook.tracking import TrackingCallback

    run_ids, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-unit MLP gains nothing from more threads, and they fight on a busy machine
    try:
        for learning_rate in (3e-4, 3e-3):
            for seed in range(3):
                model = PPO("MlpPolicy", env(), n_steps=256, batch_size=128, n_epochs=4, learning_rate=learning_rate,
                            seed=seed)
                cb = TrackingCallback(store, experiment=SWEEP_EXPERIMENT, eval_env=env(), eval_freq=512,
                                      n_eval_episodes=2)
                model.learn(1024, callback=cb)
                run_ids.append(cb.run_id)
    finally:
        torch.set_num_threads(threads)
    return run_ids


def seed_table(result: tb.analysis.AcrossSeeds, metric: str) -> pd.DataFrame:
    """One row per group: seeds, then IQM and mean as 'estimate [low, high]'."""
    intervals = result.intervals(statistics=[C.IQM, C.MEAN])
    intervals["interval"] = [f"{e:.1f} [{lo:.1f}, {hi:.1f}]" for e, lo, hi in
                             zip(intervals[C.ESTIMATE], intervals[C.LOW], intervals[C.HIGH], strict=True)]
    table = intervals.pivot(index=C.GROUP, columns=C.STATISTIC, values="interval")
    table.columns.name = None
    groups = result.groups.table.set_index(C.GROUP)
    table.insert(0, C.SEEDS, groups[C.SEEDS].loc[table.index].map(lambda s: ",".join(map(str, s))))
    return table.loc[groups.index, [C.SEEDS, C.IQM, C.MEAN]].rename(columns={C.IQM: f"IQM {metric}",
                                                                             C.MEAN: f"mean {metric}"})


def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 12)
    pd.set_option("display.max_colwidth", 28)
    store = tb.connect("sqlite:///mlflow.db", create=True)  # the demo fills it on its first call
    print(f"Connected: {store}")
    if PLAIN_EXPERIMENT not in set(store.experiments()["name"]):
        print("Writing the fixture runs into it (first call only) ...")
        write_mlflow(store.uri, Path("mlartifacts"))

    runs = store.runs(PLAIN_EXPERIMENT)
    print(f"\n{len(runs)} runs in {PLAIN_EXPERIMENT!r}:")
    shown = ["name", "status", "duration", "params.algorithm", "params.learning_rate", "metrics.eval/mean_reward"]
    print(runs[shown].to_string(index=False))

    print(f"\nTraining PPO on CartPole-v1 into {DEMO_EXPERIMENT!r}, then continuing it twice ...")
    final = train_chain(store)
    chain = tb.chain(store, final)
    print(f"\n{chain}")
    print(chain.runs[["position", "name", "offset", "metrics.total_timesteps"]].to_string(index=False))
    hist = chain.history("eval/mean_reward")
    summary = hist.groupby("segment").agg(
        first_step=("global_step", "min"), last_step=("global_step", "max"), last_reward=("value", "last")
    )
    print("\neval/mean_reward along the chain, one continuous axis:")
    print(summary.to_string())
    links = chain.links("eval/mean_reward")
    print("\nBefore/after each link:")
    print(links[["position", "name", "timesteps_added", "before", "after", "delta"]].to_string(index=False))

    print(f"\nA 6-trial Optuna study over PPO into {STUDY_EXPERIMENT!r} ...")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = tb.study(store, run_study(store))
    print(study)
    print(study.trials[["trial_number", "state", "objective", "params.learning_rate", "params.gamma"]]
          .to_string(index=False))
    print(f"best: trial {study.best['trial_number']} objective {study.best['objective']:.1f}")
    print("importance (fANOVA):", dict(study.importance().values.tolist()))

    print(f"\nA seed sweep into {SWEEP_EXPERIMENT!r}: 2 learning rates x 3 seeds ...")
    sweep = tb.analysis.across_seeds(store, run_sweep(store), "eval/mean_reward")
    print(f"grouped by {[c.removeprefix(C.PARAMS_PREFIX) for c in sweep.groups.by]}; "
          "final eval/mean_reward, 95% stratified bootstrap intervals:")
    print(seed_table(sweep, "eval/mean_reward").to_string())

    print("\nWriting the demo's four reports (papermill + nbconvert) into reports/ ...")
    top = study.completed.sort_values("objective", ascending=False)[C.RUN_ID].head(3).tolist()
    jobs = {
        "training": {"run_id": final},
        "chain": {"run_id": final, "metrics": ["eval/mean_reward", "rollout/ep_rew_mean"]},
        "hpo": {"parent_run_id": study.parent[C.RUN_ID]},
        "comparison": {"run_ids": top, "metrics": ["eval/mean_reward", "train/value_loss"],
                       "title": "Top 3 trials of the demo study"},
    }
    for kind, params in jobs.items():
        _, path = tb.report(kind, Path("reports") / f"{kind}.html", store_uri=store.uri, progress=False, **params)
        print(f"  {kind:<11} {path}")

    print("\nNext: bash scripts/dev lab")
    print(f"  JupyterLab on this store ({store.uri}): open the URL it prints, then Run All on")
    print("  notebooks/01_explore_runs.ipynb, 02_train_in_notebook.ipynb and 03_chains_and_studies.ipynb.")


if __name__ == "__main__":
    main()
