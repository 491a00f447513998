"""MLflow as people write it by hand: fluent ``mlflow.*`` calls and ``MlflowClient``, no trackbook tags.

Experiment ``hand-written``:
    ``basic`` (fluent: params, a 20-step ``loss``, an ``accuracy`` logged without step,
    a text and a dict artifact); ``odd-steps`` (a step repeated, negative steps, steps
    omitted); ``odd-names`` (metric names with spaces, unicode, dots and slashes; NaN
    and ±inf values); ``wide-params`` (150 params, a 500-character param and tag);
    ``odd-tags`` (tags with newlines, HTML and an empty value); ``no-metrics``;
    ``empty`` (nothing logged); ``running`` (never ended); ``failed``; ``killed``;
    ``typed-0..2`` (a param ``lr`` that is ``"None"`` in one run, a param ``code`` that
    is ``"007"`` in one run); ``deleted`` (deleted with ``delete_run``).
Experiment ``deleted-exp``: one run; the experiment is deleted.
Experiment ``sweep-by-hand``: two nested-run studies written with fluent
    ``start_run(nested=True)``, with no ``trial_number``, ``trial_state``, ``direction``
    or ``objective`` anywhere. ``sweep-a``: 6 trials logging ``val_loss`` per epoch
    (lower is better), trial 4 raises (FAILED, no metrics). ``sweep-b``: 4 trials that
    log ``val_loss`` and ``val_accuracy``, so which one is the objective is ambiguous.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from data_fixtures.foreign._common import BASE_TIME_MS, experiment, fluent

EXPERIMENT = "hand-written"
DELETED_EXPERIMENT = "deleted-exp"
SWEEP_EXPERIMENT = "sweep-by-hand"
ODD_METRICS = ["val loss", "ρ_reward/平均", "a.b.c", "eval/mean reward/ep", "train/loss"]
HTML_TAG = '<script>alert("x")</script><b>bold</b> & more'
NEWLINE_TAG = "first line\nsecond line\n\tindented"
LONG_VALUE = ("0123456789abcdefghijklmnopqrstuvwxyz" * 20)[:500]
N_WIDE_PARAMS = 150
TYPED_LR = ["0.001", "0.01", "None"]
TYPED_CODE = ["12", "007", "3"]
SWEEP_A_LR = [0.1, 0.03, 0.01, 0.003, 0.001, 0.0003]
SWEEP_A_FAILED = 4
SWEEP_EPOCHS = 5


def sweep_a_val_loss(trial: int) -> list[float]:
    """The val_loss curve of sweep-a's trial ``trial``: best (lowest) near lr=0.003."""
    lr = SWEEP_A_LR[trial]
    floor = 0.2 + 0.15 * abs(math.log10(lr) + 2.5)
    return [round(floor + 1.0 / (epoch + 1), 6) for epoch in range(SWEEP_EPOCHS)]


