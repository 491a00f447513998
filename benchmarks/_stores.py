"""Benchmark stores, built once through the real SDKs and kept under .benchmarks_data/."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1] / ".benchmarks_data"
EXPERIMENT = "bench"


def metric_names(n_metrics: int) -> list[str]:
    base = ["rollout/ep_rew_mean", "rollout/ep_len_mean", "train/loss", "train/entropy_loss", "eval/mean_reward"]
    return [base[i] if i < len(base) else f"custom/metric_{i}" for i in range(n_metrics)]


def _series(rng: np.random.Generator, n_steps: int) -> np.ndarray:
    values = np.cumsum(rng.normal(0.1, 1.0, n_steps))
    values[rng.integers(0, n_steps, 3)] = np.nan  # NaN points, as real losses have
    return values


def mlflow_store(n_runs: int, n_metrics: int, n_steps: int) -> Path:
    """``mlflow.db`` with ``n_runs`` FINISHED runs x ``n_metrics`` metrics x ``n_steps`` steps."""
    folder = ROOT / f"mlflow-{n_runs}x{n_metrics}x{n_steps}"
    db = folder / "mlflow.db"
    if db.exists():
        return db
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{building / 'mlflow.db'}")
    exp = client.create_experiment(EXPERIMENT, artifact_location=(building / "artifacts").as_uri())
    rng = np.random.default_rng(0)
    names = metric_names(n_metrics)
    started = time.perf_counter()
    for r in range(n_runs):
        run_id = client.create_run(exp, run_name=f"run-{r:04d}", start_time=1_767_225_600_000 + r).info.run_id
        client.log_batch(run_id, params=[Param("learning_rate", str(10 ** rng.uniform(-5, -2))), Param("seed", str(r))])
        points = [
            Metric(name, float(v), 1_767_225_600_000 + s * 10, s)
            for name in names
            for s, v in enumerate(_series(rng, n_steps))
        ]
        for i in range(0, len(points), 1000):
            client.log_batch(run_id, metrics=points[i : i + 1000])
        client.set_terminated(run_id, "FINISHED")
        if r % 20 == 19:
            print(f"  built {r + 1}/{n_runs} runs ({time.perf_counter() - started:.0f}s)", flush=True)
    building.rename(folder)
    return db


def aim_repo(n_runs: int, n_metrics: int, n_steps: int) -> Path:
    """An Aim repository with the same shape of content as :func:`mlflow_store`."""
    folder = ROOT / f"aim-{n_runs}x{n_metrics}x{n_steps}"
    done = folder / "BUILT"
    if done.exists():
        return folder
    import aim

    from trackbook import _aim
    from trackbook import layout as L

    # Built in place (Aim's open containers must not see their folder move), marked when done.
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    repo = _aim.open_repo(folder, init=True)
    rng = np.random.default_rng(0)
    names = metric_names(n_metrics)
    for r in range(n_runs):
        run = aim.Run(repo=str(folder), experiment=EXPERIMENT, system_tracking_interval=None,
                      capture_terminal_logs=False)
        run.name = f"run-{r:04d}"
        run[L.AIM_PARAMS_KEY] = {"learning_rate": float(10 ** rng.uniform(-5, -2)), "seed": r}
        run[L.AIM_TRACKBOOK_KEY] = {"status": "FINISHED", "parent_run_id": None}
        for name in names:
            for s, v in enumerate(_series(rng, n_steps).tolist()):
                run.track(v, name=name, step=s)
        run.close()
    _aim.index_pending_runs(repo)
    repo.close()
    done.write_text("ok\n")
    return folder


def median_time(fn: Callable[[], object], repeat: int, before: Callable[[], None] | None = None) -> tuple[float, object]:
    """The median wall time of ``repeat`` calls of ``fn`` (``before`` runs untimed before each) and its last answer."""
    times, out = [], None
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out
