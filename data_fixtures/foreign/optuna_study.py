"""A study logged by Optuna's own ``optuna_integration.MLflowCallback``.

The usual recipe: an outer MLflow run for the study, the callback with
``mlflow_kwargs={"nested": True}`` so that each trial becomes a child run. The callback
names the run after the trial number and writes the tags ``number``, ``state`` (once
finished), ``direction`` (``MINIMIZE``), ``datetime_start``, ``datetime_complete`` and
``<param>_distribution``, the params, and the objective as the metric ``val_loss``
(no value for PRUNED and FAIL trials). Every MLflow run ends FINISHED, whatever the
trial's state. Optuna's own record of the study is kept in ``optuna-storage.db`` so
tests can ask Optuna for the truth.

Experiment ``optuna-study`` (the study's name): the parent run ``optuna-parent`` and
12 trials (keys ``trial/<number>``); trials 3 and 8 raise (FAIL), trial 5 and any the
median pruner stops are PRUNED.
"""

from __future__ import annotations

import math
from pathlib import Path

from data_fixtures.foreign._common import experiment, fluent

STUDY_NAME = "optuna-study"
METRIC = "val_loss"
N_TRIALS = 12
FAILING = (3, 8)
FORCED_PRUNE = 5


def objective(trial) -> float:
    import optuna

    x = trial.suggest_float("x", -4.0, 4.0)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    layers = trial.suggest_int("layers", 1, 4)
    act = trial.suggest_categorical("activation", ["relu", "tanh"])
    if trial.number in FAILING:
        raise RuntimeError(f"trial {trial.number} ran out of memory")
    value = math.nan
    for epoch in range(5):
        value = (x - 1.0) ** 2 + abs(math.log10(lr) + 3) + 0.1 * layers + (0.2 if act == "tanh" else 0.0) + 1.0 / (epoch + 1)
        trial.report(value, epoch)
        if trial.should_prune() or (trial.number == FORCED_PRUNE and epoch == 2):
            raise optuna.TrialPruned()
    return value


def write(tracking_uri: str, artifact_root: Path, out_dir: Path) -> dict[str, str]:
    import mlflow
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna_integration.mlflow import MLflowCallback

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = experiment(client, STUDY_NAME, artifact_root)
    storage = f"sqlite:///{(Path(out_dir) / 'optuna-storage.db').resolve()}"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ids: dict[str, str] = {}
    try:
        study = optuna.create_study(
            study_name=STUDY_NAME, storage=storage, direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=14, n_startup_trials=4),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
        callback = MLflowCallback(tracking_uri=tracking_uri, metric_name=METRIC, create_experiment=True,
                                  mlflow_kwargs={"nested": True})
        with fluent(tracking_uri):
            mlflow.set_experiment(experiment_id=exp)
            with mlflow.start_run(run_name="optuna-parent") as parent:
                ids["optuna-parent"] = parent.info.run_id
                study.optimize(objective, n_trials=N_TRIALS, callbacks=[callback], catch=(RuntimeError,))
    finally:
        optuna.logging.set_verbosity(verbosity)
    for run in client.search_runs([exp], max_results=1000):
        number = run.data.tags.get("number")
        if number is not None:
            ids[f"trial/{number}"] = run.info.run_id
    states = {t.state.name for t in study.trials}
    assert {"COMPLETE", "PRUNED", "FAIL"} <= states, states
    return ids
