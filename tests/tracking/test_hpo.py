"""Studies run with tb.hpo.optimize (real Optuna, real PPO) and read back with store.study."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from stable_baselines3 import PPO

import trackbook as tb
from trackbook import columns as C
from trackbook.hpo import parse_space


def test_a_small_ppo_study_reads_back_as_a_study(tmp_path: Path, cartpole):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rewards: dict[int, float] = {}

    def objective(trial: tb.hpo.Trial) -> float:
        if trial.number == 2:
            raise RuntimeError("diverged")  # a failing trial must not stop the study
        if trial.number == 3:
            trial.report(1.0, step=128)  # the pruner below prunes any reported trial
        model = PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64, n_epochs=2, seed=trial.number,
                    learning_rate=trial.params["learning_rate"], gamma=trial.params["gamma"])
        cb = trial.callback(eval_env=cartpole(), eval_freq=256, n_eval_episodes=2)
        model.learn(512, callback=cb)
        rewards[trial.number] = cb.best_mean_reward
        return cb.best_mean_reward

    space = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "gamma": [0.95, 0.99], "n_epochs": 2}
    result = tb.hpo.optimize(objective, space, n_trials=5, store=uri, experiment="hpo", study_name="ppo-small",
                             sampler="RandomSampler", seed=0, pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    store = tb.connect(uri)
    assert tb.study_list(store, "hpo")[C.RUN_ID].tolist() == [result.parent_run_id]
    study = tb.study(store, result.parent_run_id)
    trials = study.trials
    assert list(trials["trial_number"]) == [0, 1, 2, 3, 4]
    assert trials.set_index("trial_number")["state"].to_dict() == {
        0: "COMPLETE", 1: "COMPLETE", 2: "FAIL", 3: "PRUNED", 4: "COMPLETE"}
    assert trials.set_index("trial_number")[C.STATUS].to_dict() == {
        0: C.FINISHED, 1: C.FINISHED, 2: C.FAILED, 3: C.KILLED, 4: C.FINISHED}
    done = trials[trials["state"] == "COMPLETE"].set_index("trial_number")
    assert done["objective"].to_dict() == pytest.approx(rewards)
    assert study.best["trial_number"] == max(rewards, key=rewards.get) == result.study.best_trial.number
    assert study.best["params.learning_rate"] == pytest.approx(result.best_params["learning_rate"])
    assert set(trials["params.gamma"].dropna()) <= {0.95, 0.99} and (trials["params.n_epochs"] == 2).all()
    # the searched params come from the parent's space.*, not from everything SB3 logged
    assert set(study.param_columns) == {"params.learning_rate", "params.gamma", "params.n_epochs"}
    assert set(study.importance()["param"]) == {"learning_rate", "gamma"}  # n_epochs is fixed
    # each trial's run holds its SB3 training, the parent its summary
    hist = study.history("eval/mean_reward")
    assert set(hist["trial_number"]) == {0, 1, 4}
    parent = store.runs(run_ids=[result.parent_run_id]).iloc[0]
    assert parent["params.direction"] == "maximize" and parent["metrics.best_value"] == pytest.approx(max(rewards.values()))
    failed = store.runs(run_ids=[trials.loc[2, C.RUN_ID]]).iloc[0]
    assert "diverged" in failed["tags.error"]


def test_nan_objective_is_a_failed_trial(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = tb.hpo.optimize(lambda t: math.nan if t.number == 0 else t.params["x"] ** 2, {"x": {"low": -1.0, "high": 1.0}},
                             n_trials=3, store=uri, experiment="nan", direction="minimize", seed=1)
    study = tb.study(tb.connect(uri), result.parent_run_id)
    assert study.trials["state"].tolist() == ["FAIL", "COMPLETE", "COMPLETE"]
    assert study.direction == "minimize"
    assert study.best["objective"] == pytest.approx(min(study.trials["objective"].dropna()))


_WORKER = """
import sys, trackbook as tb
uri, storage = sys.argv[1], sys.argv[2]
tb.hpo.optimize(lambda t: -(t.params["x"] - 0.3) ** 2, {"x": {"low": 0.0, "high": 1.0}}, n_trials=3,
                store=uri, experiment="shared", study_name="shared", storage=storage)
