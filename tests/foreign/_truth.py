"""What MLflow's and Aim's own clients say about a store: the answers trackbook is checked against."""

from __future__ import annotations

import math
import sys
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

# MLflow's SQL store keeps ±inf as ±(largest double) and hands that back.
_MLFLOW_INF = sys.float_info.max


def mlflow_value(value: float) -> float:
    """A value as MLflow's client returns it, with its stand-in for ±inf turned back into ±inf."""
    value = float(value)
    return math.copysign(math.inf, value) if abs(value) == _MLFLOW_INF else value


def mlflow_runs(client, experiment_names: list[str] | None = None) -> dict[str, object]:
    """Active runs of the active experiments (or of the named ones): run id -> mlflow Run."""
    from mlflow.entities import ViewType

    experiments = client.search_experiments(view_type=ViewType.ALL)
    if experiment_names is None:
        ids = [e.experiment_id for e in experiments if e.lifecycle_stage == "active"]
    else:
        ids = [e.experiment_id for e in experiments if e.name in experiment_names]
    runs = client.search_runs(ids, run_view_type=ViewType.ACTIVE_ONLY, max_results=50_000)
    return {r.info.run_id: r for r in runs}


def mlflow_points(client, run_id: str, metric: str) -> list[tuple[int, float, int]]:
    """``(step, value, timestamp ms)`` of one series as MLflow returns it, in trackbook's order."""
    points = [(int(m.step), mlflow_value(m.value), int(m.timestamp)) for m in client.get_metric_history(run_id, metric)]
    return sorted(points, key=lambda p: (p[0], p[2]))


def same_values(a, b) -> bool:
    """Element-wise equal, NaN equal to NaN, ±inf to itself."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def mlflow_artifacts(client, run_id: str, path: str = "") -> list[tuple[str, int | None]]:
    """Every file under ``path``, recursively, as MLflow lists it."""
    out, todo = [], [path or None]
    while todo:
        for info in client.list_artifacts(run_id, todo.pop()):
            if info.is_dir:
                todo.append(info.path)
            else:
                out.append((str(PurePosixPath(info.path)), info.file_size))
    return sorted(out)


def frame_points(hist: pd.DataFrame, run_id: str, metric: str) -> list[tuple[int, float, int]]:
    """The same ``(step, value, timestamp ms)`` triples from a trackbook history frame."""
    part = hist[(hist["run_id"] == run_id) & (hist["metric"] == metric)]
    ms = (part["timestamp"].astype("int64") // 1_000_000).tolist()
    return list(zip(part["step"].astype(int).tolist(), part["value"].astype(float).tolist(), ms, strict=True))


def same_points(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    return all(x[0] == y[0] and x[2] == y[2] and same_values([x[1]], [y[1]]) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------------ Aim


def aim_label(name: str, context: dict) -> str:
    """How trackbook names an Aim series: ``name``, or ``name[key=value,...]`` with a context."""
    if not context:
        return name
    return name + "[" + ",".join(f"{k}={context[k]}" for k in sorted(context)) + "]"


def aim_series(repo, run_hash: str) -> dict[str, tuple[list[int], list[float]]]:
    """label -> (steps, values) of every metric of an Aim run, sorted by step, read by Aim."""
    run = repo.get_run(run_hash)
    out = {}
    for name, context, _ in run.iter_metrics_info():
        metric = run.get_metric(name, context)
        steps, (values,) = metric.data.view(["val"]).numpy()
        order = np.argsort(steps, kind="stable")
        out[aim_label(name, context.to_dict())] = (np.asarray(steps)[order].tolist(),
                                                   np.asarray(values, dtype=float)[order].tolist())
    return out