def write(tracking_uri: str, artifact_root: Path, out_dir: Path) -> dict[str, str]:
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    rng = np.random.default_rng(14)
    ids: dict[str, str] = {}
    exp = experiment(client, EXPERIMENT, artifact_root)
    t0 = BASE_TIME_MS

    with fluent(tracking_uri):
        mlflow.set_experiment(experiment_id=exp)
        with mlflow.start_run(run_name="basic") as run:
            ids["basic"] = run.info.run_id
            mlflow.log_params({"optimizer": "adam", "lr": 0.001, "epochs": 20})
            for step in range(20):
                mlflow.log_metric("loss", round(1.0 / (step + 1), 6), step=step)
            for value in (0.5, 0.7, 0.9):  # no step given: MLflow logs step 0 each time
                mlflow.log_metric("accuracy", value)
            mlflow.log_text("written by hand\n", "notes/readme.txt")
            mlflow.log_dict({"layers": [64, 64], "activation": "tanh"}, "config.json")
            mlflow.set_tag("team", "vision")

    def run(key: str, *, start: int, tags: dict[str, str] | None = None, params=None, metrics=None,
            status: str | None = "FINISHED", experiment_id: str = exp) -> str:
        created = client.create_run(experiment_id, start_time=t0 + start, tags=tags or {}, run_name=key)
        rid = created.info.run_id
        ids[key] = rid
        if params:
            items = [Param(k, str(v)) for k, v in params.items()]
            for i in range(0, len(items), 100):
                client.log_batch(rid, params=items[i : i + 100])
        if metrics:
            client.log_batch(rid, metrics=metrics(rid))
        if status is not None:
            client.set_terminated(rid, status, end_time=t0 + start + 60_000)
        return rid

    def points(name_steps_values: list[tuple[str, int, float]], start: int):
        return lambda rid: [Metric(n, v, t0 + start + i * 10, s) for i, (n, s, v) in enumerate(name_steps_values)]

    run("odd-steps", start=1_000, metrics=points(
        [("repeated", 0, 1.0), ("repeated", 1, 2.0), ("repeated", 1, 3.0), ("repeated", 1, 4.0), ("repeated", 2, 5.0)]
        + [("negative", s, float(s) * 0.5) for s in range(-5, 5)], 1_000))
    with fluent(tracking_uri):
        with mlflow.start_run(run_id=ids["odd-steps"]):
            for value in (10.0, 20.0, 30.0):
                mlflow.log_metric("omitted", value)  # step omitted: 0, three times
    odd = []
    for j, name in enumerate(ODD_METRICS):
        for step in range(10):
            odd.append((name, step, float(np.round(rng.normal(j, 1.0), 6))))
    odd[-3] = ("train/loss", 7, math.nan)
    odd[-2] = ("train/loss", 8, math.inf)
    odd[-1] = ("train/loss", 9, -math.inf)
    run("odd-names", start=2_000, metrics=points(odd, 2_000))
    wide = {f"p{i:03d}": round(float(rng.uniform(0, 1)), 6) for i in range(N_WIDE_PARAMS - 1)}
    wide["long_note"] = LONG_VALUE
    run("wide-params", start=3_000, params=wide, tags={"long_tag": LONG_VALUE},
        metrics=points([("score", 0, 1.0)], 3_000))
    run("odd-tags", start=4_000, tags={"note": NEWLINE_TAG, "html": HTML_TAG, "empty": ""},
        params={"optimizer": "sgd"}, metrics=points([("loss", s, 1.0 - s / 10) for s in range(5)], 4_000))
    run("no-metrics", start=5_000, params={"optimizer": "adam", "lr": 0.01})
    run("empty", start=6_000)
    run("running", start=7_000, params={"lr": 0.002}, metrics=points([("loss", s, 0.5) for s in range(3)], 7_000),
        status=None)
    run("failed", start=8_000, params={"lr": 0.5}, metrics=points([("loss", s, 10.0 * s) for s in range(3)], 8_000),
        status="FAILED")
    run("killed", start=9_000, params={"lr": 0.05}, metrics=points([("loss", 0, 0.9)], 9_000), status="KILLED")
    for i, (lr, code) in enumerate(zip(TYPED_LR, TYPED_CODE, strict=True)):
        run(f"typed-{i}", start=10_000 + i * 100, params={"lr": lr, "code": code},
            metrics=points([("loss", 0, 0.1 * (i + 1))], 10_000 + i * 100))
    deleted = run("deleted", start=11_000, params={"lr": 9.0}, metrics=points([("loss", 0, 9.0)], 11_000))
    client.delete_run(deleted)

    gone = experiment(client, DELETED_EXPERIMENT, artifact_root)
    run("in-deleted-exp", start=12_000, params={"lr": 1.0}, metrics=points([("loss", 0, 1.0)], 12_000),
        experiment_id=gone)
    client.delete_experiment(gone)

    sweep = experiment(client, SWEEP_EXPERIMENT, artifact_root)
    with fluent(tracking_uri):
        mlflow.set_experiment(experiment_id=sweep)
        with mlflow.start_run(run_name="sweep-a") as parent:
            ids["sweep-a"] = parent.info.run_id
            mlflow.log_param("sampler", "grid")
            for t, lr in enumerate(SWEEP_A_LR):
                try:
                    with mlflow.start_run(run_name=f"lr={lr}", nested=True) as child:
                        ids[f"sweep-a/{t}"] = child.info.run_id
                        mlflow.log_params({"lr": lr, "batch_size": 32 * (1 + t % 2)})
                        if t == SWEEP_A_FAILED:
                            raise FloatingPointError("loss diverged")
                        for epoch, value in enumerate(sweep_a_val_loss(t)):
                            mlflow.log_metric("val_loss", value, step=epoch)
                except FloatingPointError:
                    pass  # the with-block ended the trial as FAILED
        with mlflow.start_run(run_name="sweep-b") as parent:
            ids["sweep-b"] = parent.info.run_id
            for t in range(4):
                with mlflow.start_run(run_name=f"b-{t}", nested=True) as child:
                    ids[f"sweep-b/{t}"] = child.info.run_id
                    mlflow.log_params({"dropout": 0.1 * t})
                    mlflow.log_metrics({"val_loss": 0.5 - 0.05 * t, "val_accuracy": 0.7 + 0.05 * t}, step=0)
    client.set_tag(ids["basic"], "mlflow.note.content", "a note from the UI")
    return ids
