"""The RL trading scripts' convention, written with plain MLflow calls.

Each training run logs ``evaluation/mean_reward``, ``portfolio/total_return``,
``portfolio/sharpe_ratio`` and ``portfolio/value`` with the SB3 timesteps as steps, and
``total_timesteps`` once at the end; a continued ("enhanced") run carries the tag
``base_model_run_id`` and logs ``previous_timesteps``. The scripts logged their steps
two ways, and both are here:

Experiment ``stock-trading-rl``:
    ``restart-0 -> restart-1 -> restart-2``: every link's steps restart at 0 (the SB3
    model's own counter after ``reset_num_timesteps=True``); ``offset-0 -> offset-1``:
    the enhancement's steps continue from the base's end. ``solo``: a run never continued.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_fixtures.foreign._common import BASE_TIME_MS, experiment

EXPERIMENT = "stock-trading-rl"
SEGMENT = 5_000
EVAL_EVERY = 500
#: key -> (base key, steps restart at 0 in this run)
CHAINS = {
    "restart-0": (None, True),
    "restart-1": ("restart-0", True),
    "restart-2": ("restart-1", True),
    "offset-0": (None, False),
    "offset-1": ("offset-0", False),
    "solo": (None, True),
}


def position(key: str) -> int:
    depth, base = 0, CHAINS[key][0]
    while base is not None:
        depth, base = depth + 1, CHAINS[base][0]
    return depth


def reward_curve(key: str) -> np.ndarray:
    """evaluation/mean_reward of one run: each link picks up where its base ended."""
    level = 10.0 * position(key) + (5.0 if key.startswith("offset") else 0.0)
    n = SEGMENT // EVAL_EVERY
    return np.round(level + np.linspace(1.0, 10.0, n), 4)


def write(tracking_uri: str, artifact_root: Path, out_dir: Path) -> dict[str, str]:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = experiment(client, EXPERIMENT, artifact_root)
    rng = np.random.default_rng(3)
    ids: dict[str, str] = {}
    for i, (key, (base, restart)) in enumerate(CHAINS.items()):
        previous = position(key) * SEGMENT
        start = BASE_TIME_MS + i * 3_600_000
        tags = {"model_type": "PPO", "dataset_version": "v3"}
        if base is not None:
            tags["base_model_run_id"] = ids[base]
        rid = client.create_run(exp, start_time=start, tags=tags, run_name=key).info.run_id
        ids[key] = rid
        client.log_batch(rid, params=[Param("algorithm", "PPO"), Param("learning_rate", "0.0003"),
                                       Param("timesteps", str(SEGMENT)), Param("ticker", "SPY")])
        first = 0 if restart else previous
        steps = np.arange(first + EVAL_EVERY, first + SEGMENT + 1, EVAL_EVERY)
        reward = reward_curve(key)
        ret = np.round(np.cumsum(rng.normal(0.002, 0.01, len(steps))), 6)
        metrics = []
        for j, step in enumerate(steps.tolist()):
            ts = start + j * 1_000
            metrics += [
                Metric("evaluation/mean_reward", float(reward[j]), ts, step),
                Metric("portfolio/total_return", float(ret[j]), ts, step),
                Metric("portfolio/sharpe_ratio", float(np.round(ret[j] * 10, 6)), ts, step),
                Metric("portfolio/value", float(np.round(10_000 * (1 + ret[j]), 2)), ts, step),
            ]
        end_ts = start + len(steps) * 1_000
        metrics.append(Metric("total_timesteps", float(previous + SEGMENT), end_ts, int(steps[-1])))
        if base is not None:
            metrics.append(Metric("previous_timesteps", float(previous), start, first))
        client.log_batch(rid, metrics=metrics)
        client.set_terminated(rid, "FINISHED", end_time=end_ts)
    return ids