"""


@pytest.mark.parametrize("backend", ["mlflow", "aim"])
def test_parallel_workers_share_one_study_through_optuna_storage(tmp_path: Path, backend: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if backend == "mlflow" else f"aim://{tmp_path / 'aim'}"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    created = tb.hpo.optimize(lambda t: 0.0, {"x": {"low": 0.0, "high": 1.0}}, n_trials=0, store=uri,
                              experiment="shared", study_name="shared", storage=storage)
    workers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(_WORKER), uri, storage]) for _ in range(2)]
    assert all(w.wait(timeout=180) == 0 for w in workers)
    # the trials were written and closed by the worker processes: Aim must see them through its index
    study = tb.study(tb.connect(uri), created.parent_run_id)
    assert len(study.trials) == 6 and (study.trials["state"] == "COMPLETE").all()
    assert sorted(study.trials["trial_number"]) == list(range(6))
    optuna_study = optuna.load_study(study_name="shared", storage=storage)
    assert study.best["objective"] == pytest.approx(optuna_study.best_value)


def test_space_syntax():
    dists = parse_space({"lr": [1e-4, 1e-3], "n": {"low": 1, "high": 8}, "g": {"low": 0.9, "high": 0.999},
                         "c": {"choices": ["a", "b"]}, "fixed": 3, "o": optuna.distributions.FloatDistribution(0, 1)})
    assert isinstance(dists["lr"], optuna.distributions.CategoricalDistribution)
    assert isinstance(dists["n"], optuna.distributions.IntDistribution)
    assert isinstance(dists["g"], optuna.distributions.FloatDistribution) and dists["fixed"] == 3
    for bad, match in [({"low": 2, "high": 1}, "above high"), ({"low": 0, "high": 1, "log": True}, "low > 0"),
                       ({"lo": 1}, "a range is"), ([], "empty")]:
        with pytest.raises(ValueError, match=match):
            parse_space({"p": bad})


# ------------------------------------------------------- studies from a config


STACK_HPO_YAML = """
experiment:
  name: stack-hpo
  tracking_uri: sqlite:///{db}
model:
  input_dim: 10
  hidden_layers: [64, 32]
training:
  epochs: 5
  batch_size: 32
  learning_rate: 0.001
hpo:
  param_space:
    learning_rate: [0.0001, 0.001, 0.01]
    batch_size: [16, 32, 64]
  num_trials: 6
  direction: minimize
  sampler: RandomSampler
  seed: 3
  metric: val_loss
  objective: stack_objective:objective
"""

OBJECTIVE = '''
def objective(trial):
    cfg = trial.config
    # the sampled values sit where the config keeps them
    assert cfg.training.learning_rate == trial.params["learning_rate"]
    assert cfg.training.batch_size == trial.params["batch_size"]
    return cfg.training.learning_rate * 100 + cfg.training.batch_size / 64
'''


def test_omegaconf_lists_are_choices_not_fixed_values():
    from omegaconf import OmegaConf

    space = OmegaConf.create({"lr": [1e-4, 1e-3], "n": {"low": 1, "high": 8}, "c": {"choices": ["a", "b"]}})
    dists = parse_space(space)
    assert dists["lr"] == optuna.distributions.CategoricalDistribution([1e-4, 1e-3])
    assert dists["n"] == optuna.distributions.IntDistribution(1, 8)
    assert dists["c"] == optuna.distributions.CategoricalDistribution(["a", "b"])


def test_a_study_from_the_stacks_yaml(tmp_path: Path):
    from mlflow import MlflowClient

    from trackbook.tracking.config import load_config

    db = tmp_path / "mlflow.db"
    path = tmp_path / "hpo_example.yaml"
    path.write_text(STACK_HPO_YAML.format(db=db))
    (tmp_path / "stack_objective.py").write_text(OBJECTIVE)
    sys.path.insert(0, str(tmp_path))
    try:
        from trackbook.hpo import load_objective

        cfg = load_config(path)
        result = tb.hpo.optimize(load_objective(cfg.hpo.objective), cfg.hpo, store=f"sqlite:///{db}",
                                 experiment=cfg.experiment.name)
    finally:
        sys.path.remove(str(tmp_path))
    trials = result.study.trials
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    # each trial got one choice, not the whole list
    assert {t.params["learning_rate"] for t in trials} <= {0.0001, 0.001, 0.01}
    assert len({(t.params["learning_rate"], t.params["batch_size"]) for t in trials}) > 1
    assert result.study.direction.name == "MINIMIZE" and type(result.study.sampler).__name__ == "RandomSampler"
    assert result.best_value == min(t.value for t in trials)
    parent = MlflowClient(f"sqlite:///{db}").get_run(result.parent_run_id)
    assert parent.data.params["objective"] == "val_loss" and parent.data.params["n_trials"] == "6"
    assert parent.data.params["direction"] == "minimize"


def test_trackbook_hpo_runs_a_study_from_a_config_file(tmp_path: Path):
    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    path = tmp_path / "hpo_example.yaml"
    path.write_text(STACK_HPO_YAML.format(db=db))
    (tmp_path / "stack_objective.py").write_text(OBJECTIVE)
    env = {**__import__("os").environ,
           "PYTHONPATH": f"{tmp_path}:{__import__('os').environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "trackbook.cli", "hpo", str(path), "--hpo.num_trials", "3",
                           "hpo.direction=maximize"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("stack-hpo")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.params["direction"] == "maximize"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 3
    best = max(r.data.metrics["objective"] for r in children)
    assert f"best value: {best}" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "trackbook.cli", "hpo", str(path), "--objective", "nowhere:fn"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "cannot import 'nowhere'" in bad.stderr
