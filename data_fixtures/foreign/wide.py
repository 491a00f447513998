"""One experiment of 2,000 small runs, as a sweep script leaves them.

Experiment ``sweep-2000``: runs ``run-0000`` .. ``run-1999``, each with params ``lr``,
``seed`` and ``arch``, 20 points of ``loss`` and ``reward`` (steps 0..19), FINISHED.

``run-0000`` is written with ``MlflowClient`` (create_run, one log_batch,
set_terminated). Written that way, 2,000 runs take over 5 minutes on a shared 2-core
machine (6,000 transactions, 9 ms of MLflow's own CPU each), so the other 1,999 go in
one transaction through MLflow's own SQLAlchemy models (``SqlRun``, ``SqlTag``,
``SqlParam``, ``SqlMetric``, ``SqlLatestMetric``) with the fields ``create_run``,
``log_batch`` and ``set_terminated`` fill; ``tests/foreign`` checks that MLflow's
client reads ``run-0001`` exactly as it reads ``run-0000``. ``ids.json`` holds the
first and last run; tests ask MLflow for the rest.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from data_fixtures.foreign._common import BASE_TIME_MS, experiment

EXPERIMENT = "sweep-2000"
N_RUNS = 2_000
N_POINTS = 20
ARCHS = ("mlp", "cnn", "lstm")


def run_contents(i: int) -> tuple[dict[str, str], dict[str, list[float]]]:
    """Params and metric values (steps 0..19) of run ``i``."""
    rng = np.random.default_rng(2000 + i)
    lr = float(np.round(10 ** rng.uniform(-5, -2), 8))
    steps = np.arange(N_POINTS)
    quality = -abs(np.log10(lr) + 3.5)
    loss = np.round(np.exp(-steps / 5) + 0.1 * (1 - quality), 6)
    reward = np.round(100 * (1 - np.exp(-steps / 5)) * (1 + quality / 4), 4)
    return {"lr": str(lr), "seed": str(i % 5), "arch": ARCHS[i % 3]}, {"loss": loss.tolist(), "reward": reward.tolist()}


def write(tracking_uri: str, artifact_root: Path, out_dir: Path) -> dict[str, str]:
    from mlflow.entities import Metric, Param
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = experiment(client, EXPERIMENT, artifact_root)
    ids: dict[str, str] = {}

    params, metrics = run_contents(0)
    start = BASE_TIME_MS
    template = client.create_run(exp, start_time=start, run_name="run-0000")
    rid = template.info.run_id
    ids["run-0000"] = rid
    client.log_batch(rid, params=[Param(k, v) for k, v in params.items()], metrics=[
        Metric(name, value, start + step, step) for name, values in metrics.items() for step, value in enumerate(values)])
    client.set_terminated(rid, "FINISHED", end_time=start + 500)
    first = client.get_run(rid).info
    artifact_base = first.artifact_uri[: -len(f"{rid}/artifacts")]

    store = client._tracking_client.store
    with store.ManagedSessionMaker(read_only=False) as session:
        for i in range(1, N_RUNS):
            params, metrics = run_contents(i)
            rid = uuid.uuid4().hex
            start = BASE_TIME_MS + i * 1_000
            name = f"run-{i:04d}"
            run = SqlRun(name=name, artifact_uri=f"{artifact_base}{rid}/artifacts", run_uuid=rid, experiment_id=int(exp),
                         source_type="UNKNOWN", source_name="", entry_point_name="", user_id=first.user_id,
                         status="FINISHED", start_time=start, end_time=start + 500, deleted_time=None,
                         source_version="", lifecycle_stage="active")
            run.tags = [SqlTag(key="mlflow.runName", value=name)]
            run.params = [SqlParam(key=k, value=v) for k, v in params.items()]
            session.add(run)
            for key, values in metrics.items():
                session.add_all(SqlMetric(key=key, value=v, timestamp=start + s, step=s, is_nan=False, run_uuid=rid)
                                for s, v in enumerate(values))
                session.add(SqlLatestMetric(key=key, value=values[-1], timestamp=start + len(values) - 1,
                                            step=len(values) - 1, is_nan=False, run_uuid=rid))
            if i == N_RUNS - 1:
                ids[name] = rid
    return ids
