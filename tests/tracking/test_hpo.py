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
