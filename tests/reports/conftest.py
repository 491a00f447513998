"""A small store written with MLflow's own client: a 2-link chain whose loss falls while its reward
falls too, and a run that is still RUNNING."""

from __future__ import annotations

import time

import numpy as np
import pytest

from trackbook import layout as L

LOSS, REWARD = "train/loss", "eval/mean_reward"


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``{"uri", "db", "client", "ids": {"base", "next", "running"}}``."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("small-store")
    uri = f"sqlite:///{folder / 'small.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("small-chain", artifact_location=(folder / "artifacts").as_uri())
    now = int(time.time() * 1000)  # recent points: the RUNNING run is not stale
    ids: dict[str, str] = {}

    def run(key: str, series: dict, *, tags: dict | None = None, end: bool = True) -> None:
        created = client.create_run(exp, start_time=now - 60_000, tags=tags or {}, run_name=key)
        ids[key] = created.info.run_id
        client.log_batch(ids[key], params=[Param("learning_rate", "0.0003"), Param("algorithm", "PPO")])
        client.log_batch(ids[key], metrics=[Metric(metric, float(v), now - 1000 + int(s), int(s))
                                            for metric, (steps, values) in series.items()
                                            for s, v in zip(steps, values)])
        if end:
            client.set_terminated(ids[key], "FINISHED", end_time=now)

    steps = np.arange(100, 1001, 100)
    run("base", {LOSS: (steps, np.linspace(1.0, 0.5, 10)), REWARD: (steps, np.linspace(10, 50, 10)),
                 L.METRIC_TOTAL_TIMESTEPS: ([1000], [1000])})
    # the continuation goes on at step 1000: its loss falls further (better), its reward falls back (worse)
    run("next", {LOSS: (steps + 1000, np.linspace(0.45, 0.2, 10)), REWARD: (steps + 1000, np.linspace(48, 40, 10)),
                 L.METRIC_TOTAL_TIMESTEPS: ([2000], [2000]), L.METRIC_PREVIOUS_TIMESTEPS: ([1000], [1000])},
        tags={L.TAG_BASE_RUN: ids["base"]})
    run("still-going", {REWARD: (steps, np.linspace(5, 30, 10))}, end=False)
    return {"uri": uri, "db": folder / "small.db", "client": client, "ids": ids}
